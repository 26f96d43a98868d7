"""Labels on rollouts: thumbs up (1) or down (-1) and a note, stored in the workspace's ``labels`` table.

The studio reads with its read-only connection; each label change is one short write transaction on
its own connection (the engine may be writing the same file: WAL lets both go on).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from engine.contract import schema

GOOD, NONE, BAD = 1, 0, -1
WRITE_TIMEOUT_S = 5.0


class LabelError(RuntimeError):
    """A label could not be saved; the message says why and what to do."""


@dataclass(frozen=True)
class Label:
    rollout_id: int
    label: int
    note: str

    @property
    def empty(self) -> bool:
        return self.label == NONE and not self.note


def save_label(workspace: str | Path, rollout_id: int, label: int, note: str) -> Label:
    """Store a rollout's label and note (both replace what was there). An empty label is deleted."""
    if label not in (GOOD, NONE, BAD):
        raise ValueError(f"label must be 1 (good), 0 (none) or -1 (bad), not {label!r}")
    result = Label(rollout_id, label, note.strip())
    try:
        conn = schema.connect(str(workspace), timeout_s=WRITE_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise LabelError(f"Could not open {workspace} to save the label ({exc}).") from None
    try:
        with conn:
            if result.empty:
                conn.execute("DELETE FROM labels WHERE rollout_id = ?", (rollout_id,))
            else:
                conn.execute(
                    "INSERT INTO labels(rollout_id, label, note, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(rollout_id) DO UPDATE SET label = excluded.label, note = excluded.note,"
                    " updated_at = excluded.updated_at",
                    (rollout_id, label, result.note or None, time.time()),
                )
    except sqlite3.OperationalError as exc:
        raise LabelError(
            f"The label was not saved: {exc}. If another program holds the workspace locked, try again; "
            "if the file is read-only, copy the workspace somewhere writable."
        ) from None
    finally:
        conn.close()
    return result


def read_labels(conn: sqlite3.Connection, rollout_ids: list[int]) -> dict[int, Label]:
    """The labels of these rollouts (absent ids have none)."""
    if not rollout_ids:
        return {}
    marks = ",".join("?" * len(rollout_ids))
    return {
        rid: Label(rid, label or 0, note or "")
        for rid, label, note in conn.execute(
            f"SELECT rollout_id, label, note FROM labels WHERE rollout_id IN ({marks})", rollout_ids
        )
    }


def label_counts(conn: sqlite3.Connection, run_id: int) -> tuple[int, int]:
    """(thumbs up, thumbs down) in a run."""
    row = conn.execute(
        "SELECT COALESCE(SUM(l.label = 1), 0), COALESCE(SUM(l.label = -1), 0)"
        " FROM labels l CROSS JOIN rollouts r ON r.id = l.rollout_id WHERE r.run_id = ?",
        (run_id,),
    ).fetchone()
    return int(row[0]), int(row[1])
