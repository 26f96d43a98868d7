"""Agreement of a run's criteria with the human labels on its rollouts, and where each training prompt
stands (solved, learning, never solved). Plain sqlite3 reads (no Qt); the figures are
engine/contract/agreement.py's and the pass rule engine/contract/passk.py's, the ones the engine uses.

The inspector's thumbs are binary labels: thumbs up (1) good, thumbs down (-1) bad; a note alone is no
label. A criterion says "good" when its score is at least the threshold (0.5 by default); the weighted
total ("total", the rollout's reward) likewise.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass

from engine.contract.agreement import DEFAULT_THRESHOLD, Agreement, agreement
from engine.contract.passk import PassRule, correctness_criterion, prompt_status
from studio.state.rollout_query import criterion_weights, run_criteria

TOTAL = "total"


@dataclass(frozen=True)
class LabelledRollout:
    id: int
    step: int
    label: bool
    """True: thumbs up; False: thumbs down."""
    reward: float | None
    scores: dict[str, float | None]
    preview: str


def labelled_rollouts(
    conn: sqlite3.Connection, run_id: int, preview_chars: int = 160
) -> list[LabelledRollout]:
    """Every rollout of the run with a thumbs up or down, in id order."""
    rows = conn.execute(
        "SELECT r.id, r.step, l.label, r.reward, r.scores_json, substr(r.completion, 1, ?)"
        " FROM labels l CROSS JOIN rollouts r ON r.id = l.rollout_id"
        " WHERE r.run_id = ? AND l.label != 0 ORDER BY r.id",
        (preview_chars, run_id),
    ).fetchall()
    out = []
    for rid, step, label, reward, scores_json, preview in rows:
        try:
            scores = json.loads(scores_json or "{}")
        except ValueError:
            scores = {}
        out.append(
            LabelledRollout(int(rid), int(step), label > 0, reward, scores, " ".join(str(preview).split()))
        )
    return out


def run_agreement(
    conn: sqlite3.Connection, run_id: int, threshold: float = DEFAULT_THRESHOLD
) -> tuple[list[Agreement], list[LabelledRollout]]:
    """Each criterion of the run, then the total, against the run's labels (disagreements are rollout ids)."""
    rows = labelled_rollouts(conn, run_id)
    labels = [r.label for r in rows]
    ids = [r.id for r in rows]
    names = run_criteria(conn, run_id)
    for r in rows:
        names += [n for n in r.scores if n not in names]
    results = [
        agreement(name, [_finite(r.scores.get(name)) for r in rows], labels, ids, threshold) for name in names
    ]
    results.append(agreement(TOTAL, [_finite(r.reward) for r in rows], labels, ids, threshold))
    return results, rows


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# ---- prompts: solved, learning, never solved ---------------------------------------------------------
@dataclass(frozen=True)
class PromptStanding:
    prompt_index: int
    prompt: str
    status: str
    """engine.contract.passk: solved, learning or never solved."""
    attempts: int
    passes: int
    latest_step: int
    latest_attempts: int
    latest_passes: int
    latest_group: int

    @property
    def pass_rate(self) -> float:
        return self.passes / self.attempts if self.attempts else 0.0


def run_pass_rule(conn: sqlite3.Connection, run_id: int) -> PassRule:
    """The pass rule the run used: its config's [eval] correctness and pass_threshold over its rubric."""
    row = conn.execute("SELECT config FROM runs WHERE id = ?", (run_id,)).fetchone()
    try:
        config = json.loads(row[0]) if row and row[0] else {}
    except ValueError:
        config = {}
    found = config.get("eval") if isinstance(config, dict) else None
    section: dict[str, object] = found if isinstance(found, dict) else {}
    configured = str(section.get("correctness") or "")
    threshold = section.get("pass_threshold", 0.5)
    weights = criterion_weights(conn, run_id)
    try:
        name = correctness_criterion(list(weights.items()), configured)
    except ValueError:
        name = None
    return PassRule(name, float(threshold) if isinstance(threshold, int | float) else 0.5)


def prompt_standings(
    conn: sqlite3.Connection, run_id: int, rule: PassRule | None = None
) -> list[PromptStanding]:
    """Every training prompt the run sampled, with how often it passed over the run and in its latest group."""
    rule = rule or run_pass_rule(conn, run_id)
    params: list[object]
    if rule.criterion is None:
        passed_sql, params = "r.reward IS NOT NULL AND r.reward > ?", [rule.threshold]
    else:
        passed_sql = "COALESCE(json_extract(r.scores_json, ?) >= ?, 0)"
        params = ['$."' + rule.criterion.replace('"', '\\"') + '"', rule.threshold]
    rows = conn.execute(
        f"SELECT g.prompt_index, g.id, g.step, g.prompt, COUNT(r.id), SUM({passed_sql})"
        " FROM groups g JOIN rollouts r ON r.group_id = g.id"
        " WHERE g.run_id = ? AND g.prompt_index IS NOT NULL GROUP BY g.id ORDER BY g.prompt_index, g.id",
        (*params, run_id),
    ).fetchall()
    by_prompt: dict[int, list[tuple[int, int, str, int, int]]] = {}
    for index, gid, step, prompt, count, passes in rows:
        by_prompt.setdefault(int(index), []).append(
            (int(gid), int(step), str(prompt), int(count), int(passes or 0))
        )
    out = []
    for index, groups in by_prompt.items():
        attempts = sum(g[3] for g in groups)
        passes = sum(g[4] for g in groups)
        gid, step, prompt, latest_n, latest_p = groups[-1]
        status = prompt_status(attempts, passes, latest_n, latest_p)
        out.append(PromptStanding(index, prompt, status, attempts, passes, step, latest_n, latest_p, gid))
    return out
