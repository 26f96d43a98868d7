"""The stored format of an agent rollout's trajectory: its turns, the tool calls in them with results and
errors, the outcome. Defined once here; the engine builds trajectories (engine/envs/trajectory.py) and the
studio reads them (`rollouts.trajectory`, `evaluations.trajectory`: `Trajectory.as_dict()` as JSON, plus
the prompt's messages under "prompt").

Standard library only: trajectories travel, pickled, into reward workers (the `trajectories` argument of
Python reward functions), and the studio imports this module.

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


MALFORMED = "malformed tool call: the model wrote tool-call markup that does not parse (bad JSON?)"

SUCCESS_REWARD = 1.0
"""An episode succeeded when its environment reward is at least this (the file manager gives 0 or 1)."""


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


# ---- reading a stored trajectory -----------------------------------------------------------------------
def read_trajectory(text: str | None) -> Trajectory | None:
    """A trajectory from its stored JSON (`rollouts.trajectory`), or None for a single-turn rollout or text
    that is not a trajectory. Keys this version does not know (the prompt's messages, a newer writer's
    fields) are ignored."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        turns = [
            Turn(
                str(t.get("text") or ""),
                [_call(c) for c in t.get("calls") or [] if isinstance(c, dict)],
                t.get("tokens") if isinstance(t.get("tokens"), int) else None,
            )
            for t in data.get("turns") or []
            if isinstance(t, dict)
        ]
    except (TypeError, ValueError):
        return None
    known = {"task", "reset_error", "reward", "reward_error", "environment_error", "ended"}
    rest = {k: v for k, v in data.items() if k in known}
    if rest.get("reward") is not None and not isinstance(rest["reward"], int | float):
        rest["reward"] = None
    return Trajectory(turns=turns, **rest)


def _call(data: dict[str, Any]) -> ToolCall:
    return ToolCall(
        tool=str(data.get("tool", "?")),
        arguments=data["arguments"]
        if isinstance(data.get("arguments"), str)
        else json.dumps(data.get("arguments")),
        result=data.get("result"),
        valid=bool(data.get("valid", True)),
        error=data.get("error") if isinstance(data.get("error"), str) else None,
        seconds=float(data.get("seconds") or 0.0),
    )


def succeeded(trajectory: Trajectory) -> bool | None:
    """Whether the episode succeeded (environment reward at least SUCCESS_REWARD); None without a reward."""
    if trajectory.reward is None:
        return None
    return trajectory.reward >= SUCCESS_REWARD


CallOutcome = str
OUTCOMES = ("ok", "invalid", "tool_error", "not_run")
"""What became of one call: ok (ran and returned), invalid (malformed: refused before the tool ran),
tool_error (well formed, but the tool raised, timed out or its process was lost), not_run (well formed,
but the turn or token budget ran out before it ran)."""


def call_outcome(call: ToolCall) -> CallOutcome:
    if not call.valid:
        return "invalid"
    if call.error == NOT_RUN:
        return "not_run"
    if call.error is not None:
        return "tool_error"
    return "ok"


def first_repeat(trajectory: Trajectory) -> tuple[int, int] | None:
    """(turn index, call index) of the first call that repeats an earlier identical call (same tool and
    arguments: a loop), or None."""
    seen: set[tuple[str, str]] = set()
    for t, turn in enumerate(trajectory.turns):
        for c, call in enumerate(turn.calls):
            key = (call.tool, call.arguments)
            if key in seen:
                return t, c
            seen.add(key)
    return None
