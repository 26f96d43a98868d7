"""Building an agent rollout's trajectory from TRL's messages and the proxy's call records, and the
environment snapshot reward functions receive. The trajectory format itself (ToolCall, Turn, Trajectory,
how episodes end) is engine/contract/trajectory.py.

Standard library only: trajectories and environment snapshots travel, pickled, into reward workers (as
the `trajectories` and `environments` arguments of Python reward functions), which import nothing of the
engine but this package's light modules.
"""

from __future__ import annotations

import json
from typing import Any

# The stored format is defined once, in the contract the studio reads too; re-exported here.
from engine.contract.trajectory import (
    ENDINGS,
    MALFORMED,
    NOT_RUN,
    TOOL_CALL_MARKUP,
    ToolCall,
    Trajectory,
    Turn,
    transcript,
)

__all__ = [
    "ENDINGS",
    "MALFORMED",
    "NOT_RUN",
    "TOOL_CALL_MARKUP",
    "EnvironmentSnapshot",
    "ToolCall",
    "Trajectory",
    "Turn",
    "build_trajectory",
    "finish",
    "transcript",
]


def finish(trajectory: Trajectory, max_turns: int | None, messages: list[dict[str, Any]]) -> Trajectory:
    """Set `ended`, and mark the calls of a last turn that the loop never ran (no tool message answers
    them) as not run: they were well formed, the model simply had no round left."""
    last = trajectory.turns[-1] if trajectory.turns else None
    unanswered = (
        bool(messages) and messages[-1].get("role") == "assistant" and bool(messages[-1].get("tool_calls"))
    )
    if last is not None and unanswered:
        for call in last.calls:
            if call.error is not None and call.error.startswith("not executed: "):
                call.valid, call.error = True, NOT_RUN
    if (
        trajectory.reset_error
        or trajectory.environment_error
        or (last is not None and last.calls and any(c.error == MALFORMED for c in last.calls))
    ):
        trajectory.ended = "error"
    elif last is not None and unanswered:
        over = max_turns is not None and trajectory.num_turns > max_turns
        trajectory.ended = "max_turns" if over else "length"
    else:
        trajectory.ended = "answered"
    return trajectory


def build_trajectory(
    messages: list[dict[str, Any]],
    records: list[ToolCall],
    tools: set[str],
    task: str | None = None,
    reset_error: str | None = None,
) -> Trajectory:
    """A trajectory from a rollout's completion messages (TRL's layout: assistant, tool, ..., assistant) and
    the calls the environment proxy recorded, in order.

    Calls the proxy never saw are recorded here as invalid: a tool name the environment lacks (TRL answers
    "Tool X not found."), a call of an unsupported type, and markup that did not parse."""
    pending = list(records)
    trajectory = Trajectory(task=task, reset_error=reset_error)
    replies = [m for m in messages if m.get("role") == "tool"]
    reply_index = 0
    for message in messages:
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        turn = Turn(text)
        for raw in message.get("tool_calls") or []:
            reply = replies[reply_index]["content"] if reply_index < len(replies) else None
            reply_index += 1
            function = raw.get("function") if isinstance(raw, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            arguments_text = arguments if isinstance(arguments, str) else json.dumps(arguments, default=str)
            if raw.get("type", "function") != "function" or not isinstance(name, str):
                turn.calls.append(
                    ToolCall(str(name), arguments_text, valid=False, error=f"unsupported tool call {raw!r}")
                )
            elif name not in tools:
                known = ", ".join(sorted(tools))
                turn.calls.append(
                    ToolCall(
                        name, arguments_text, valid=False, error=f"unknown tool '{name}' (tools: {known})"
                    )
                )
            elif pending and pending[0].tool == name:
                turn.calls.append(pending.pop(0))
            else:  # the proxy has no record: TRL failed the call before it reached the environment
                turn.calls.append(ToolCall(name, arguments_text, valid=False, error=f"not executed: {reply}"))
        if not turn.calls and any(mark in text for mark in TOOL_CALL_MARKUP):
            turn.calls.append(ToolCall("?", text, valid=False, error=MALFORMED))
        trajectory.turns.append(turn)
    return trajectory


class EnvironmentSnapshot:
    """An environment's end state as reward functions receive it in `environments=`: `get_reward()` gives
    the reward the environment computed at the end of the episode, and its attributes (those that are
    plain data: strings, numbers, lists, dicts) read as on the instance, so a reward function written
    against TRL's convention (`env.get_reward()`, `env.files`) works unchanged."""

    def __init__(
        self,
        class_name: str,
        state: dict[str, Any],
        reward: float | None = None,
        reward_error: str | None = None,
        omitted: list[str] | None = None,
    ) -> None:
        self.class_name = class_name
        self.state = state
        self.reward = reward
        self.reward_error = reward_error
        self.omitted = omitted or []

    def get_reward(self) -> float | None:
        return self.reward

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__.get("state") or {}
        if name in state:
            return state[name]
        omitted = self.__dict__.get("omitted") or []
        hint = " (it is not plain data, so it stays in the environment process)" if name in omitted else ""
        raise AttributeError(
            f"{self.__dict__.get('class_name', 'environment')} has no attribute {name!r}{hint}"
        )

    def __repr__(self) -> str:
        return f"<{self.class_name} snapshot reward={self.reward}>"
