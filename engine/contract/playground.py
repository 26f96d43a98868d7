"""The playground's wire protocol (`rl-studio-engine playground --db WS`), defined once for both sides.

The studio writes one request per line on the engine's stdin; the engine answers with typed messages,
one JSON object per line on its stdout (its human log goes to stderr):

    stdin   {"id": "r1", "prompt": "2+3=", "runs": [4, 7], "include_base": true,
             "max_new_tokens": 64, "temperature": 0.7, "seed": 0}
            {"id": "r2", "row": {"run": 4, "split": "eval", "index": 12}, "runs": [4], ...}
            {"cancel": "r1"}                          stop a request: its unfinished answers end now
    stdout  {"type": "ready", ...}                    the process reads requests (sent once, at start)
            {"type": "loaded", "base_model": ..., "device": ...}    the base model is in memory
            {"type": "token", "id": "r1", "source": "base", "text": "<ans"}
            {"type": "done", "id": "r1", "source": "run:4", "text": ..., "scores": {...}, "reward": 0.8,
             "errors": {...}, "stopped": false, "rendered_prompt": ...}
            {"type": "error", "id": "r1", "source": null, "message": ..., "kind": "input"}

A source is "base" (the base model, every adapter disabled) or "run:<id>" (that run's trained adapter).
Every source a request names ends with exactly one `done` or one `error` for that source; an `error`
whose source is null ends every source of the request that has not ended yet, and one whose id is null
is about the process itself. A process serves one base model, the one its first request's runs share;
runs on another base model are refused with a message (the studio starts one process per base model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from engine.contract.typed import RecordError, check_fields, from_dict, to_dict

BASE = "base"
SPLITS = ("train", "eval")


class PlaygroundProtocolError(ValueError):
    """A line that is not a valid playground request or message; the text says what was wrong."""


def run_source(run_id: int) -> str:
    """The source name of a run's trained adapter."""
    return f"run:{run_id}"


def source_run(source: str) -> int | None:
    """The run id of a source name, or None for the base model."""
    if source.startswith("run:") and source[4:].isdigit():
        return int(source[4:])
    return None


def _check(record: Any, what: str) -> None:
    try:
        check_fields(record, what)
    except RecordError as exc:
        raise PlaygroundProtocolError(str(exc)) from None


# ---- requests (studio -> engine) -----------------------------------------------------------------------
@dataclass(frozen=True)
class RowRef:
    """A dataset row of a run: line `index` (0-based, as the run reads the file) of its train or eval data."""

    run: int
    split: Literal["train", "eval"]
    index: int

    def __post_init__(self) -> None:
        _check(self, "a playground row")


@dataclass(frozen=True)
class GenerateRequest:
    id: str
    runs: list[int]
    """The runs whose adapters answer; their base model answers too with include_base."""
    prompt: str | None = None
    """A typed prompt, formatted as each run's training formatted a plain prompt (chat template...)."""
    row: RowRef | None = None
    """A dataset row instead: its prompt, and its columns (answer...) for the rubric."""
    include_base: bool = True
    max_new_tokens: int = 64
    temperature: float = 1.0
    """0 = greedy decoding."""
    seed: int = 0
    """Every source samples from the same seed."""

    def __post_init__(self) -> None:
        _check(self, "a playground request")
        if (self.prompt is None) == (self.row is None):
            raise PlaygroundProtocolError(
                f"request {self.id!r}: give either a prompt or a row, not both or none"
            )
        if not self.runs:
            raise PlaygroundProtocolError(
                f"request {self.id!r}: name at least one run (the base model is the runs' base model)"
            )
        if self.max_new_tokens < 1:
            raise PlaygroundProtocolError(f"request {self.id!r}: max_new_tokens must be at least 1")
        if self.temperature < 0:
            raise PlaygroundProtocolError(f"request {self.id!r}: temperature must be 0 (greedy) or more")

    @property
    def sources(self) -> list[str]:
        return ([BASE] if self.include_base else []) + [run_source(r) for r in self.runs]

    def to_json(self) -> str:
        data = to_dict(self)
        return json.dumps({k: v for k, v in data.items() if v is not None}, ensure_ascii=False)


