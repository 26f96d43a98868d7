"""Metrics out of the workspace as CSV: one row per (run, step), one column per metric key."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from studio.state.workspace import WorkspaceDB


def export_metrics_csv(db: WorkspaceDB, run_ids: list[int], path: str | Path) -> int:
    """Write the raw (unsmoothed) metrics of ``run_ids``. Returns the number of rows written."""
    keys: list[str] = []
    for run_id in run_ids:
        keys.extend(k for k in db.metric_keys(run_id) if k not in keys)
    keys.sort()
    column = {k: i for i, k in enumerate(keys)}
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["run_id", "run_name", "step", *keys])
        for run_id in run_ids:
            run = db.run(run_id)
            name = run.name if run else ""
            rows: dict[int, list[object]] = defaultdict(lambda: [""] * len(keys))
            for step, key, value in db.conn.execute(
                "SELECT step, key, value FROM metrics WHERE run_id = ? ORDER BY id", (run_id,)
            ):
                rows[step][column[key]] = "" if value is None else value
            for step in sorted(rows):
                out.writerow([run_id, name, step, *rows[step]])
                written += 1
    return written
