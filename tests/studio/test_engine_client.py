"""The engine client against a fake engine that replays recorded event streams."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest
from helpers import fake_engine_command, write_config

from engine.contract.protocol import (
    CheckpointSaved,
    Event,
    Finished,
    Hello,
    MetricsWritten,
    Progress,
    RunStarted,
    StatusChanged,
)
from studio.engine_client import EngineClient, EngineProcess, engine_command
from studio.state.studio_state import StudioState


def _collect(client: EngineClient) -> list[Event]:
    events: list[Event] = []
    client.sig_event.connect(lambda _proc, event: events.append(event))
    return events


def test_replays_a_run_to_the_end(qtbot, tmp_path: Path) -> None:
    client = EngineClient(command=fake_engine_command("run_ok.jsonl", interval=0.005))
    events = _collect(client)
    ws = str(tmp_path / "ws.sqlite")
    with qtbot.waitSignal(client.sig_exited, timeout=20_000) as exited:
        proc = client.start_run(write_config(tmp_path), ws, tmp_path / "logs", name="first")
    assert exited.args[0] is proc
    kinds = [type(e) for e in events]
    assert kinds[:2] == [Hello, RunStarted] and StatusChanged in kinds
    assert kinds.count(MetricsWritten) == 8
    assert events[-1] == Finished(run_id=1, status="finished", step=8)
    assert proc.finished_event is events[-1]
    assert proc.run_id == 1 and proc.name == "first"
    assert not proc.crashed and proc.exit_code == 0
    assert proc.last_progress is not None and proc.last_progress.step == 8
    # stderr went to a log file, renamed after the run it belongs to
    assert proc.log_path == tmp_path / "logs" / "run-1.log"
    assert "[fake] run 1" in proc.log_path.read_text()


def test_pause_resume_stop_and_idempotent_commands(qtbot, tmp_path: Path) -> None:
    client = EngineClient(command=fake_engine_command("run_ok.jsonl", interval=0.08))
    events = _collect(client)
    proc = client.start_run(write_config(tmp_path), str(tmp_path / "ws.sqlite"), tmp_path / "logs")
    qtbot.waitUntil(lambda: any(isinstance(e, MetricsWritten) for e in events), timeout=20_000)
    assert client.send(1, "pause") and client.send(1, "pause")  # twice = once
    qtbot.waitUntil(
        lambda: any(isinstance(e, StatusChanged) and e.status == "paused" for e in events), timeout=10_000
    )
    assert proc.status == "paused"
    qtbot.wait(300)
    paused_step = max(e.step for e in events if isinstance(e, MetricsWritten))
    qtbot.wait(300)
    assert max(e.step for e in events if isinstance(e, MetricsWritten)) == paused_step, "kept training"
    client.send(1, "resume")
    qtbot.waitUntil(lambda: proc.status == "running", timeout=10_000)
    client.send(1, "checkpoint")
    qtbot.waitUntil(lambda: any(isinstance(e, CheckpointSaved) for e in events), timeout=10_000)
    with qtbot.waitSignal(client.sig_exited, timeout=10_000):
        client.send(1, "stop")
        client.send(1, "stop")
    assert isinstance(events[-1], Finished) and events[-1].status == "stopped"
    assert proc.exit_code == 0 and not proc.crashed
    assert not client.send(1, "pause"), "a finished engine takes no commands"


def test_crash_mid_run_marks_the_run_failed_and_keeps_the_studio_working(
    qtbot, state: StudioState, tmp_path
) -> None:
    state.engines.command = fake_engine_command("crash.jsonl", interval=0.005)
    with qtbot.waitSignal(state.sig_run_crashed, timeout=20_000) as crashed:
        state.launch(write_config(tmp_path), name="doomed")
    run_id, message, tail = crashed.args
    assert "exit code 139" in message
    assert "Segmentation fault" in tail and "grpo_trainer.py" in tail
    state.refresh()
    run = state.run(run_id)
    assert run is not None and run.status == "failed" and "exit code 139" in (run.error or "")
    assert run.step == 3
    assert state.db is not None
    assert state.db.last_error(run_id)[0] == run.error
    # the studio goes on: another run starts and finishes
    state.engines.command = fake_engine_command("run_ok.jsonl", interval=0.005)
    with qtbot.waitSignal(state.engines.sig_exited, timeout=20_000) as exited:
        state.launch(write_config(tmp_path), name="next")
    assert not exited.args[0].crashed


def test_engine_reported_error_carries_its_traceback(qtbot, state: StudioState, tmp_path) -> None:
    state.engines.command = fake_engine_command("error.jsonl", interval=0.005)
    crashed: list[object] = []
    state.sig_run_crashed.connect(lambda *args: crashed.append(args))
    with qtbot.waitSignal(state.sig_run_failed, timeout=20_000) as failed:
        state.launch(write_config(tmp_path))
    run_id, message, traceback = failed.args
    assert message.startswith("RuntimeError: shape mismatch")
    assert "Traceback (most recent call last)" in traceback
    qtbot.waitUntil(lambda: not state.engines.running(), timeout=10_000)
    assert not crashed, "an error the engine reported is not a crash"
    state.refresh()
    run = state.run(run_id)
    assert run is not None and run.status == "failed"
    assert state.db is not None
    assert "Traceback" in (state.db.last_error(run_id)[1] or "")


def test_two_runs_train_at_once(qtbot, state: StudioState, tmp_path) -> None:
    state.engines.command = fake_engine_command("run_ok.jsonl", interval=0.03)
    a = state.launch(write_config(tmp_path), name="a")
    b = state.launch(write_config(tmp_path), name="b")
    qtbot.waitUntil(lambda: a.run_id is not None and b.run_id is not None, timeout=20_000)
    qtbot.waitUntil(
        lambda: len(state.engines.running()) == 2 and a.status == b.status == "running", timeout=10_000
    )
    qtbot.waitUntil(lambda: not a.running and not b.running, timeout=30_000)
    assert {a.run_id, b.run_id} == {1, 2}
    state.refresh()
    assert [state.run(i).status for i in (1, 2)] == ["finished", "finished"]  # type: ignore[union-attr]
    assert a.log_path != b.log_path and a.log_path.exists() and b.log_path.exists()


def test_an_engine_that_cannot_start_is_reported(qtbot, state: StudioState, tmp_path) -> None:
    state.engines.command = [str(tmp_path / "no-such-python")]
    with qtbot.waitSignal(state.sig_launch_failed, timeout=10_000) as failed:
        state.launch(write_config(tmp_path))
    assert "could not be started" in failed.args[1]


def test_lines_that_are_not_events_go_to_the_log(qtbot, tmp_path) -> None:
    proc = EngineProcess([sys.executable], [], "ws", tmp_path / "x.log", "run")
    noise: list[str] = []
    events: list[Event] = []
    proc.sig_stdout_text.connect(lambda _p, text: noise.append(text))
    proc.sig_event.connect(lambda _p, event: events.append(event))
    proc._handle_line("Loading checkpoint shards: 100%")
    proc._handle_line(
        '{"v": 1, "type": "progress", "run_id": 4, "step": 2, "max_steps": 5, "steps_per_s": 1.5}'
    )
    proc._handle_line('{"v": 99, "type": "progress"}')
    proc._handle_line('{"v": 1, "type": "progress", "run_id": "four", "step": 2, "max_steps": 5}')
    assert noise == [
        "Loading checkpoint shards: 100%",
        '{"v": 99, "type": "progress"}',
        '{"v": 1, "type": "progress", "run_id": "four", "step": 2, "max_steps": 5}',
    ]
    assert events == [Progress(run_id=4, step=2, max_steps=5, steps_per_s=1.5)]
    assert proc.last_progress is events[0]


# ---- one way to start an engine -------------------------------------------------------------------------
def _engine_on_path(folder: Path, fixture: str) -> Path:
    """An `rl-studio-engine` executable, as a standalone bundle finds it on PATH."""
    script = folder / "rl-studio-engine"
    script.write_text(f'#!/bin/sh\nexec {shlex.join(fake_engine_command(fixture, interval=0.005))} "$@"\n')
    script.chmod(0o755)
    return script


def test_engine_command_honours_rl_studio_engine_then_the_bundle(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RL_STUDIO_ENGINE", raising=False)
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert engine_command() == [sys.executable, "-m", "engine.cli"]
    script = _engine_on_path(tmp_path, "run_ok.jsonl")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert engine_command() == [str(script)]
    monkeypatch.setenv("RL_STUDIO_ENGINE", "/opt/my engine/python -m engine.cli")
    assert engine_command() == ["/opt/my", "engine/python", "-m", "engine.cli"]
    monkeypatch.setenv("RL_STUDIO_ENGINE", "'/opt/my engine/python' -m engine.cli")
    assert engine_command() == ["/opt/my engine/python", "-m", "engine.cli"]


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for the bundle's engine")
def test_runs_start_through_rl_studio_engine_and_the_bundle(qtbot, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RL_STUDIO_ENGINE", shlex.join(fake_engine_command("run_ok.jsonl", interval=0.005)))
    client = EngineClient()  # no command given: the studio's own way of finding the engine
    events = _collect(client)
    with qtbot.waitSignal(client.sig_exited, timeout=20_000):
        proc = client.start_run(write_config(tmp_path), str(tmp_path / "ws.sqlite"), tmp_path / "logs")
    assert proc.argv[:2] == fake_engine_command("run_ok.jsonl")[:2]
    assert isinstance(events[-1], Finished) and events[-1].status == "finished"

    monkeypatch.delenv("RL_STUDIO_ENGINE")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    script = _engine_on_path(tmp_path, "error.jsonl")
    bundled = EngineClient()
    with qtbot.waitSignal(bundled.sig_exited, timeout=20_000):
        proc = bundled.start_run(write_config(tmp_path), str(tmp_path / "ws.sqlite"), tmp_path / "logs")
    assert proc.argv[0] == str(script)
    assert proc.error is not None and proc.error.message.startswith("RuntimeError: shape mismatch")
