"""A run's training-time alerts (engine/monitor.py), read from the workspace's ``alerts`` table.

The studio reads them with its read-only connection and writes only the ``acknowledged`` flag, in one
short transaction on its own connection (the engine may be writing the same file: WAL lets both go on).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.contract import schema

KIND_TITLES = {
    "proxy_divergence": "Proxy vs held-out divergence",
    "length_drift": "Length drift",
    "criterion_dominance": "Criterion dominance",
    "entropy_collapse": "Entropy collapse",
    "kl_spike": "KL spike",
    "truncation": "Truncation rising",
    "cheat_shapes": "Cheat-shaped rollouts",
}


@dataclass(frozen=True)
class AlertRow:
    id: int
    run_id: int
    step: int
    kind: str
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    acknowledged: bool = False

    @property
    def title(self) -> str:
        return KIND_TITLES.get(self.kind, self.kind.replace("_", " ").capitalize())

    @property
    def examples(self) -> list[int]:
        """Ids of rollouts that show what tripped the detector."""
        return [int(i) for i in self.evidence.get("examples") or [] if isinstance(i, int)]


def read_alerts(conn: sqlite3.Connection, run_id: int) -> list[AlertRow]:
    """Every alert of a run, by step. A workspace from before alerts existed has none."""
    try:
        rows = conn.execute(
            "SELECT id, run_id, step, kind, severity, message, evidence, acknowledged FROM alerts"
            " WHERE run_id = ? ORDER BY step, id",
            (run_id,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    out = []
    for id_, run, step, kind, severity, message, evidence, acknowledged in rows:
        try:
            data = json.loads(evidence or "{}")
        except json.JSONDecodeError:
            data = {}
        out.append(AlertRow(id_, run, step, kind, severity, message, data, bool(acknowledged)))
    return out


def acknowledge(workspace: str | Path, alert_ids: list[int]) -> int:
    """Set the acknowledged flag of these alerts; returns how many changed."""
    if not alert_ids:
        return 0
    conn = schema.connect(str(workspace), timeout_s=5.0)
    try:
        with conn:
            marks = ",".join("?" * len(alert_ids))
            cur = conn.execute(
                f"UPDATE alerts SET acknowledged = 1 WHERE acknowledged = 0 AND id IN ({marks})", alert_ids
            )
            return int(cur.rowcount)
    finally:
        conn.close()
