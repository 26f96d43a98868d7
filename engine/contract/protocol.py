"""The wire protocol between the studio and an engine process, defined once.

Events go from the engine to whoever started it, one JSON object per line on the engine's stdout.
Commands go the other way, one JSON object per line on its stdin. Events are small announcements:
the data itself is in the workspace file, and a reader catches up with ``WHERE id > ?`` queries.

Every event carries ``v`` (PROTOCOL_VERSION), ``type``, ``time`` (unix seconds) and usually ``run_id``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1

RUN_STATUSES = ("queued", "running", "paused", "stopped", "failed", "finished")
"""A run's life: queued -> running <-> paused -> stopped | failed | finished.
A stopped or failed run with a complete checkpoint can be resumed."""

# Event types and the fields each carries besides v, type, time.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "hello": ("pid", "engine_version"),  # the engine is up and reads commands
    "run_started": ("run_id", "name", "max_steps", "resumed_from_step"),
    "status": ("run_id", "status", "step"),  # any status change, and pause/resume acks
    "progress": ("run_id", "step", "max_steps", "steps_per_s", "eta_s", "phase"),
    "metrics_written": ("run_id", "step"),
    "rollouts_written": ("run_id", "up_to_id", "step"),
    "eval_written": ("run_id", "step", "reward"),
    "checkpoint_saved": ("run_id", "step", "path"),
    "error": ("run_id", "message", "kind", "traceback"),  # kind: "input" (user-fixable) or "bug"
    "finished": ("run_id", "status", "step"),
}
EVENT_TYPES = tuple(EVENT_FIELDS)

COMMANDS = ("pause", "resume", "stop", "checkpoint")
"""Idempotent run controls: sending one twice has the effect of sending it once."""


class ProtocolError(ValueError):
    """A line that is not a valid event or command."""


@dataclass
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
    v: int = PROTOCOL_VERSION

    @property
    def run_id(self) -> int | None:
        value = self.data.get("run_id")
        return int(value) if value is not None else None

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def to_json(self) -> str:
        return json.dumps({"v": self.v, "type": self.type, "time": round(self.time, 3), **self.data})


def make_event(type_: str, **data: Any) -> Event:
    if type_ not in EVENT_FIELDS:
        raise ProtocolError(f"unknown event type {type_!r}; known: {', '.join(EVENT_TYPES)}")
    unknown = set(data) - set(EVENT_FIELDS[type_])
    if unknown:
        raise ProtocolError(f"event {type_!r} has no field(s) {sorted(unknown)}")
    return Event(type_, data)


def parse_event(line: str) -> Event:
    """Parse one line of engine stdout. Raises ProtocolError for anything that is not an event."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {line[:200]!r} ({exc})") from None
    if not isinstance(obj, dict) or "type" not in obj:
        raise ProtocolError(f"not an event object: {line[:200]!r}")
    version = obj.pop("v", None)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"event protocol version {version!r}, expected {PROTOCOL_VERSION}: the studio and engine come "
            "from different RL Studio versions; reinstall so both match."
        )
    type_ = obj.pop("type")
    stamp = float(obj.pop("time", time.time()))
    if type_ not in EVENT_FIELDS:
        raise ProtocolError(f"unknown event type {type_!r}")
    return Event(type_, obj, stamp, version)


def command_line(cmd: str) -> str:
    """The JSON line that sends a command to an engine's stdin."""
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}")
    return json.dumps({"cmd": cmd})


def parse_command(line: str) -> str:
    """Parse one line of engine stdin into a command name."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        raise ProtocolError(
            f'command is not JSON: {line[:200]!r}; send for example {{"cmd": "pause"}}'
        ) from None
    cmd = obj.get("cmd") if isinstance(obj, dict) else None
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}")
    return str(cmd)
