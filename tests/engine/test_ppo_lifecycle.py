"""PPO's run lifecycle: the step-boundary decisions (engine/lifecycle.py) as plain Python, then the CLI end
to end as a subprocess on the bundled tiny model, exactly as GRPO's are tested in test_engine_e2e.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import engine_cmd, engine_env, requires_demo, write_config
from engine_proc import EngineProcess

from engine import control
from engine.contract.protocol import (
    CheckpointSaved,
    Finished,
    Progress,
    RolloutsWritten,
    RunStarted,
    StatusChanged,
)
from engine.lifecycle import Decision, Lifecycle


# ---- the decisions, without a model -------------------------------------------------------------------
class FakeSession:
    def __init__(self, **training: Any) -> None:
        schedule: dict[str, Any] = {"max_steps": 10, "checkpoint_every": 4, "eval_every": 3}
        self.cfg = SimpleNamespace(training=SimpleNamespace(**(schedule | training)))
        self.controller = control.Controller()
        self.statuses: list[tuple[str, int]] = []
        self.ended: list[int] = []

    def set_status(self, status: str, step: int) -> None:
        self.statuses.append((status, step))

    def log(self, message: str) -> None:
        pass

    def step_began(self) -> None:
        pass

    def step_ended(self, step: int) -> None:
        self.ended.append(step)


def make_lifecycle(**training: Any) -> tuple[Lifecycle, FakeSession, list[int]]:
    session = FakeSession(**training)
    saved: list[int] = []
    return Lifecycle(session, save=saved.append), session, saved


def test_after_step_saves_on_schedule_and_at_the_end_and_evaluates_before_the_end() -> None:
    lifecycle, session, _ = make_lifecycle()
    decisions = {step: lifecycle.after_step(step) for step in range(1, 11)}
    assert [s for s, d in decisions.items() if d.save] == [4, 8, 10]
    assert [s for s, d in decisions.items() if d.evaluate] == [3, 6, 9]
    assert not any(d.stop for d in decisions.values())
    assert session.ended == list(range(1, 11))


def test_checkpoint_and_stop_requests_are_taken_once() -> None:
    lifecycle, session, _ = make_lifecycle()
    session.controller.apply("checkpoint")
    session.controller.apply("checkpoint")
    assert lifecycle.after_step(1) == Decision(save=True)
    assert lifecycle.after_step(2) == Decision()
    session.controller.apply("stop")
    assert lifecycle.after_step(3) == Decision(save=True, evaluate=True, stop=True)


def test_a_stop_before_a_step_saves_unless_saved_already_or_nothing_trained() -> None:
    lifecycle, session, saved = make_lifecycle()
    session.controller.apply("stop")
    assert lifecycle.before_step(0) == Decision(save=False, stop=True)
    assert lifecycle.before_step(5) == Decision(save=True, stop=True)
    lifecycle.save_now(5)
    lifecycle.save_now(5)
    assert saved == [5]
    assert lifecycle.before_step(5) == Decision(save=False, stop=True)


def test_pause_waits_writes_requested_checkpoints_and_resumes() -> None:
    lifecycle, session, saved = make_lifecycle()
    controller = session.controller
    controller.apply("pause")
    waits = iter(["checkpoint", "checkpoint", "resume"])

    def wait(seconds: float) -> None:  # each wait, the next command arrives
        controller.apply(next(waits))

    controller.wait = wait  # type: ignore[method-assign]
    lifecycle.begin(7)
    assert lifecycle.before_step(7) == Decision()
    assert saved == [7]  # asked for twice while paused, written once
    assert session.statuses == [("running", 7), ("paused", 7), ("running", 7)]


# ---- end to end through the protocol ------------------------------------------------------------------
def query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def write_ppo_config(tmp_path: Path, **training: object) -> Path:
    values: dict[str, object] = {"beta": 0.05, "target_kl": 0.5, "kl_horizon": 100, "num_minibatches": 2}
    values["ppo_epochs"] = 2
    values.update(training)
    path = write_config(tmp_path, **values)
    path.write_text(path.read_text().replace('algorithm = "grpo"', 'algorithm = "ppo"', 1))
    return path


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


def step_metrics(db: Path, run_id: int, key: str) -> dict[int, float]:
    sql = "SELECT step, value FROM metrics WHERE run_id = ? AND key = ? ORDER BY step"
    return dict(query(db, sql, run_id, key))


@requires_demo
def test_ppo_pause_checkpoint_resume_stop(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_ppo_config(tmp_path, max_steps=200, checkpoint_every=100)
    engine = EngineProcess("run", str(cfg), "--db", str(db), "--name", "steered")
    run_id = engine.wait_for(lambda e: isinstance(e, RunStarted)).run_id
    engine.wait_for(lambda e: isinstance(e, Progress) and e.step >= 2 and e.phase == "train")

    engine.send("pause")
    engine.send("pause")  # idempotent
    engine.wait_for(lambda e: isinstance(e, StatusChanged) and e.status == "paused")
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("paused",)]
    paused_at = query(db, "SELECT MAX(step) FROM metrics WHERE run_id = ?", run_id)[0][0]
    engine.send("checkpoint")  # honoured while paused
    saved = engine.wait_for(lambda e: isinstance(e, CheckpointSaved))
    assert saved.step == paused_at
    assert query(db, "SELECT MAX(step) FROM metrics WHERE run_id = ?", run_id)[0][0] == paused_at

    engine.send("resume")
    engine.wait_for(lambda e: isinstance(e, StatusChanged) and e.status == "running")
    engine.wait_for(lambda e: isinstance(e, Progress) and e.step >= paused_at + 2)
    engine.send("stop")
    engine.send("stop")
    done = engine.wait_for(lambda e: isinstance(e, Finished))
    assert done.status == "stopped"
    assert engine.finish() == 0, engine.stderr[-3000:]

    step = done.step
    assert query(db, "SELECT status, step, algorithm FROM runs WHERE id = ?", run_id) == [
        ("stopped", step, "ppo")
    ]
    ckpt = query(db, "SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step", run_id)[-1]
    assert ckpt[0] == step
    files = {p.relative_to(ckpt[1]).as_posix() for p in Path(ckpt[1]).rglob("*") if p.is_file()}
    assert {
        "rl_studio_complete.json",
        "adapter_model.safetensors",
        "value/adapter_model.safetensors",
        "value_head.pt",
        "optimizer.pt",
        "scheduler.pt",
        "trainer_state.json",
        "rng_state_0.pth",
    } <= files
    assert_each_step_recorded_once(db, run_id, step, per_step=8)
    keys = {k for (k,) in query(db, "SELECT DISTINCT key FROM metrics WHERE run_id = ?", run_id)}
    assert {
        "reward",
        "reward_std",
        "loss",
        "kl",
        "entropy",
        "learning_rate",
        "completions/mean_length",
        "rewards/correct/mean",
        "rewards/correct/error_rate",
        "eval/correct/mean",
        "ppo/policy_loss",
        "ppo/value_loss",
        "ppo/explained_variance",
        "ppo/approx_kl",
        "ppo/clip_fraction",
        "ppo/kl_coef",
        "ppo/return_mean",
        "ppo/value_mean",
    } <= keys
    assert query(db, "SELECT COUNT(*) FROM rollouts WHERE run_id = ? AND advantage IS NULL", run_id) == [(0,)]
    # every rollout carries the critic's value and the return at its first token, and they are not one number
    assert query(
        db,
        "SELECT COUNT(*) FROM rollouts WHERE run_id = ? AND (value IS NULL OR value_target IS NULL)",
        run_id,
    ) == [(0,)]
    assert (
        query(db, "SELECT COUNT(*) FROM rollouts WHERE run_id = ? AND value != value_target", run_id)[0][0]
        > 0
    )
    types = [e.type for e in engine.events]
    assert types.count("rollouts_written") == step
    assert "error" not in types


@requires_demo
def test_ppo_kill_then_resume_records_every_step_once_and_repeats_the_same_steps(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_ppo_config(tmp_path, max_steps=6, checkpoint_every=2)
    straight = subprocess.run(
        engine_cmd("run", str(cfg), "--db", str(db)), capture_output=True, text=True, env=engine_env()
    )
    assert straight.returncode == 0, straight.stderr[-3000:]

    engine = EngineProcess("run", str(cfg), "--db", str(db))
    run_id = engine.wait_for(lambda e: isinstance(e, RunStarted)).run_id
    engine.wait_for(lambda e: isinstance(e, CheckpointSaved) and e.step == 2)
    engine.wait_for(lambda e: isinstance(e, RolloutsWritten) and e.step == 3)
    engine.proc.kill()  # kill -9: no chance to clean up
    engine.finish()
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("running",)]

    resumed = EngineProcess("resume", str(run_id), "--db", str(db))
    assert resumed.wait_for(lambda e: isinstance(e, RunStarted)).resumed_from_step == 2
    assert resumed.wait_for(lambda e: isinstance(e, Finished)).status == "finished"
    assert resumed.finish() == 0, resumed.stderr[-3000:]
    assert query(db, "SELECT status, step FROM runs WHERE id = ?", run_id) == [("finished", 6)]
    assert_each_step_recorded_once(db, run_id, 6, per_step=8)
    evals = query(
        db,
        "SELECT DISTINCT step FROM metrics WHERE run_id = ? AND key = 'eval/reward/mean' ORDER BY step",
        run_id,
    )
    assert evals == [(0,), (6,)]
    # The checkpoint holds everything a step depends on (adapters, head, optimizer, scheduler, KL
    # controller, RNG): on CPU the resumed steps repeat the uninterrupted run's.
    for key in ("reward", "loss", "ppo/kl_coef", "ppo/value_mean"):
        assert step_metrics(db, run_id, key) == pytest.approx(step_metrics(db, 1, key), rel=1e-5, abs=1e-7)
    assert (tmp_path / "ws_files" / "runs" / str(run_id) / "adapter" / "adapter_model.safetensors").is_file()


@requires_demo
def test_ppo_sigterm_is_a_graceful_stop_with_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_ppo_config(tmp_path, max_steps=200, checkpoint_every=0)
    engine = EngineProcess("run", str(cfg), "--db", str(db))
    run_id = engine.wait_for(lambda e: isinstance(e, RunStarted)).run_id
    engine.wait_for(lambda e: isinstance(e, Progress) and e.step >= 1 and e.phase == "train")
    os.kill(engine.proc.pid, signal.SIGTERM)
    saved = engine.wait_for(lambda e: isinstance(e, CheckpointSaved))
    assert engine.wait_for(lambda e: isinstance(e, Finished)).status == "stopped"
    assert engine.finish() == 0
    assert query(db, "SELECT status, step FROM runs WHERE id = ?", run_id) == [("stopped", saved.step)]


@requires_demo
def test_demo_prints_a_complete_ppo_config() -> None:
    printed = subprocess.run(
        engine_cmd("demo", "--print-config", "--algorithm", "ppo"),
        capture_output=True,
        text=True,
        env=engine_env(),
        check=True,
    ).stdout
    assert printed.startswith('algorithm = "ppo"')
    for key in ("vf_coef", "gamma", "lam", "ppo_epochs", "num_minibatches", "kl_estimator", "target_kl"):
        assert f"\n{key} = " in printed


@pytest.mark.slow
@requires_demo
def test_ppo_under_torchrun_with_two_processes(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_ppo_config(tmp_path, max_steps=2, checkpoint_every=2)
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
    ckpt = Path(query(db, "SELECT path FROM checkpoints WHERE step = 2")[0][0])
    assert (ckpt / "rng_state_0.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()
