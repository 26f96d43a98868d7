"""Bad input ends a run with one clear message: non-zero exit, an error event, the run marked failed."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import engine_cmd, engine_env, requires_demo, write_config

from engine.contract.paths import DEMO_DIR
from engine.contract.protocol import ErrorReported, parse_event

pytestmark = requires_demo


def run_engine(cfg: Path, db: Path) -> tuple[int, list, str]:
    proc = subprocess.run(
        engine_cmd("run", str(cfg), "--db", str(db)),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=300,
    )
    events = [parse_event(line) for line in proc.stdout.splitlines()]
    return proc.returncode, events, proc.stderr


def assert_failed_cleanly(cfg: Path, db: Path, *needles: str) -> None:
    code, events, stderr = run_engine(cfg, db)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    errors = [e for e in events if isinstance(e, ErrorReported)]
    assert len(errors) == 1 and errors[0].kind == "input"
    message = errors[0].message
    for needle in needles:
        assert needle in message
    # checked before the run row is created: a typo leaves no `failed` run behind
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, error FROM runs").fetchall() == []
    assert isinstance(events[-1], ErrorReported)


def edit(cfg: Path, old: str, new: str) -> None:
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new))


def test_malformed_dataset_line_names_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    lines = (DEMO_DIR / "data" / "train.jsonl").read_text().splitlines()[:5]
    lines[2] = '{"prompt": "1+1=", "answer": '
    data.write_text("\n".join(lines) + "\n")
    cfg = write_config(tmp_path)
    edit(cfg, str(DEMO_DIR / "data" / "train.jsonl"), str(data))
    assert_failed_cleanly(cfg, tmp_path / "ws.sqlite", f"{data}:3", "not valid JSON")


def test_missing_model_path_is_named(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    edit(cfg, str(DEMO_DIR / "model"), str(tmp_path / "no-such-model"))
    assert_failed_cleanly(cfg, tmp_path / "ws.sqlite", str(tmp_path / "no-such-model"), "does not exist")


def test_rubric_source_that_does_not_exist(tmp_path: Path) -> None:
    rubric_dir = tmp_path / "rubric"
    shutil.copytree(DEMO_DIR, rubric_dir, ignore=shutil.ignore_patterns("model", "data"))
    (rubric_dir / "rewards.py").unlink()
    cfg = write_config(tmp_path)
    edit(cfg, str(DEMO_DIR / "rubric.toml"), str(rubric_dir / "rubric.toml"))
    assert_failed_cleanly(cfg, tmp_path / "ws.sqlite", "correct", "rewards.py")


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("num_generations = 4", "num_generations = 1", "num_generations must be at least 2"),
        ("learning_rate = 0.005", 'learning_rate = "high"', "learning_rate must be a number"),
    ],
)
def test_invalid_config_value(tmp_path: Path, old: str, new: str, needle: str) -> None:
    cfg = write_config(tmp_path)
    edit(cfg, old, new)
    assert_failed_cleanly(cfg, tmp_path / "ws.sqlite", needle, str(cfg))


def test_workspace_that_is_not_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "notes.sqlite"
    db.write_text("not a database " * 200)
    code, events, stderr = run_engine(write_config(tmp_path), db)
    assert code == 2 and "Traceback" not in stderr
    assert [e.type for e in events] == ["hello", "error"]
    assert isinstance(events[-1], ErrorReported) and "not an RL Studio workspace" in events[-1].message
