"""Datasets in the workspace, registered one way by the engine (a run's train and eval files) and by
the studio (the demo's files, a file the user adds).

A dataset is known by its file: registering a path again keeps the name it was first given (the one the
user sees in the sidebar and in run configs) and refreshes its row count and columns, which describe the
file as it is now.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path


def register_dataset(
    c: sqlite3.Connection, path: str | Path, rows: int, columns: Sequence[str], name: str | None = None
) -> int:
    """Register the JSONL file at ``path`` (made absolute) and return its dataset id. ``name`` defaults
    to the file's stem. Call it inside a write transaction."""
    resolved = str(Path(path).expanduser().resolve())
    c.execute(
        "INSERT INTO datasets(name, path, rows, columns, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(path) DO UPDATE SET rows = excluded.rows, columns = excluded.columns",
        (name or Path(resolved).stem, resolved, int(rows), json.dumps(list(columns)), time.time()),
    )
    return int(c.execute("SELECT id FROM datasets WHERE path = ?", (resolved,)).fetchone()[0])
