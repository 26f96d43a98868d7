"""What `rl-studio-engine env play` says and hears: a person plays the agent in an environment.

    rl-studio-engine env play ENV --tasks FILE.jsonl [--task N] [--tool-timeout S]

The environment runs contained, as in training (engine/envs/proxy.py). JSON lines both ways:

stdin (one request per line)
    {"tool": "move_file", "arguments": {"source": "a", "destination": "b"}}   a tool call; `arguments`
                                           may be an object or JSON text, as a model writes it
    {"cmd": "reward"}                       end the episode: the environment's get_reward()
    {"cmd": "reset", "task": 3}             start task 3 of the tasks file afresh
    {"cmd": "quit"}                         (or end of input) stop

stdout (one message per line, each with its "type")
    ready        after loading and after every reset: the environment, its tools, the task
    observation  after every tool call: what the model would see, and whether the call was valid
    reward       after {"cmd": "reward"}: the reward and the whole trajectory
    error        a request that could not be understood (the play goes on)

A problem that stops the play before it starts (a missing file, an environment that does not load) is
printed on stderr, with exit code 2. Standard library only: the studio imports this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contract.typed import RecordError, check_fields, from_dict, to_dict


class PlayMessageError(RecordError):
    """A line that is not a message of `env play`; the text says what was wrong."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    signature: str
    """`move_file(source: str, destination: str) -> str`"""
    doc: str
    """The whole docstring (its Args section says what each argument means)."""
    parameters: list[str]
    problems: list[str]
    """What would stop TRL from building the tool's schema (a missing type hint, ...)."""

    def __post_init__(self) -> None:
        _check(self, "a tool")


@dataclass(frozen=True)
class PlayReady:
    environment: str
    class_name: str
    doc: str
    has_reward: bool
    tools: list[ToolSpec]
    tasks: int
    """How many tasks the tasks file holds."""
    task_index: int
    task_id: str | None
    prompt: str
    """The task's prompt, as text (the user messages of a chat prompt)."""
    task: str | None
    """What reset returned (appended to the prompt in training), or None."""
    reset_error: str | None
    type: str = "ready"

    def __post_init__(self) -> None:
        _check(self, "a ready message")


@dataclass(frozen=True)
class PlayObservation:
    turn: int
    """1-based: each call is one turn of the episode."""
    tool: str
    arguments: str
    """The arguments as JSON text."""
    result: str | None
    """What the model would see, when the call worked."""
    valid: bool
    error: str | None
    seconds: float
    type: str = "observation"

    def __post_init__(self) -> None:
        _check(self, "an observation")


@dataclass(frozen=True)
class PlayReward:
    reward: float | None
    reward_error: str | None
    success: bool | None
    trajectory: dict[str, Any]
    """The episode in the stored trajectory format (engine/contract/trajectory.py, Trajectory.as_dict())."""
    type: str = "reward"

    def __post_init__(self) -> None:
        _check(self, "a reward message")


@dataclass(frozen=True)
class PlayError:
    message: str
    type: str = "error"

    def __post_init__(self) -> None:
        _check(self, "an error message")


PlayMessage = PlayReady | PlayObservation | PlayReward | PlayError
_TYPES: dict[str, type] = {
    "ready": PlayReady,
    "observation": PlayObservation,
    "reward": PlayReward,
    "error": PlayError,
}


def _check(record: Any, what: str) -> None:
    try:
        check_fields(record, what)
    except RecordError as exc:
        raise PlayMessageError(str(exc)) from None


def message_line(message: PlayMessage) -> str:
    """One stdout line (the engine prints it)."""
    return json.dumps(to_dict(message), ensure_ascii=False, default=str)


def parse_message(line: str) -> PlayMessage:
    """A stdout line back into its record (the studio). Raises PlayMessageError."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise PlayMessageError(f"not JSON ({exc}): {line[:200]!r}") from None
    kind = data.get("type") if isinstance(data, dict) else None
    cls = _TYPES.get(str(kind))
    if cls is None:
        raise PlayMessageError(f"unknown message type {kind!r}; expected one of {', '.join(_TYPES)}")
    try:
        message: PlayMessage = from_dict(cls, data, f"a {kind} message")
    except RecordError as exc:
        raise PlayMessageError(str(exc)) from None
    return message


def call_request(tool: str, arguments: dict[str, Any] | str) -> str:
    """A stdin line asking for a tool call (the studio writes it)."""
    return json.dumps({"tool": tool, "arguments": arguments}, ensure_ascii=False)


def command_request(cmd: str, **fields: Any) -> str:
    """A stdin line with a command: reward, reset (task=N), quit."""
    return json.dumps({"cmd": cmd, **fields})


# ---- the environments a workspace knows -----------------------------------------------------------------
BUILTIN_TASKS: dict[str, tuple[str, ...]] = {
    "builtin:file_manager": ("file_manager_eval.jsonl", "file_manager_train.jsonl"),
}
"""The task sets shipped with each built-in environment (engine/envs/data/; engine/envs/proxy.py's BUILTINS
names the classes)."""


def builtin_task_files(environment: str) -> list[str]:
    """The shipped task files of a built-in environment that exist in this install."""
    from engine.contract.paths import ASSETS_DIR

    folder = Path(str(ASSETS_DIR)).parent / "envs" / "data"
    return [str(folder / name) for name in BUILTIN_TASKS.get(environment, ()) if (folder / name).is_file()]
