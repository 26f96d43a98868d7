from __future__ import annotations

import json

import pytest

from engine.contract.protocol import (
    PROTOCOL_VERSION,
    ProtocolError,
    command_line,
    make_event,
    parse_command,
    parse_event,
)
from engine.control import Controller


def test_event_round_trip() -> None:
    event = make_event("rollouts_written", run_id=3, up_to_id=120, step=4)
    again = parse_event(event.to_json())
    assert again.type == "rollouts_written"
    assert again.run_id == 3
    assert again.get("up_to_id") == 120
    assert json.loads(event.to_json())["v"] == PROTOCOL_VERSION


def test_bad_events_are_rejected() -> None:
    with pytest.raises(ProtocolError):
        make_event("rollouts_written", bogus=1)
    with pytest.raises(ProtocolError):
        parse_event("not json")
    with pytest.raises(ProtocolError, match="different RL Studio versions"):
        parse_event(json.dumps({"v": 99, "type": "status"}))


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
