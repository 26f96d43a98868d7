"""Every step recorded exactly once in every fault, one engine per run: the real engine on the
tiny demo model, killed and resumed.

Marked slow (a few minutes together): scripts/test_slow.sh runs them, and scripts/fault_matrix.py kills
real runs at every phase. The store-level faults (concurrent writers, leases, damaged files, non-finite
values) are in test_reliability_store.py and run with every test command."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import engine_cmd, engine_env, requires_demo, write_config
from engine_proc import EngineProcess

pytestmark = [requires_demo, pytest.mark.slow]

PER_STEP = 8  # prompts_per_step 2 x num_generations 4 in write_config
EVAL_PROMPTS = 16  # eval_limit in write_config


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def assert_recorded_exactly_once(db: Path, run_id: int, max_steps: int, eval_steps: list[int]) -> None:
    assert query(db, "SELECT status, step FROM runs WHERE id = ?", run_id) == [("finished", max_steps)]
    assert query(db, "SELECT step, COUNT(*) FROM rollouts WHERE run_id = ? GROUP BY step", run_id) == [
        (s, PER_STEP) for s in range(1, max_steps + 1)
    ]
    assert query(db, "SELECT step FROM metrics WHERE run_id = ? AND key = 'loss' ORDER BY step", run_id) == [
        (s,) for s in range(1, max_steps + 1)
    ]
    assert query(
        db, "SELECT step FROM metrics WHERE run_id = ? AND key = 'eval/reward/mean' ORDER BY step", run_id
    ) == [(s,) for s in eval_steps]
    assert query(
        db, "SELECT step, COUNT(*) FROM evaluations WHERE run_id = ? GROUP BY step ORDER BY step", run_id
    ) == [(s, EVAL_PROMPTS) for s in eval_steps]
    run_dir = db.with_name(db.stem + "_files") / "runs" / str(run_id)
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_resume_before_the_first_checkpoint_records_step_zero_once(tmp_path: Path) -> None:
    """Killed before its first checkpoint, a run starts over: its step-0 evaluation is recorded once.
    Checkpoint folders a kill left half-written are removed when it resumes."""
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=3, checkpoint_every=3, eval_every=0)
    engine = EngineProcess("run", str(cfg), "--db", str(db))
    run_id = engine.wait_for(lambda e: e.type == "run_started").run_id
    engine.wait_for(lambda e: e.type == "rollouts_written" and getattr(e, "step", None) == 1)
    engine.proc.kill()
    engine.finish()
    run_dir = db.with_name("ws_files") / "runs" / str(run_id)
    for partial in ("checkpoint-3", "tmp-checkpoint-2", "adapter.partial"):
        (run_dir / partial).mkdir(parents=True)
        (run_dir / partial / "half-written.bin").write_bytes(b"\0" * 100)

    resumed = EngineProcess("resume", str(run_id), "--db", str(db))
    assert resumed.wait_for(lambda e: e.type == "run_started").resumed_from_step is None
    assert not (run_dir / "tmp-checkpoint-2").exists() and not (run_dir / "adapter.partial").exists()
    assert resumed.wait_for(lambda e: e.type == "finished").status == "finished"
    assert resumed.finish() == 0
    assert_recorded_exactly_once(db, run_id, 3, eval_steps=[0, 3])
    assert not (run_dir / "checkpoint-3" / "half-written.bin").exists()


def _rewind_to_kill_after_last_checkpoint(db: Path, run_id: int, max_steps: int, status: str) -> None:
    """Leave the workspace as a kill during the final save or final evaluation leaves it: the checkpoint
    at max_steps is complete; the adapter and the final evaluation are not there."""
    run_dir = db.with_name(db.stem + "_files") / "runs" / str(run_id)
    shutil.rmtree(run_dir / "adapter")
    dead = subprocess.Popen(["true"])
    dead.wait()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM evaluations WHERE run_id = ? AND step = ?", (run_id, max_steps))
        conn.execute(
            "DELETE FROM metrics WHERE run_id = ? AND step = ? AND key LIKE 'eval/%'", (run_id, max_steps)
        )
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = NULL, pid = ?, lease_token = 'linux:gone:1'"
            " WHERE id = ?",
            (status, dead.pid, run_id),
        )


@pytest.mark.parametrize("status", ["running", "stopped"])
def test_resume_after_the_last_checkpoint_finishes_without_training(tmp_path: Path, status: str) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=2, checkpoint_every=2, eval_every=0)
    done = subprocess.run(
        engine_cmd("run", str(cfg), "--db", str(db)), capture_output=True, text=True, env=engine_env()
    )
    assert done.returncode == 0, done.stderr[-3000:]
    final_eval = query(db, "SELECT prompt_index, completion FROM evaluations WHERE step = 2 ORDER BY id")
    _rewind_to_kill_after_last_checkpoint(db, 1, 2, status)

    resumed = EngineProcess("resume", "1", "--db", str(db))
    assert resumed.wait_for(lambda e: e.type == "run_started").resumed_from_step == 2
    finished = resumed.wait_for(lambda e: e.type == "finished")
    assert resumed.finish() == 0, resumed.stderr[-3000:]
    assert (finished.status, finished.step) == ("finished", 2)
    assert not [e for e in resumed.events if e.type in ("rollouts_written", "metrics_written")]
    assert_recorded_exactly_once(db, 1, 2, eval_steps=[0, 2])
    # the same adapter, evaluated with the same seed, samples the same completions
    assert (
        query(db, "SELECT prompt_index, completion FROM evaluations WHERE step = 2 ORDER BY id") == final_eval
    )


def test_two_resumes_of_one_run_one_trains_the_other_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=6, checkpoint_every=2, eval_every=0)
    engine = EngineProcess("run", str(cfg), "--db", str(db))
    run_id = engine.wait_for(lambda e: e.type == "run_started").run_id
    engine.wait_for(lambda e: e.type == "checkpoint_saved" and getattr(e, "step", None) == 2)
    engine.proc.kill()
    engine.finish()

    first = EngineProcess("resume", str(run_id), "--db", str(db))
    second = EngineProcess("resume", str(run_id), "--db", str(db))
    winners = []
    for proc in (first, second):
        with contextlib.suppress(AssertionError):
            proc.wait_for(lambda e: e.type in ("run_started", "error"), timeout=240)
    for proc in (first, second):
        kinds = [e.type for e in proc.events]
        if "run_started" in kinds:
            winners.append(proc)
    assert len(winners) == 1, [[e.type for e in p.events] for p in (first, second)]
    winner = winners[0]
    loser = second if winner is first else first
    assert loser.finish() == 2
    refusal = next(e for e in loser.events if e.type == "error").message
    assert f"process {winner.proc.pid}" in refusal and "Traceback" not in loser.stderr
    assert winner.wait_for(lambda e: e.type == "finished").status == "finished"
    assert winner.finish() == 0
    assert_recorded_exactly_once(db, run_id, 6, eval_steps=[0, 6])


@contextlib.contextmanager
def tiny_disk(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at `where` (root only; skips the test where mounting is not possible)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", f"rlstudio-{uuid.uuid4().hex[:8]}", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_disk_full_while_a_checkpoint_is_written_is_an_input_error(tmp_path: Path) -> None:
    """safetensors' error 28 is reported like any full disk: exit 2, the real run id and workspace, the
    run `failed` (not left `running`), no traceback; and the run resumes once there is space."""
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=4, checkpoint_every=2, eval_every=0)
    with tiny_disk(tmp_path / "ws_files", "40k"):
        engine = EngineProcess("run", str(cfg), "--db", str(db))
        assert engine.finish(timeout=300) == 2, engine.stderr[-3000:]
        errors = [e for e in engine.events if e.type == "error"]
        assert len(errors) == 1 and errors[0].kind == "input", engine.stderr[-3000:]
        message = errors[0].message
        assert "full" in message and f"resume 1 --db {db}" in message and "RUN_ID" not in message
        assert "Traceback" not in engine.stderr
        assert query(db, "SELECT status FROM runs") == [("failed",)]
        leftovers = [p.name for p in (tmp_path / "ws_files" / "runs" / "1").glob("checkpoint-*")]
        assert leftovers == []  # the half-written checkpoint was removed to make room
    resumed = subprocess.run(
        engine_cmd("resume", "1", "--db", str(db)), capture_output=True, text=True, env=engine_env()
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_recorded_exactly_once(db, 1, 4, eval_steps=[0, 4])


def test_disk_full_under_the_whole_workspace_never_leaves_running(tmp_path: Path) -> None:
    """The workspace file and its checkpoints on one disk that fills mid-run."""
    cfg = write_config(tmp_path, max_steps=200, checkpoint_every=1, keep_checkpoints=200, eval_every=0)
    with tiny_disk(tmp_path / "disk", "1500k") as disk:
        db = disk / "ws.sqlite"
        engine = EngineProcess("run", str(cfg), "--db", str(db))
        code = engine.finish(timeout=400)
        assert code == 2, engine.stderr[-3000:]
        assert "Traceback" not in engine.stderr
        message = next(e for e in engine.events if e.type == "error").message
        assert "full" in message and f"resume 1 --db {db}" in message
        listing = subprocess.run(
            engine_cmd("runs", "--db", str(db), "--json"), capture_output=True, text=True, env=engine_env()
        )
        status = [r["status"] for r in json.loads(listing.stdout)]
        assert status in (["failed"], ["interrupted"]), listing.stdout


def test_sigterm_twice_during_a_checkpoint_then_resume(tmp_path: Path) -> None:
    """A second SIGTERM stops at once, possibly mid-checkpoint; the resume still records each step once."""
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=6, checkpoint_every=1, eval_every=0)
    engine = EngineProcess("run", str(cfg), "--db", str(db))
    run_id = engine.wait_for(lambda e: e.type == "run_started").run_id
    engine.wait_for(lambda e: e.type == "rollouts_written" and getattr(e, "step", None) == 3)
    os.kill(engine.proc.pid, signal.SIGTERM)
    os.kill(engine.proc.pid, signal.SIGTERM)
    engine.finish()
    resumed = subprocess.run(
        engine_cmd("resume", str(run_id), "--db", str(db)), capture_output=True, text=True, env=engine_env()
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_recorded_exactly_once(db, run_id, 6, eval_steps=[0, 6])
