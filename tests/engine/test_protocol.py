from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.contract.protocol import (
    EVENTS,
    PROTOCOL_VERSION,
    ErrorReported,
    Event,
    Progress,
    ProtocolError,
    RolloutsWritten,
    StatusChanged,
    command_line,
    make_event,
    parse_command,
    parse_event,
)
from engine.control import Controller

FIXTURES = Path(__file__).parents[1] / "studio" / "fixtures"


def test_event_round_trip() -> None:
    event = make_event("rollouts_written", run_id=3, up_to_id=120, step=4)
    assert event == RolloutsWritten(run_id=3, up_to_id=120, step=4)
    again = parse_event(event.to_json())
    assert isinstance(again, RolloutsWritten)
    assert (again.run_id, again.up_to_id, again.step) == (3, 120, 4)
    assert again == event and abs(again.time - event.time) < 0.001
    wire = json.loads(event.to_json())
    assert wire == {"v": PROTOCOL_VERSION, "type": "rollouts_written", "time": wire["time"], "run_id": 3,
                    "up_to_id": 120, "step": 4}  # fmt: skip


def test_every_recorded_engine_line_parses_to_its_class() -> None:
    """The fake engine's fixtures were recorded from the real engine: the wire format did not change."""
    seen = set()
    for path in FIXTURES.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if '"_fake"' in line:
                continue
            event = parse_event(line)
            assert type(event) is EVENTS[json.loads(line)["type"]]
            written, recorded = json.loads(event.to_json()), json.loads(line)
            assert abs(written.pop("time") - recorded.pop("time")) < 0.001
            assert written == recorded
            seen.add(event.type)
    assert {"hello", "run_started", "progress", "status", "error", "finished"} <= seen


def test_fields_are_checked_on_both_sides() -> None:
    with pytest.raises(ProtocolError, match="no field"):
        make_event("rollouts_written", bogus=1)
    with pytest.raises(ProtocolError, match="lacks the field"):
        make_event("rollouts_written", run_id=1)
    with pytest.raises(ProtocolError, match="'status' must be 'queued'"):
        StatusChanged(run_id=1, status="exploded", step=2)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_event("not json")
    with pytest.raises(ProtocolError, match="different RL Studio versions"):
        parse_event(json.dumps({"v": 99, "type": "status"}))
    with pytest.raises(ProtocolError, match="unknown event type"):
        parse_event(json.dumps({"v": 1, "type": "explode"}))
    with pytest.raises(ProtocolError, match="'run_id' must be int, not '4'"):
        parse_event(json.dumps({"v": 1, "type": "metrics_written", "run_id": "4", "step": 1}))
    with pytest.raises(ProtocolError, match="'step' must be int, not True"):
        parse_event(json.dumps({"v": 1, "type": "metrics_written", "run_id": 4, "step": True}))
    with pytest.raises(ProtocolError, match="lacks the field"):
        parse_event(json.dumps({"v": 1, "type": "progress", "run_id": 4}))


def test_optional_fields_default_and_unknown_fields_are_ignored() -> None:
    event = parse_event(
        json.dumps(
            {
                "v": 1,
                "type": "progress",
                "run_id": 4,
                "step": 2,
                "max_steps": 5,
                "steps_per_s": 1,
                "added_by_a_newer_engine": [1, 2],
            }
        )
    )
    assert event == Progress(run_id=4, step=2, max_steps=5, steps_per_s=1.0, eta_s=None, phase="train")
    assert isinstance(event.steps_per_s, float)  # an integral JSON number where a float is declared
    error = parse_event(
        json.dumps({"v": 1, "type": "error", "run_id": None, "message": "m", "kind": "input"})
    )
    assert error == ErrorReported(run_id=None, message="m", kind="input", traceback=None)


def test_a_new_event_type_is_one_dataclass() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Alert(Event):
        type = "test_alert"
        run_id: int
        detector: str
        level: float | None = None

    try:
        line = make_event("test_alert", run_id=2, detector="reward_hacking", level=3).to_json()
        assert parse_event(line) == Alert(run_id=2, detector="reward_hacking", level=3.0)
        with pytest.raises(ProtocolError, match="'detector' must be str"):
            parse_event(line.replace('"reward_hacking"', "7"))
        with pytest.raises(TypeError, match="unique string `type`"):

            @dataclass(frozen=True, kw_only=True)
            class Again(Event):
                type = "test_alert"
    finally:
        EVENTS.pop("test_alert", None)


def test_commands() -> None:
    assert parse_command(command_line("pause")) == "pause"
    with pytest.raises(ProtocolError):
        parse_command('{"cmd": "explode"}')
    with pytest.raises(ProtocolError):
        command_line("explode")


def test_controller_commands_are_idempotent() -> None:
    changes: list[str] = []
    c = Controller()
    c.on_change = changes.append
    for cmd in ("pause", "pause", "resume", "resume", "checkpoint", "checkpoint", "stop", "stop"):
        c.apply(cmd)
    assert changes == ["pause", "resume", "checkpoint", "stop"]
    assert c.take_checkpoint_request() is True
    assert c.take_checkpoint_request() is False
    assert c.stop_requested and not c.paused
