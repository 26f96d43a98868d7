"""Reading agent rollouts' trajectories from the workspace (plain sqlite3, no Qt).

A rollout of an agent run stores its trajectory as JSON in ``rollouts.trajectory`` (the format is
engine/contract/trajectory.py), its number of turns in ``turns`` and how it ended in ``ended``; a
single-turn rollout leaves the three NULL, so ``ended IS NOT NULL`` (an indexed column) tells them apart.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from engine.contract.trajectory import Trajectory, read_trajectory


@dataclass
class AgentRollout:
    """One agent rollout as the trajectory views show it."""

    id: int
    step: int
    group_id: int
    reward: float | None
    trajectory: Trajectory
    scores: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    prompt: list[dict[str, Any]] = field(default_factory=list)
    """The prompt's chat messages (as stored with the trajectory); [] when not stored."""


@dataclass
class AgentFacets:
    """What the agent filters offer for a run: its tools and its dataset's tiers."""

    tools: list[str]
    tiers: list[str]


def is_agent_run(conn: sqlite3.Connection, run_id: int) -> bool:
    """Whether the run trains an agent: its config has an [environment], or it recorded agent rollouts
    (the partial index on `ended` answers without a scan)."""
    row = conn.execute(
        "SELECT json_extract(config, '$.environment.path') FROM runs WHERE id = ? AND json_valid(config)",
        (run_id,),
    ).fetchone()
    if row is not None and row[0]:
        return True
    sql = "SELECT 1 FROM rollouts WHERE run_id = ? AND ended IS NOT NULL LIMIT 1"
    return conn.execute(sql, (run_id,)).fetchone() is not None


def agent_facets(conn: sqlite3.Connection, run_id: int) -> AgentFacets:
    """The tools the run's agent called (from its `agent/calls/<tool>` metrics, so no trajectory is read)
    and the values of its dataset's `tier` column."""
    tools = [
        str(key).removeprefix("agent/calls/")
        for (key,) in conn.execute(
            "SELECT DISTINCT key FROM metrics WHERE run_id = ? AND key >= 'agent/calls/' AND key < 'agent/calls0'",
            (run_id,),
        )
    ]
    tiers = [
        str(tier)
        for (tier,) in conn.execute(
            "SELECT DISTINCT json_extract(columns, '$.tier') FROM groups"
            " WHERE run_id = ? AND json_valid(columns) AND json_extract(columns, '$.tier') IS NOT NULL",
            (run_id,),
        )
    ]
    return AgentFacets(sorted(tools), sorted(tiers))


def _row(t: tuple[Any, ...]) -> AgentRollout | None:
    rid, step, group_id, reward, text, scores_json, errors_json = t
    trajectory = read_trajectory(text)
    if trajectory is None:
        return None
    scores = json.loads(scores_json) if scores_json else {}
    errors = json.loads(errors_json) if errors_json else {}
    prompt: list[dict[str, Any]] = []
    try:
        stored = json.loads(text).get("prompt")
        if isinstance(stored, list):
            prompt = [m for m in stored if isinstance(m, dict)]
    except (ValueError, AttributeError):
        pass
    return AgentRollout(rid, step, group_id, reward, trajectory, scores, errors, prompt)


COLUMNS = "id, step, group_id, reward, trajectory, scores_json, errors_json"


def read_agent_rollout(conn: sqlite3.Connection, rollout_id: int) -> AgentRollout | None:
    """The rollout with its trajectory, or None when it is not an agent rollout."""
    t = conn.execute(f"SELECT {COLUMNS} FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
    return _row(t) if t is not None else None


def read_group(conn: sqlite3.Connection, group_id: int) -> list[AgentRollout]:
    """Every agent rollout of a group (one prompt at one step), in the order they were sampled."""
    sql = f"SELECT {COLUMNS} FROM rollouts WHERE group_id = ? ORDER BY id"
    return [r for t in conn.execute(sql, (group_id,)) if (r := _row(t)) is not None]
