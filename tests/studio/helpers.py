"""Build workspaces the way the engine writes them, and run the fake engine."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from fake_engine import metric_values

from engine.contract import schema
from engine.contract.paths import DEMO_DIR

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
REPO = HERE.parents[1]
DEMO_LIKE_CONFIG = """
name = "tiny"
[model]
path = "{demo}/model"
[data]
train = "{demo}/data/train.jsonl"
[rubric]
path = "{demo}/rubric.toml"
[training]
max_steps = 8
"""


def fake_engine_command(fixture: str, interval: float = 0.03) -> list[str]:
    return [
        sys.executable,
        str(HERE / "fake_engine.py"),
        "--fixture",
        str(FIXTURES / fixture),
        "--interval",
        str(interval),
    ]


def write_config(folder: Path) -> Path:
    """A valid run config (its files need not exist for the fake engine)."""
    path = folder / "run.toml"
    path.write_text(DEMO_LIKE_CONFIG.format(demo=DEMO_DIR.as_posix()))
    return path


def add_run(
    db_path: Path | str,
    name: str = "run",
    status: str = "finished",
    steps: int = 20,
    max_steps: int | None = None,
    checkpoint_at: int | None = None,
    pid: int | None = None,
    error: str | None = None,
    config: dict[str, object] | None = None,
) -> int:
    """A run with `steps` steps of metrics, written in the engine's shape (one transaction per step)."""
    conn = schema.connect(str(db_path))
    schema.migrate(conn)
    max_steps = max_steps or steps
    now = time.time()
    with conn:
        run_id = int(
            conn.execute(
                "INSERT INTO runs(name, status, algorithm, config, max_steps, step, pid, error, created_at, started_at,"
                " updated_at) VALUES (?, ?, 'grpo', ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, status, json.dumps(config or {}), max_steps, steps, pid, error, now, now, now),
            ).lastrowid
            or 0
        )
        for step in range(1, steps + 1):
            conn.executemany(
                "INSERT INTO metrics(run_id, step, key, value, time) VALUES (?, ?, ?, ?, ?)",
                [(run_id, step, k, v, now) for k, v in metric_values(step, max_steps).items()],
            )
        if checkpoint_at:
            conn.execute(
                "INSERT INTO checkpoints(run_id, step, path, complete, created_at) VALUES (?, ?, '/x', 1, ?)",
                (run_id, checkpoint_at, now),
            )
    conn.close()
    return run_id


def add_metrics(db_path: Path | str, run_id: int, steps: range, max_steps: int = 100) -> None:
    conn = schema.connect(str(db_path))
    with conn:
        for step in steps:
            conn.executemany(
                "INSERT INTO metrics(run_id, step, key, value, time) VALUES (?, ?, ?, ?, ?)",
                [(run_id, step, k, v, time.time()) for k, v in metric_values(step, max_steps).items()],
            )
            conn.execute("UPDATE runs SET step = ?, updated_at = ? WHERE id = ?", (step, time.time(), run_id))
    conn.close()


def set_status(db_path: Path | str, run_id: int, status: str) -> None:
    conn = schema.connect(str(db_path))
    with conn:
        conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", (status, time.time(), run_id))
    conn.close()
