"""One prompt group of a run, and one prompt over training, read whole for the inspector's group view."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from studio.state.rollout_query import (
    PREVIEW_CHARS,
    ROW_COLUMNS,
    RolloutRow,
    attach_details,
    marks,
    row_from_tuple,
)


@dataclass
class GroupDetail:
    id: int
    step: int
    prompt: str
    prompt_index: int | None
    reward_mean: float | None
    reward_std: float | None
    rollouts: list[RolloutRow]
    """Whole completions, best reward first (rollouts without a reward last)."""


_FULL_COLUMNS = ROW_COLUMNS.replace(f"substr(r.completion, 1, {PREVIEW_CHARS})", "r.completion")
_GROUP_COLUMNS = "id, step, prompt, prompt_index, reward_mean, reward_std"


def _details(conn: sqlite3.Connection, groups: list[tuple[Any, ...]]) -> list[GroupDetail]:
    if not groups:
        return []
    ids = [g[0] for g in groups]
    rows = [
        row_from_tuple(t)
        for t in conn.execute(
            f"SELECT {_FULL_COLUMNS} FROM rollouts r LEFT JOIN labels l ON l.rollout_id = r.id"
            f" WHERE r.group_id IN ({marks(len(ids))}) ORDER BY r.id",
            ids,
        )
    ]
    attach_details(conn, rows)
    if rows:  # judges' explanations: {criterion: text} per rollout, NULL where there is none
        by_id = {r.id: r for r in rows}
        for rid, blob in conn.execute(
            f"SELECT id, explanations_json FROM rollouts WHERE id IN ({marks(len(rows))})"
            " AND explanations_json IS NOT NULL",
            list(by_id),
        ):
            by_id[rid].explanations.update(json.loads(blob))
    members: dict[int, list[RolloutRow]] = {gid: [] for gid in ids}
    for r in rows:
        members[r.group_id].append(r)
    out = []
    for gid, step, prompt, index, mean, std in groups:
        ranked = sorted(members[gid], key=lambda r: (r.reward is None, -(r.reward or 0.0), r.id))
        out.append(GroupDetail(gid, step, prompt, index, mean, std, ranked))
    return out


def group_detail(conn: sqlite3.Connection, group_id: int) -> GroupDetail | None:
    """One prompt group: its prompt and every completion, whole, with scores, errors and labels."""
    found = conn.execute(f"SELECT {_GROUP_COLUMNS} FROM groups WHERE id = ?", (group_id,)).fetchall()
    details = _details(conn, found)
    return details[0] if details else None


def prompt_history(
    conn: sqlite3.Connection, run_id: int, group_id: int, limit: int = 100
) -> tuple[list[GroupDetail], int]:
    """Every group of the run with the same prompt as ``group_id`` (same dataset row), by step: the
    completions to one prompt over training. Returns (the last ``limit`` groups, how many there are)."""
    g = conn.execute("SELECT prompt_index, prompt FROM groups WHERE id = ?", (group_id,)).fetchone()
    if g is None:
        return [], 0
    if g[0] is not None:
        where, params = "run_id = ? AND prompt_index = ?", (run_id, g[0])
    else:  # no dataset row recorded: the same prompt text
        where, params = "run_id = ? AND prompt_index IS NULL AND prompt = ?", (run_id, g[1])
    total = int(conn.execute(f"SELECT count(*) FROM groups WHERE {where}", params).fetchone()[0])
    found = conn.execute(
        f"SELECT * FROM (SELECT {_GROUP_COLUMNS} FROM groups WHERE {where} ORDER BY step DESC, id DESC"
        " LIMIT ?) ORDER BY step, id",
        (*params, limit),
    ).fetchall()
    return _details(conn, found), total


def records_rendered_prompts(conn: sqlite3.Connection, run_id: int | None) -> bool | None:
    """Whether the run's groups hold each prompt exactly as the model saw it (the chat template applied,
    engine/prompts.py): every run whose engine knew `[data] chat_template` records the rendered text; an
    older run recorded the dataset's prompt. None when the run or its config cannot be read."""
    if run_id is None:
        return None
    row = conn.execute("SELECT config FROM runs WHERE id = ?", (run_id,)).fetchone()
    try:
        data = json.loads(row[0]).get("data") if row else None
    except (json.JSONDecodeError, TypeError, AttributeError):
        return None
    return "chat_template" in data if isinstance(data, dict) else None
