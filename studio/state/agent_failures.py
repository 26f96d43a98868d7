"""Where do agents fail? For a run (or a step range), where each failing trajectory first went wrong.

Plain Python over SQLite rows (no Qt); the inspector runs ``failure_report`` as a background job
(studio/jobs.py), because it reads every agent rollout of the range.

A trajectory *failed* when its environment reward is below engine.contract.trajectory.SUCCESS_REWARD (or
missing). Its *first failure* is the earliest of, in turn order:

- ``invalid``: a malformed call (unknown tool, arguments that do not parse or fit the signature);
- ``tool_error``: a well-formed call whose tool raised, timed out or lost its process;
- ``loop``: a call identical (tool and arguments) to an earlier one;

and when none of these happened, how it ended: ``max_turns`` (still calling tools when the turns ran
out), ``length`` (the token budget ran out), ``error`` (reset failed or the markup did not parse), or
``wrong_answer`` (it answered, every call worked, and the end state was still wrong: the failure is in
what it did, at its last turn). Each failure is counted at (turn, tool): the turn number (1-based) and
the tool of the failing call (``(answer)`` for a failure at a turn without one).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.contract.trajectory import (
    SUCCESS_REWARD,
    Trajectory,
    call_outcome,
    first_repeat,
    read_trajectory,
    succeeded,
)

KINDS = ("invalid", "tool_error", "loop", "max_turns", "length", "error", "wrong_answer")
KIND_TEXT = {
    "invalid": "invalid call",
    "tool_error": "tool error",
    "loop": "repeated call (loop)",
    "max_turns": "ran out of turns",
    "length": "ran out of tokens",
    "error": "environment or markup error",
    "wrong_answer": "answered, wrong end state",
}
ANSWER = "(answer)"
EXAMPLES = 50
"""Example rollout ids kept per cell and per kind: what a click shows in the inspector."""
BATCH = 2000


@dataclass(frozen=True)
class FirstFailure:
    kind: str
    turn: int
    """1-based; 0 when the episode had no turn (reset failed)."""
    tool: str


@dataclass
class FailureReport:
    rollouts: int = 0
    failed: int = 0
    cells: Counter[tuple[int, str]] = field(default_factory=Counter)
    """(turn, tool) -> failing trajectories that first went wrong there."""
    kinds: Counter[str] = field(default_factory=Counter)
    endings: Counter[str] = field(default_factory=Counter)
    """How the failing trajectories ended (answered, max_turns, length, error)."""
    cell_examples: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    kind_examples: dict[str, list[int]] = field(default_factory=dict)
    ending_examples: dict[str, list[int]] = field(default_factory=dict)
    failed_ids: list[int] = field(default_factory=list)

    @property
    def turns(self) -> list[int]:
        return sorted({t for t, _ in self.cells})

    @property
    def tools(self) -> list[str]:
        """Tools by how many failures they hold, most first."""
        per_tool: Counter[str] = Counter()
        for (_, tool), n in self.cells.items():
            per_tool[tool] += n
        return [tool for tool, _ in per_tool.most_common()]


def first_failure(trajectory: Trajectory) -> FirstFailure:
    """Where a (failing) trajectory first went wrong; see the module's docstring."""
    repeat = first_repeat(trajectory)
    for t, turn in enumerate(trajectory.turns):
        for c, call in enumerate(turn.calls):
            outcome = call_outcome(call)
            if outcome in ("invalid", "tool_error"):
                return FirstFailure(outcome, t + 1, call.tool)
            if repeat == (t, c):
                return FirstFailure("loop", t + 1, call.tool)
    last = len(trajectory.turns)
    last_calls = trajectory.turns[-1].calls if trajectory.turns else []
    tool = last_calls[0].tool if last_calls else ANSWER
    if trajectory.ended in ("max_turns", "length", "error"):
        return FirstFailure(trajectory.ended, last, tool)
    return FirstFailure("wrong_answer", last, tool)


def _keep(examples: dict[object, list[int]], key: object, rollout_id: int) -> None:
    kept = examples.setdefault(key, [])
    if len(kept) < EXAMPLES:
        kept.append(rollout_id)


def add(report: FailureReport, rollout_id: int, trajectory: Trajectory) -> None:
    report.rollouts += 1
    if succeeded(trajectory):
        return
    report.failed += 1
    report.failed_ids.append(rollout_id)
    where = first_failure(trajectory)
    cell = (where.turn, where.tool)
    report.cells[cell] += 1
    report.kinds[where.kind] += 1
    ended = trajectory.ended or "?"
    report.endings[ended] += 1
    _keep(report.cell_examples, cell, rollout_id)  # type: ignore[arg-type]
    _keep(report.kind_examples, where.kind, rollout_id)  # type: ignore[arg-type]
    _keep(report.ending_examples, ended, rollout_id)  # type: ignore[arg-type]


def failure_report(
    conn: sqlite3.Connection,
    run_id: int,
    step_min: int | None = None,
    step_max: int | None = None,
    check: Callable[[], None] | None = None,
) -> FailureReport:
    """Read the run's agent rollouts in the step range in batches (by id, on the partial index of
    `ended`) and count where the failing ones first went wrong. ``check`` is called between batches
    (a job's ``task.check``, which stops a cancelled job)."""
    report = FailureReport()
    lo = step_min if step_min is not None else -(2**62)
    hi = step_max if step_max is not None else 2**62
    in_range = "run_id = ? AND ended IS NOT NULL AND step BETWEEN ? AND ?"
    counted = conn.execute(f"SELECT count(*) FROM rollouts WHERE {in_range}", (run_id, lo, hi)).fetchone()
    # Only the failing trajectories are parsed: SQLite reads the reward out of the JSON itself.
    after = 0
    sql = (
        f"SELECT id, trajectory FROM rollouts WHERE {in_range}"
        " AND COALESCE(json_extract(trajectory, '$.reward'), -1e308) < ? AND id > ? ORDER BY id LIMIT ?"
    )
    while True:
        rows = conn.execute(sql, (run_id, lo, hi, SUCCESS_REWARD, after, BATCH)).fetchall()
        for rid, text in rows:
            trajectory = read_trajectory(text)
            if trajectory is not None:
                add(report, int(rid), trajectory)
        if len(rows) < BATCH:
            break
        after = int(rows[-1][0])
        if check is not None:
            check()
    report.rollouts = int(counted[0]) if counted else 0
    report.failed_ids.sort()
    return report
