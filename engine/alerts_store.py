"""The `alerts` table (schema migration 5): what the training-time monitor (engine/monitor.py) raised.

One row per alert: the run and step, its kind and severity, a message, the evidence as JSON (the numbers
that tripped it and example rollout ids) and whether the user acknowledged it. The engine writes alerts
and forgets those after a resumed run's checkpoint; the studio reads them (studio/state/alerts.py) and
sets `acknowledged`, as does `rl-studio-engine alerts ack`.
"""

from __future__ import annotations

import json
import time
from typing import Any


def add_alert(
    workspace: Any, run_id: int, step: int, kind: str, severity: str, message: str, evidence: dict[str, Any]
) -> int:
    """Store an alert; returns its id."""
    from engine.store import strict_json

    with workspace.transaction() as c:
        cur = c.execute(
            "INSERT INTO alerts(run_id, step, kind, severity, message, evidence, acknowledged, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            (run_id, step, kind, severity, message, strict_json(evidence), time.time()),
        )
        return int(cur.lastrowid or 0)


def forget_alerts_after(workspace: Any, run_id: int, step: int) -> None:
    """Forget a run's alerts of steps after `step` (a resume repeats those steps)."""
    with workspace.transaction() as c:
        c.execute("DELETE FROM alerts WHERE run_id = ? AND step > ?", (run_id, step))


def fired_steps(workspace: Any, run_id: int) -> dict[str, int]:
    """The last step each detector key fired at (kind, or kind:shape for cheat shapes)."""
    out: dict[str, int] = {}
    for kind, step, evidence in workspace.conn.execute(
        "SELECT kind, step, evidence FROM alerts WHERE run_id = ? ORDER BY step", (run_id,)
    ):
        shape = json.loads(evidence or "{}").get("shape")
        out[f"{kind}:{shape}" if shape else kind] = int(step)
    return out


def list_alerts(workspace: Any, run_id: int) -> list[dict[str, Any]]:
    rows = workspace.conn.execute(
        "SELECT id, run_id, step, kind, severity, message, evidence, acknowledged, created_at FROM alerts"
        " WHERE run_id = ? ORDER BY step, id",
        (run_id,),
    )
    names = [d[0] for d in rows.description]
    out = []
    for row in rows.fetchall():
        alert = dict(zip(names, row, strict=True))
        alert["evidence"] = json.loads(alert["evidence"] or "{}")
        alert["acknowledged"] = bool(alert["acknowledged"])
        out.append(alert)
    return out


def acknowledge(workspace: Any, run_id: int, alert_ids: list[int] | None = None) -> int:
    """Mark alerts of a run acknowledged (all of them when `alert_ids` is None); returns how many changed."""
    with workspace.transaction() as c:
        if alert_ids is None:
            cur = c.execute(
                "UPDATE alerts SET acknowledged = 1 WHERE run_id = ? AND acknowledged = 0", (run_id,)
            )
        else:
            marks = ",".join("?" * len(alert_ids))
            cur = c.execute(
                f"UPDATE alerts SET acknowledged = 1 WHERE run_id = ? AND acknowledged = 0 AND id IN ({marks})",
                (run_id, *alert_ids),
            )
        return int(cur.rowcount)
