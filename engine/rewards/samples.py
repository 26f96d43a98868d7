"""Reading sample and dataset JSONL files for `rubric test` and `rubric redteam`, with errors that say
which file and line is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.data import json_lines
from engine.rewards.api import RewardBatch
from engine.rewards.shapes import shape_completions

RESERVED = ("prompt", "completion", "completion_ids")


class SampleError(ValueError):
    """A sample or dataset file is unreadable or malformed; the message names the file and line."""


def read_jsonl(path: str | Path, required: tuple[str, ...] = ("prompt",)) -> list[dict[str, Any]]:
    rows = []
    for lineno, row in json_lines(path, SampleError):
        for key in required:
            if key not in row:
                raise SampleError(f"{path}:{lineno}: missing '{key}'")
        for key in ("prompt", "completion"):
            if key in row and not _is_text(row[key]):
                raise SampleError(f"{path}:{lineno}: '{key}' must be a string or a list of messages")
        ids = row.get("completion_ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, int) for i in ids)):
            raise SampleError(f"{path}:{lineno}: 'completion_ids' must be a list of integers")
        rows.append(row)
    if not rows:
        raise SampleError(f"{path}: the file has no rows")
    return rows


def _is_text(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(m, dict) and "content" in m for m in value)


def batch_from_rows(rows: list[dict[str, Any]], completions: list[Any] | None = None) -> RewardBatch:
    """A batch from dataset rows: the rows' own completions, or `completions` given for them, each in the
    shape training hands it (a string for a standard prompt, a message list for a conversational one)."""
    names: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for k in row:
            if k not in RESERVED and k not in seen:
                seen.add(k)
                names.append(k)
    columns = {name: [row.get(name) for row in rows] for name in names}
    ids = [row.get("completion_ids") for row in rows]
    prompts = [row["prompt"] for row in rows]
    given = [row["completion"] for row in rows] if completions is None else completions
    return RewardBatch(
        prompts=prompts,
        completions=shape_completions(prompts, given),
        columns=columns,
        completion_ids=ids if completions is None and all(i is not None for i in ids) else None,  # type: ignore[arg-type]
    )
