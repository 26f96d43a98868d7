"""What a rollout export row holds, shared by `rl-studio-engine export` and the studio's exports.

An exported rollout must be joinable back to what produced it:

- `prompt_index` is the prompt's row in the run's training file (0-based, counting data rows), so
  `rows[prompt_index]` of that file is the row the prompt came from;
- `group` is the group's id in the workspace (unique across runs); `group_index` is its position in the
  run (0-based, in the order the engine wrote groups: by step, then prompt), the same in every export;
- the dataset's other columns (`answer`, ...), stored with each group, follow under their own names.
  A column named like one of the row's own fields is written as `dataset.<name>` instead.

Standard library only: the studio imports this.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import Any

ROLLOUT_FIELDS = (
    "id",
    "run_id",
    "step",
    "group",
    "group_index",
    "prompt_index",
    "prompt",
    "completion",
    "reward",
    "advantage",
    "value",
    "value_target",
    "completion_tokens",
    "truncated",
    "scores",
    "errors",
)
"""The fields of `rl-studio-engine export --what rollouts`, in order; dataset columns follow. `value` and
`value_target` are PPO's critic estimate and return at the completion's first token (null for GRPO)."""

DATASET_PREFIX = "dataset."


def dataset_columns(columns_json: str | None) -> dict[str, Any]:
    """A group's stored dataset columns (JSON in groups.columns); {} when there are none."""
    if not columns_json:
        return {}
    value = json.loads(columns_json)
    return value if isinstance(value, dict) else {}


def column_name(name: str, taken: Iterable[str]) -> str:
    """The export name of dataset column `name` next to the fields in `taken`."""
    return DATASET_PREFIX + name if name in taken else name


def with_columns(row: dict[str, Any], columns: Mapping[str, Any]) -> dict[str, Any]:
    """`row` followed by the dataset columns, renamed where they would replace one of its fields."""
    fields = tuple(row)
    for name, value in columns.items():
        row[column_name(name, fields)] = value
    return row


def run_columns(conn: sqlite3.Connection, run_id: int) -> list[str]:
    """The dataset column names stored with a run's groups, in the order they first appear."""
    return [
        name
        for (name,) in conn.execute(
            "SELECT j.key FROM groups g, json_each(g.columns) j WHERE g.run_id = ? AND json_valid(g.columns)"
            " GROUP BY j.key ORDER BY MIN(g.id), MIN(j.id)",
            (run_id,),
        )
    ]


def group_indexer(conn: sqlite3.Connection, run_id: int) -> Callable[[int], int]:
    """A function from a group id of the run to its `group_index`. Reads the run's group ids once."""
    ids = [gid for (gid,) in conn.execute("SELECT id FROM groups WHERE run_id = ? ORDER BY id", (run_id,))]
    return lambda group_id: bisect.bisect_left(ids, group_id)


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: booleans as true/false (as in JSON), objects and lists as JSON, None empty."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value