@dataclass(frozen=True)
class CancelRequest:
    cancel: str
    """The id of the request to stop (idempotent; an unknown or finished id is ignored)."""

    def to_json(self) -> str:
        return json.dumps({"cancel": self.cancel})


def parse_request(line: str) -> GenerateRequest | CancelRequest:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PlaygroundProtocolError(f"request is not JSON: {line[:200]!r} ({exc})") from None
    if not isinstance(obj, dict):
        raise PlaygroundProtocolError(f"request is not a JSON object: {line[:200]!r}")
    try:
        if "cancel" in obj:
            return from_dict(CancelRequest, obj, "a cancel request")
        return from_dict(GenerateRequest, obj, "a playground request")
    except RecordError as exc:
        raise PlaygroundProtocolError(str(exc)) from None


# ---- messages (engine -> studio) -----------------------------------------------------------------------
MESSAGES: dict[str, type[Message]] = {}


@dataclass(frozen=True)
class Message:
    type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MESSAGES[cls.type] = cls

    def __post_init__(self) -> None:
        _check(self, f"playground message {self.type!r}")

    def to_json(self) -> str:
        payload = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.dumps({"type": self.type, **payload}, ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class Ready(Message):
    """The process is up and reads requests."""

    type = "ready"
    pid: int


@dataclass(frozen=True)
class Loaded(Message):
    """The base model is loaded (the first request waits for this; later ones do not)."""

    type = "loaded"
    base_model: str
    device: str
    dtype: str


@dataclass(frozen=True)
class Token(Message):
    """More text of one source's answer (decoded incrementally: whole characters only)."""

    type = "token"
    id: str
    source: str
    text: str


@dataclass(frozen=True)
class Done(Message):
    """One source's answer is complete (or was stopped), scored by the run's rubric."""

    type = "done"
    id: str
    source: str
    text: str
    scores: dict[str, float | None]
    """Per criterion of the rubric: a score, or null (not applicable or failed: see errors)."""
    reward: float | None
    """The rubric's weighted total, exactly as training computes the reward; null when not scored."""
    errors: dict[str, str]
    """Per criterion that failed on this answer, its message ("total" when the total could not be formed)."""
    rubric: str = ""
    """Which rubric scored it: "<name> v<version>" of the run's stored version, or the config's path."""
    stopped: bool = False
    """Cancelled before the end: the text is what was generated so far, and it is not scored."""
    truncated: bool = False
    """Ended at max_new_tokens rather than at the end-of-sequence token."""
    tokens: int = 0
    rendered_prompt: str = ""
    """The exact text the model was given (chat template applied), as in training."""
    adapter: str = ""
    """The adapter folder a run's answer came from (its final adapter/ or a checkpoint); empty for base."""


@dataclass(frozen=True)
class Error(Message):
    """Something the engine could not do: for one source, for a whole request (source null), or for the
    process (id null). kind "input" is the user's to fix (the message says how), "bug" is ours."""

    type = "error"
    id: str | None
    source: str | None
    message: str
    kind: Literal["input", "bug"] = "input"


def parse_message(line: str) -> Message:
    """One stdout line of the playground process as its typed message; PlaygroundProtocolError otherwise."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PlaygroundProtocolError(f"not JSON: {line[:200]!r} ({exc})") from None
    if not isinstance(obj, dict):
        raise PlaygroundProtocolError(f"not a message object: {line[:200]!r}")
    cls = MESSAGES.get(str(obj.pop("type", "")))
    if cls is None:
        raise PlaygroundProtocolError(f"unknown playground message: {line[:200]!r}")
    try:
        return from_dict(cls, obj, f"playground message {cls.type!r}")
    except RecordError as exc:
        raise PlaygroundProtocolError(str(exc)) from None
