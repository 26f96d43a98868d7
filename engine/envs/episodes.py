"""Running episodes outside training: a scripted policy (a JSONL of tool calls per task) drives an
environment proxy exactly as TRL's tool loop would, and the episode is recorded as a trajectory.

Scripted policy file: one JSON object per line, matched to the tasks by `task_id` when both have one,
else by line number:

    {"task_id": "train-easy-00", "turns": [[{"name": "list_files", "arguments": {"folder": "inbox"}}],
                                           [{"name": "move_file", "arguments": {...}}, {...}]]}
    {"calls": [{"name": "list_files", "arguments": {"folder": "inbox"}}, ...]}   # one call per turn

`arguments` is an object, or a string of JSON as a model writes it: a string that does not parse makes
its whole turn a malformed call, as TRL parses such a message as plain text and the episode ends there.
An optional "final" string is the model's closing message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.envs.proxy import EnvironmentFactory, EnvironmentProxy, ToolError
from engine.envs.trajectory import Trajectory, build_trajectory


class PolicyError(ValueError):
    """A scripted policy file is malformed; the message names the line."""


@dataclass
class Episode:
    trajectory: Trajectory
    messages: list[dict[str, Any]]


def scripted_turns(entry: dict[str, Any], where: str) -> list[list[dict[str, Any]]]:
    if "turns" in entry:
        turns = entry["turns"]
        if not isinstance(turns, list) or not all(isinstance(t, list) for t in turns):
            raise PolicyError(f"{where}: 'turns' must be a list of turns, each a list of tool calls")
    elif "calls" in entry:
        if not isinstance(entry["calls"], list):
            raise PolicyError(f"{where}: 'calls' must be a list of tool calls")
        turns = [[call] for call in entry["calls"]]
    else:
        raise PolicyError(f"{where}: give 'turns' (a list of lists of calls) or 'calls' (a list of calls)")
    for turn in turns:
        for call in turn:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise PolicyError(
                    f'{where}: each call is {{"name": "tool", "arguments": {{...}}}}, not {call!r}'
                )
    return turns


def run_scripted(
    factory: EnvironmentFactory,
    env: EnvironmentProxy,
    row: dict[str, Any],
    turns: list[list[dict[str, Any]]],
    max_turns: int,
    final: str | None = None,
) -> Episode:
    """Reset `env` for the row, play the scripted turns (at most max_turns), and record the episode."""
    task = env.reset(**row)
    messages: list[dict[str, Any]] = []
    for turn in turns[:max_turns]:
        parsed = []
        malformed = None
        for call in turn:
            arguments = call.get("arguments", {})
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    malformed = call
                    break
            parsed.append((call["name"], arguments))
        if malformed is not None:
            # What the model wrote: TRL keeps it as the message's text, with no tool call parsed.
            text = "".join(
                f'<tool_call>\n{{"name": "{c["name"]}", "arguments": {c.get("arguments")}}}\n</tool_call>'
                for c in turn
            )
            messages.append({"role": "assistant", "content": text})
            break
        message: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": []}
        replies = []
        for name, arguments in parsed:
            message["tool_calls"].append(
                {"type": "function", "function": {"name": name, "arguments": arguments}}
            )
            replies.append({"role": "tool", "name": name, "content": _call(factory, env, name, arguments)})
        messages.append(message)
        messages.extend(replies)
    if final is not None:
        messages.append({"role": "assistant", "content": final})
    trajectory = build_trajectory(
        messages, list(env._rl_calls), set(factory.tools), task=task, reset_error=env._rl_reset_error
    )
    trajectory.reward, trajectory.reward_error = env._rl_reward()
    trajectory.environment_error = env._rl_lost
    return Episode(trajectory, messages)


def _call(factory: EnvironmentFactory, env: EnvironmentProxy, name: str, arguments: Any) -> str:
    """What TRL's tool loop gives the model for one call."""
    if name not in factory.tools:
        return str({"error": f"Tool {name} not found."})
    if not isinstance(arguments, dict):
        return str({"error": f"arguments must be a JSON object, not {arguments!r}"})
    try:
        return str(getattr(env, name)(**arguments))
    except ToolError as exc:
        return str({"error": str(exc)})
