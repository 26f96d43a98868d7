"""The engine CLI end to end, as a subprocess on the bundled tiny model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import engine_cmd, engine_env, requires_demo, write_config
from engine_proc import EngineProcess

from engine.contract.paths import DEMO_DIR
from engine.contract.protocol import (
    CheckpointSaved,
    Finished,
    Hello,
    Progress,
    RolloutsWritten,
    RunStarted,
    StatusChanged,
)
from engine.contract.rollout_rows import ROLLOUT_FIELDS

pytestmark = requires_demo


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def assert_each_step_recorded_once(db: Path, run_id: int, steps: int, per_step: int) -> None:
    assert query(db, "SELECT step, COUNT(*) FROM rollouts WHERE run_id = ? GROUP BY step", run_id) == [
        (s, per_step) for s in range(1, steps + 1)
    ]
    dupes = query(
        db,
        "SELECT step, key, COUNT(*) FROM metrics WHERE run_id = ? GROUP BY step, key HAVING COUNT(*) > 1",
        run_id,
    )
    assert dupes == []
    assert query(
        db, "SELECT COUNT(DISTINCT step) FROM metrics WHERE run_id = ? AND key = 'loss'", run_id
    ) == [(steps,)]


def test_run_pause_resume_checkpoint_stop(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=200, checkpoint_every=100)
    engine = EngineProcess("run", str(cfg), "--db", str(db), "--name", "steered")
    assert engine.wait_for(lambda e: isinstance(e, Hello)).pid == engine.proc.pid
    run_id = engine.wait_for(lambda e: isinstance(e, RunStarted)).run_id
    engine.wait_for(lambda e: isinstance(e, Progress) and e.step >= 2 and e.phase == "train")

    engine.send("pause")
    engine.send("pause")  # idempotent
    engine.wait_for(lambda e: isinstance(e, StatusChanged) and e.status == "paused")
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("paused",)]
    paused_at = query(db, "SELECT MAX(step) FROM metrics WHERE run_id = ?", run_id)[0][0]
    time.sleep(2.0)
    assert query(db, "SELECT MAX(step) FROM metrics WHERE run_id = ?", run_id)[0][0] == paused_at
    engine.send("checkpoint")  # honoured while paused
    saved = engine.wait_for(lambda e: isinstance(e, CheckpointSaved))
    assert saved.step == paused_at

    engine.send("resume")
    engine.wait_for(lambda e: isinstance(e, StatusChanged) and e.status == "running")
    engine.wait_for(lambda e: isinstance(e, Progress) and e.step >= paused_at + 2)
    engine.send("stop")
    engine.send("stop")
    done = engine.wait_for(lambda e: isinstance(e, Finished))
    assert done.status == "stopped"
    assert engine.finish() == 0

    step = done.step
    assert query(db, "SELECT status, step, name FROM runs WHERE id = ?", run_id) == [
        ("stopped", step, "steered")
    ]
    ckpts = query(db, "SELECT step FROM checkpoints WHERE run_id = ? AND complete = 1 ORDER BY step", run_id)
    assert ckpts[-1] == (step,)
    assert (
        Path(query(db, "SELECT path FROM checkpoints WHERE step = ?", step)[0][0]) / "rl_studio_complete.json"
    ).is_file()
    assert_each_step_recorded_once(db, run_id, step, per_step=8)
    # per-criterion scores for every rollout, and the logged total is what was optimised
    assert (
        query(db, "SELECT COUNT(*) FROM scores s JOIN rollouts r ON r.id = s.rollout_id")[0][0]
        == 8 * step * 3
    )
    keys = {k for (k,) in query(db, "SELECT DISTINCT key FROM metrics WHERE run_id = ?", run_id)}
    assert {
        "reward",
        "loss",
        "rewards/correct/mean",
        "rewards/correct/error_rate",
        "eval/correct/mean",
        "eval/reward/mean",
        "frac_reward_zero_std",
        "completions/mean_length",
        "entropy",
    } <= keys
    reward_gap = query(
        db,
        """SELECT MAX(ABS(r.reward - (SELECT SUM(CASE s.criterion WHEN 'correct' THEN 1.0
        WHEN 'format' THEN 0.2 ELSE 0 END * s.value) FROM scores s WHERE s.rollout_id = r.id))) FROM rollouts r""",
    )
    assert reward_gap[0][0] < 1e-9
    # the event stream tells the same story as the file
    types = [e.type for e in engine.events]
    assert types.count("rollouts_written") == step
    assert "error" not in types


def test_kill_then_resume_records_every_step_once(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=6, checkpoint_every=2)
    engine = EngineProcess("run", str(cfg), "--db", str(db))
    run_id = engine.wait_for(lambda e: isinstance(e, RunStarted)).run_id
    engine.wait_for(lambda e: isinstance(e, CheckpointSaved) and e.step == 2)
    engine.wait_for(lambda e: isinstance(e, RolloutsWritten) and e.step == 3)
    engine.proc.kill()  # kill -9: no chance to clean up
    engine.finish()
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("running",)]

    resumed = EngineProcess("resume", str(run_id), "--db", str(db))
    started = resumed.wait_for(lambda e: isinstance(e, RunStarted))
    assert started.resumed_from_step == 2
    assert resumed.wait_for(lambda e: isinstance(e, Finished)).status == "finished"
    assert resumed.finish() == 0
    assert query(db, "SELECT status, step FROM runs WHERE id = ?", run_id) == [("finished", 6)]
    assert_each_step_recorded_once(db, run_id, 6, per_step=8)
    evals = query(
        db,
        "SELECT DISTINCT step FROM metrics WHERE run_id = ? AND key = 'eval/reward/mean' ORDER BY step",
        run_id,
    )
    assert evals == [(0,), (6,)]
    listing = subprocess.run(
        engine_cmd("runs", "--db", str(db), "--json"),
        capture_output=True,
        text=True,
        env=engine_env(),
        check=True,
    )
    assert json.loads(listing.stdout) == [
        {
            "id": run_id,
            "name": query(db, "SELECT name FROM runs")[0][0],
            "status": "finished",
            "algorithm": "grpo",
            "step": 6,
            "max_steps": 6,
            "error": None,
            "resumable": False,
        }
    ]
    again = subprocess.run(
        engine_cmd("resume", str(run_id), "--db", str(db)), capture_output=True, text=True, env=engine_env()
    )
    assert again.returncode == 2 and "already finished" in again.stderr


def test_sigterm_is_a_graceful_stop_with_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=200, checkpoint_every=0)
    engine = EngineProcess("run", str(cfg), "--db", str(db))
    run_id = engine.wait_for(lambda e: isinstance(e, RunStarted)).run_id
    engine.wait_for(lambda e: isinstance(e, Progress) and e.step >= 1 and e.phase == "train")
    os.kill(engine.proc.pid, signal.SIGTERM)
    saved = engine.wait_for(lambda e: isinstance(e, CheckpointSaved))
    assert engine.wait_for(lambda e: isinstance(e, Finished)).status == "stopped"
    assert engine.finish() == 0
    assert query(db, "SELECT status, step FROM runs WHERE id = ?", run_id) == [("stopped", saved.step)]


def test_export_metrics_and_rollouts(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=2, checkpoint_every=0)
    run = subprocess.run(
        engine_cmd("run", str(cfg), "--db", str(db)),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = subprocess.run(
        engine_cmd("export", "1", "--db", str(db), "--what", "rollouts"),
        capture_output=True,
        text=True,
        env=engine_env(),
        check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 16
    assert list(rows[0]) == [*ROLLOUT_FIELDS, "answer", "reference"]  # then the demo's dataset columns
    train = (DEMO_DIR / "data" / "train.jsonl").read_text().splitlines()
    assert all(json.loads(train[r["prompt_index"]])["answer"] == r["answer"] for r in rows)
    assert set(rows[0]["scores"]) == {"correct", "format", "length"}
    csv_out = subprocess.run(
        engine_cmd("export", "1", "--db", str(db), "--what", "metrics", "--format", "csv"),
        capture_output=True,
        text=True,
        env=engine_env(),
        check=True,
    ).stdout
    assert csv_out.splitlines()[0] == "step,key,value"
    assert any(line.startswith("1,reward,") for line in csv_out.splitlines())


def test_demo_command_prints_scores_before_and_after(tmp_path: Path) -> None:
    printed = subprocess.run(
        engine_cmd("demo", "--print-config"), capture_output=True, text=True, env=engine_env(), check=True
    ).stdout
    assert 'algorithm = "grpo"' in printed and str(DEMO_DIR) in printed
    db = tmp_path / "demo.sqlite"
    proc = subprocess.run(
        engine_cmd("demo", "--db", str(db), "--steps", "2", "--json"),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["status"] == "finished" and summary["seconds"] > 0
    for key in ("eval_before", "eval_after"):
        assert set(summary[key]) == {"correct", "format", "length", "reward"}
        assert 0.0 <= summary[key]["correct"] <= 1.0
    steps = query(db, "SELECT DISTINCT step FROM metrics WHERE key = 'eval/correct/mean' ORDER BY step")
    assert steps == [(0,), (2,)]


def test_two_processes_record_one_run(tmp_path: Path) -> None:
    """The same command under a distributed launcher (torchrun here; `accelerate launch` sets the same
    environment): every process trains, the main one alone records and emits."""
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=2, checkpoint_every=2)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "engine.cli"]
    proc = subprocess.run(
        [*torchrun, "run", str(cfg), "--db", str(db)],
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["type"] for e in events].count("hello") == 1
    assert query(db, "SELECT id, status FROM runs") == [(1, "finished")]
    assert_each_step_recorded_once(db, 1, 2, per_step=16)  # 8 completions per process per step, gathered
