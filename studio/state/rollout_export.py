"""Rollouts out of the workspace as JSONL training data, for SFT or for preference tuning.

- ``sft`` rows ``{"prompt", "completion"}``: the prompt-completion format of TRL's SFTTrainer.
- ``pairs`` rows ``{"prompt", "chosen", "rejected"}``: the preference format of TRL's DPOTrainer. Both
  completions of a pair answer the same prompt at the same step: they come from one group.

Where rows come from (``source``):

- ``labels``: SFT takes every thumbs-up rollout; pairs take every (thumbs-up, thumbs-down) couple in a
  group.
- ``reward``: SFT takes the ``per_group`` best rollouts of each group whose reward is at least
  ``min_reward``; pairs take each group's best and worst rollouts when their rewards differ by more than
  ``min_margin`` (so groups without a learning signal give no pair).

A RolloutFilter narrows the rollouts first (for example the inspector's filters). Completions and
prompts are written whole, exactly as recorded.

With ``with_source`` every row also says where it came from, so it joins back to the run and to the
training file (see engine/contract/rollout_rows.py): ``rollout_id`` (pairs: ``chosen_id`` and
``rejected_id``), ``run_id``, ``step``, ``group``, ``group_index``, ``prompt_index`` and the prompt's
dataset columns (``answer``, ...). TRL's trainers ignore columns they do not use.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.contract.rollout_rows import dataset_columns, group_indexer, with_columns
from studio.state.rollout_query import RolloutFilter, matching

KINDS = ("sft", "pairs")
SOURCES = ("labels", "reward")
_FETCH = 2000


@dataclass(frozen=True)
class ExportOptions:
    kind: str = "sft"
    """``sft`` (prompt, completion) or ``pairs`` (prompt, chosen, rejected)."""
    source: str = "labels"
    """``labels`` (thumbs up/down) or ``reward`` (the best, or best and worst, of each group)."""
    min_reward: float | None = None
    """SFT from reward: leave out rollouts whose reward is below this (None: no floor)."""
    per_group: int = 1
    """SFT from reward: how many of each group's best rollouts to take."""
    min_margin: float = 0.0
    """Pairs from reward: the chosen reward must exceed the rejected one by more than this."""
    filter: RolloutFilter | None = None
    """Only rollouts matching this filter (None: every rollout of the run)."""
    with_source: bool = False
    """Add the ids and dataset columns that join each row back to its rollout and its training row."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"export kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.source not in SOURCES:
            raise ValueError(f"export source {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.per_group < 1:
            raise ValueError(f"per_group must be at least 1, not {self.per_group}")
        if self.min_margin < 0:
            raise ValueError(f"min_margin must be 0 or more, not {self.min_margin}")

    def describe(self) -> str:
        what = "SFT rows" if self.kind == "sft" else "chosen/rejected pairs"
        if self.source == "labels":
            how = "thumbs-up rollouts" if self.kind == "sft" else "thumbs-up vs thumbs-down in a group"
        elif self.kind == "sft":
            floor = f", reward ≥ {self.min_reward:g}" if self.min_reward is not None else ""
            how = f"best {self.per_group} of each group{floor}"
        else:
            how = f"best vs worst of each group, margin > {self.min_margin:g}"
        return f"{what} from {how}"


@dataclass
class _Rollout:
    id: int
    reward: float | None
    label: int
    completion: str


def _groups(
    conn: sqlite3.Connection, run_id: int, options: ExportOptions
) -> Iterator[tuple[int, list[_Rollout]]]:
    """The run's matching rollouts, a group at a time (a group's rollouts are written together, so they
    are consecutive in id order)."""
    flt = options.filter or RolloutFilter()
    if options.source == "labels":
        flt = replace(flt, label="good" if options.kind == "sft" else "labelled")
    query = matching(conn, run_id, flt, "r.id, r.group_id, r.reward, COALESCE(l.label, 0), r.completion")
    if query is None:
        return
    sql, params = query
    cursor = conn.execute(sql, params)
    group_id: int | None = None
    members: list[_Rollout] = []
    while batch := cursor.fetchmany(_FETCH):
        for rid, gid, reward, label, completion in batch:
            if gid != group_id:
                if members and group_id is not None:
                    yield group_id, members
                group_id, members = gid, []
            members.append(_Rollout(rid, reward, label, completion))
    if members and group_id is not None:
        yield group_id, members


def _by_reward(members: list[_Rollout]) -> list[_Rollout]:
    scored = [m for m in members if m.reward is not None]
    return sorted(scored, key=lambda m: (-float(m.reward or 0.0), m.id))


def export_rows(conn: sqlite3.Connection, run_id: int, options: ExportOptions) -> Iterator[dict[str, Any]]:
    """The JSONL objects an export writes, in the run's order."""
    cached: dict[int, tuple[str, dict[str, Any]]] = {}
    group_index = group_indexer(conn, run_id) if options.with_source else None

    def group(group_id: int) -> tuple[str, dict[str, Any]]:
        """The group's prompt, and what joins its rows back (empty without with_source)."""
        if group_id not in cached:
            row = conn.execute(
                "SELECT prompt, step, prompt_index, columns FROM groups WHERE id = ?", (group_id,)
            ).fetchone()
            cached.clear()  # groups come in order: one cached group is enough
            source: dict[str, Any] = {}
            if row is not None and group_index is not None:
                source = {"run_id": run_id, "step": row[1], "group": group_id}
                source |= {"group_index": group_index(group_id), "prompt_index": row[2]}
                source["columns"] = dataset_columns(row[3])
            cached[group_id] = (str(row[0]) if row else "", source)
        return cached[group_id]

    def prompt(group_id: int) -> str:
        return group(group_id)[0]

    def sourced(group_id: int, row: dict[str, Any], **ids: int) -> dict[str, Any]:
        source = group(group_id)[1]
        if not source:
            return row
        row |= ids
        row |= {k: v for k, v in source.items() if k != "columns"}
        return with_columns(row, source["columns"])

    for group_id, members in _groups(conn, run_id, options):
        if options.kind == "sft":
            if options.source == "labels":
                chosen = [m for m in members if m.label == 1]
            else:
                ranked = _by_reward(members)
                if options.min_reward is not None:
                    ranked = [m for m in ranked if float(m.reward or 0.0) >= options.min_reward]
                chosen = ranked[: options.per_group]
            for m in chosen:
                yield sourced(
                    group_id, {"prompt": prompt(group_id), "completion": m.completion}, rollout_id=m.id
                )
        elif options.source == "labels":
            good = [m for m in members if m.label == 1]
            bad = [m for m in members if m.label == -1]
            for g in good:
                for b in bad:
                    pair = {"prompt": prompt(group_id), "chosen": g.completion, "rejected": b.completion}
                    yield sourced(group_id, pair, chosen_id=g.id, rejected_id=b.id)
        else:
            ranked = _by_reward(members)
            if len(ranked) >= 2:
                best, worst = ranked[0], ranked[-1]
                if float(best.reward or 0.0) - float(worst.reward or 0.0) > options.min_margin:
                    pair = {
                        "prompt": prompt(group_id),
                        "chosen": best.completion,
                        "rejected": worst.completion,
                    }
                    yield sourced(group_id, pair, chosen_id=best.id, rejected_id=worst.id)


def export_jsonl(conn: sqlite3.Connection, run_id: int, path: str | Path, options: ExportOptions) -> int:
    """Write an export to ``path`` (replacing it). Returns the number of rows written.

    The file appears whole or not at all: rows go to a temporary file that is renamed at the end.
    """
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    written = 0
    try:
        with open(partial, "w", encoding="utf-8") as out:
            for row in export_rows(conn, run_id, options):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return written
