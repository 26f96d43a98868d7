"""The wire protocol between the studio and an engine process, defined once.

Events go from the engine to whoever started it, one JSON object per line on the engine's stdout.
Commands go the other way, one JSON object per line on its stdin. Events are small announcements:
the data itself is in the workspace file, and a reader catches up with ``WHERE id > ?`` queries.

Each event type is a frozen dataclass below: its ``type`` is the name on the wire, its fields are the
payload. On the wire every event also carries ``v`` (PROTOCOL_VERSION) and ``time`` (unix seconds):

    {"v": 1, "type": "progress", "time": 1795318861.229, "run_id": 1, "step": 3, ...}

The engine builds them (engine.control.emit), the studio gets them back from ``parse_event`` and
dispatches on the classes. Both check every field's type (engine.contract.typed). Adding an event type
is one more dataclass here (or anywhere that subclasses Event): it registers itself by its ``type``.
A field the reader does not know is ignored, so an engine may add an optional field without a new
PROTOCOL_VERSION; a new required field or a changed meaning needs one.
"""

from __future__ import annotations

import json
import time
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Literal, get_args

from engine.contract.typed import RecordError, check_fields, from_dict

PROTOCOL_VERSION = 1

RunStatus = Literal["queued", "running", "paused", "stopped", "failed", "finished"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
"""A run's life: queued -> running <-> paused -> stopped | failed | finished.
A stopped or failed run with a complete checkpoint can be resumed."""

COMMANDS = ("pause", "resume", "stop", "checkpoint")
"""Idempotent run controls: sending one twice has the effect of sending it once."""


class ProtocolError(ValueError):
    """A line that is not a valid event or command."""


EVENTS: dict[str, type[Event]] = {}
"""Every event class by its wire ``type``; filled as the classes are defined."""


@dataclass(frozen=True, kw_only=True)
class Event:
    """One event. A subclass sets ``type`` (its name on the wire) and declares its fields."""

    type: ClassVar[str]
    time: float = field(default_factory=time.time, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type")
        if name is None:
            return  # an abstract base of other events
        if not isinstance(name, str) or not name or name in EVENTS:
            raise TypeError(f"{cls.__name__}: an event needs a unique string `type`, not {name!r}")
        EVENTS[name] = cls

    def __post_init__(self) -> None:
        try:
            check_fields(self, f"event {self.type!r}")
        except RecordError as exc:
            raise ProtocolError(str(exc)) from None

    def payload(self) -> dict[str, Any]:
        """The fields besides time, as they go on the wire."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "time"}

    def to_json(self) -> str:
        return json.dumps(
            {"v": PROTOCOL_VERSION, "type": self.type, "time": round(self.time, 3), **self.payload()}
        )


# ---- the events ------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Hello(Event):
    """The engine is up and reads commands."""

    type = "hello"
    pid: int
    engine_version: str


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    type = "run_started"
    run_id: int
    name: str
    max_steps: int
    resumed_from_step: int | None = None


@dataclass(frozen=True, kw_only=True)
class StatusChanged(Event):
    """Any status change, and the acknowledgement of pause and resume."""

    type = "status"
    run_id: int
    status: RunStatus
    step: int


@dataclass(frozen=True, kw_only=True)
class Progress(Event):
    """After every step (phase train) and before an evaluation (phase eval)."""

    type = "progress"
    run_id: int
    step: int
    max_steps: int
    steps_per_s: float | None = None
    eta_s: float | None = None
    phase: Literal["train", "eval"] = "train"


@dataclass(frozen=True, kw_only=True)
class MetricsWritten(Event):
    type = "metrics_written"
    run_id: int
    step: int


@dataclass(frozen=True, kw_only=True)
class RolloutsWritten(Event):
    """Rollouts up to id ``up_to_id`` are committed."""

    type = "rollouts_written"
    run_id: int
    up_to_id: int
    step: int


@dataclass(frozen=True, kw_only=True)
class EvalWritten(Event):
    type = "eval_written"
    run_id: int
    step: int
    reward: float | None


@dataclass(frozen=True, kw_only=True)
class CheckpointSaved(Event):
    type = "checkpoint_saved"
    run_id: int
    step: int
    path: str


@dataclass(frozen=True, kw_only=True)
class AlertRaised(Event):
    """A training-time detector tripped (engine/monitor.py); the alert is row ``alert_id`` of ``alerts``,
    with its evidence. ``kind`` is one of engine.monitor.KINDS, ``severity`` warning or critical."""

    type = "alert"
    run_id: int
    alert_id: int
    step: int
    kind: str
    severity: Literal["warning", "critical"]
    message: str


@dataclass(frozen=True, kw_only=True)
class ErrorReported(Event):
    """The engine failed: ``kind`` "input" is the user's to fix (the message says how), "bug" is ours.
    ``run_id`` is None when it failed before it could create a run."""

    type = "error"
    run_id: int | None
    message: str
    kind: Literal["input", "bug"]
    traceback: str | None = None


@dataclass(frozen=True, kw_only=True)
class Finished(Event):
    """The engine is done with the run (``status``: stopped, failed or finished) and will exit."""

    type = "finished"
    run_id: int
    status: RunStatus
    step: int


EVENT_TYPES = tuple(EVENTS)


# ---- events to and from JSON lines -----------------------------------------------------------------------
def make_event(type_: str, **data: Any) -> Event:
    """The event of wire type ``type_`` with these fields (``control.emit("status", run_id=1, ...)``)."""
    cls = EVENTS.get(type_)
    if cls is None:
        raise ProtocolError(f"unknown event type {type_!r}; known: {', '.join(EVENTS)}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ProtocolError(f"event {type_!r} has no field(s) {sorted(unknown)}")
    missing = [
        f.name
        for f in fields(cls)
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise ProtocolError(f"event {type_!r} lacks the field(s) {missing}")
    return cls(**data)


def parse_event(line: str) -> Event:
    """Parse one line of engine stdout into its typed event. Raises ProtocolError for anything else:
    not JSON, not an event, another protocol version, an unknown type, a missing or mistyped field."""
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
    cls = EVENTS.get(type_) if isinstance(type_, str) else None
    if cls is None:
        raise ProtocolError(f"unknown event type {type_!r}")
    obj.setdefault("time", time.time())
    try:
        return from_dict(cls, obj, f"event {type_!r}")
    except RecordError as exc:
        raise ProtocolError(str(exc)) from None


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
