"""What one agent rollout did: its turns, the tool calls in them with results and errors, the outcome.

Standard library only: trajectories and environment snapshots travel, pickled, into reward workers (as
the `trajectories` and `environments` arguments of Python reward functions), which import nothing of the
engine but this package's light modules.

A turn is one assistant message (one generation); its tool calls are those the message asked for, in
order. A call is *valid* when it was well formed: a known tool, arguments that parse as JSON and fit the
tool's signature and type hints. A valid call can still fail (the tool raised, or timed out): that is its
`error`, and the model saw it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

TOOL_CALL_MARKUP = ("<tool_call>", "<|python_tag|>", "<function=")
"""Text that shows a model tried to call a tool. TRL parses a completion whose call does not parse (bad
JSON) as plain text; a turn whose text still carries this markup is recorded as an invalid call."""


@dataclass
class ToolCall:
    tool: str
    arguments: str
    """The arguments as JSON text (as the model wrote them when they did not parse)."""
    result: Any = None
    """What the tool returned (the text the model saw), or None when it failed."""
    valid: bool = True
    error: str | None = None
    seconds: float = 0.0

    def message_content(self) -> str:
        return self.result if self.error is None and isinstance(self.result, str) else f"error: {self.error}"


@dataclass
class Turn:
    text: str
    calls: list[ToolCall] = field(default_factory=list)
    tokens: int | None = None
    """Tokens the model generated for this turn (known in training; None elsewhere)."""


@dataclass
class Trajectory:
    task: str | None = None
    """What reset returned (the task text appended to the prompt), or None."""
    reset_error: str | None = None
    turns: list[Turn] = field(default_factory=list)
    reward: float | None = None
    """The environment's get_reward(), or None when it has none or it failed (see reward_error)."""
    reward_error: str | None = None
    environment_error: str | None = None
    """Set when the environment process was lost during the episode (a hang or a crash)."""
    ended: str | None = None
    """How the episode ended (see ENDINGS), set by `finish`."""

    @property
    def calls(self) -> list[ToolCall]:
        return [call for turn in self.turns for call in turn.calls]

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    def valid_fraction(self) -> float | None:
        calls = self.calls
        return sum(c.valid for c in calls) / len(calls) if calls else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        turns = [
            Turn(t["text"], [ToolCall(**c) for c in t.get("calls", [])], t.get("tokens"))
            for t in data.get("turns", [])
        ]
        rest = {k: v for k, v in data.items() if k != "turns"}
        return cls(turns=turns, **rest)

    def openai_messages(self) -> list[dict[str, Any]]:
        """The turns as OpenAI chat messages: assistant messages with tool_calls, then one tool message each."""
        out: list[dict[str, Any]] = []
        counter = 0
        for turn in self.turns:
            message: dict[str, Any] = {"role": "assistant", "content": turn.text}
            sent = [c for c in turn.calls if c.valid or c.error != MALFORMED]
            if sent:
                message["tool_calls"] = []
            replies = []
            for call in sent:
                counter += 1
                call_id = f"call_{counter}"
                message["tool_calls"].append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.tool, "arguments": call.arguments},
                    }
                )
                replies.append({"role": "tool", "tool_call_id": call_id, "content": call.message_content()})
            out.append(message)
            out.extend(replies)
        return out


ENDINGS = ("answered", "max_turns", "length", "error")
"""answered: the last turn called no tool; max_turns: it still called tools when the tool-calling rounds
(max_turns) were used up; length: the completion-token budget ran out first; error: the environment failed
(reset raised, or its process was lost) or the last turn's tool-call markup did not parse."""

NOT_RUN = "not run: the turn budget (max_turns) or the completion budget ran out first"


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


def transcript(trajectory: Trajectory) -> str:
    """The episode as plain text, for the rollout's `completion` (what full-text search and a reader
    without trajectory support see): each turn's text, its calls with their arguments, results and errors."""
    lines: list[str] = []
    if trajectory.reset_error:
        lines.append(f"[reset error] {trajectory.reset_error}")
    for number, turn in enumerate(trajectory.turns, 1):
        head = f"[turn {number}]"
        lines.append(f"{head} {turn.text}" if turn.text else head)
        for c in turn.calls:
            lines.append(f"-> {c.tool}({c.arguments})")
            if c.error is not None:
                lines.append(f"<- error: {c.error}")
            elif c.result is not None:
                lines.append(f"<- {c.result}")
    return "\n".join(lines)


MALFORMED = "malformed tool call: the model wrote tool-call markup that does not parse (bad JSON?)"


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
