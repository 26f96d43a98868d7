"""`rl-studio-engine env play`: a person plays the agent, one tool call at a time, in the contained
environment (the studio's Environments view drives it). The messages are engine/contract/env_play.py.

Each call is one turn, handled as TRL's tool loop handles a model's call: an unknown tool or arguments
that do not fit the signature are invalid calls, a tool that raises is a tool error the "model" sees, and
every call is recorded in the episode's trajectory, which `{"cmd": "reward"}` returns with the reward.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any, TextIO

from engine.contract.env_play import (
    PlayError,
    PlayMessage,
    PlayObservation,
    PlayReady,
    PlayReward,
    ToolSpec,
    message_line,
)
from engine.contract.trajectory import ToolCall, Trajectory, Turn, succeeded
from engine.data import DataError, json_lines
from engine.envs.proxy import (
    EnvironmentFactory,
    EnvironmentLoadError,
    EnvironmentProxy,
    ToolError,
    load_environment,
)

EXIT_OK = 0
EXIT_USAGE = 2


def add_parser(commands: Any) -> None:
    """`env play` under `rl-studio-engine env`."""
    play = commands.add_parser(
        "play",
        help="Play the agent by hand: JSON-line tool calls on stdin, observations and the reward on stdout.",
    )
    play.add_argument("environment", help="FILE.py:ClassName or builtin:NAME (builtin:file_manager).")
    play.add_argument(
        "--tasks", required=True, help="JSONL dataset: one row per task, passed to reset(**row)."
    )
    play.add_argument("--task", type=int, default=0, help="The task to start with (its line, from 0).")
    play.add_argument("--tool-timeout", type=float, default=5.0, help="Seconds per tool call (5.0).")
    play.set_defaults(func=cmd_env_play, protocol=False)


def prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n".join(
            str(m.get("content", "")) for m in prompt if isinstance(m, dict) and m.get("role") == "user"
        )
    return "" if prompt is None else str(prompt)


def tool_specs(factory: EnvironmentFactory) -> list[ToolSpec]:
    return [
        ToolSpec(info.name, info.text(), info.doc or "", list(info.signature.parameters), list(info.problems))
        for info in factory.tools.values()
    ]


class Play:
    """One person's episode at a time in one contained environment instance."""

    def __init__(self, factory: EnvironmentFactory, name: str, tasks: list[dict[str, Any]], out: TextIO):
        self.factory = factory
        self.name = name
        self.tasks = tasks
        self.out = out
        self.env: EnvironmentProxy = factory()
        self.trajectory = Trajectory()

    def say(self, message: PlayMessage) -> None:
        self.out.write(message_line(message) + "\n")
        self.out.flush()

    def reset(self, index: int) -> None:
        if not 0 <= index < len(self.tasks):
            self.say(
                PlayError(
                    f"there is no task {index}: the tasks file has {len(self.tasks)} (0 to {len(self.tasks) - 1})"
                )
            )
            return
        row = self.tasks[index]
        task = self.env.reset(**row)
        error = self.env._rl_reset_error
        self.trajectory = Trajectory(task=None if error else task, reset_error=error)
        self.index = index
        self.say(
            PlayReady(
                environment=self.name,
                class_name=self.factory.class_name,
                doc=self.factory.doc or "",
                has_reward=self.factory.has_reward,
                tools=tool_specs(self.factory),
                tasks=len(self.tasks),
                task_index=index,
                task_id=str(row["task_id"]) if row.get("task_id") is not None else None,
                prompt=prompt_text(row.get("prompt")),
                task=None if error else task,
                reset_error=error,
            )
        )

    def call(self, tool: str, arguments: Any) -> None:
        """One turn with one call, as TRL's loop runs a model's call."""
        text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        record: ToolCall
        if tool not in self.factory.tools:
            known = ", ".join(self.factory.tools)
            record = ToolCall(tool, text, valid=False, error=f"unknown tool '{tool}' (tools: {known})")
        else:
            parsed = arguments
            if isinstance(arguments, str):
                try:
                    parsed = json.loads(arguments) if arguments.strip() else {}
                except ValueError as exc:
                    parsed = exc
            if not isinstance(parsed, dict):
                why = parsed if isinstance(parsed, ValueError) else f"not {type(parsed).__name__}"
                record = ToolCall(
                    tool, text, valid=False, error=f"the arguments must be a JSON object ({why})"
                )
            else:
                before = len(self.env._rl_calls)
                with contextlib.suppress(ToolError):  # the proxy records a failure with its message
                    getattr(self.env, tool)(**parsed)
                record = self.env._rl_calls[-1] if len(self.env._rl_calls) > before else ToolCall(tool, text)
        self.trajectory.turns.append(Turn("", [record]))
        result = (
            record.result if record.result is None or isinstance(record.result, str) else str(record.result)
        )
        self.say(
            PlayObservation(
                turn=self.trajectory.num_turns,
                tool=record.tool,
                arguments=record.arguments,
                result=result,
                valid=record.valid,
                error=record.error,
                seconds=record.seconds,
            )
        )

    def reward(self) -> None:
        self.trajectory.reward, self.trajectory.reward_error = self.env._rl_reward()
        self.trajectory.environment_error = self.env._rl_lost
        self.trajectory.ended = "error" if self.trajectory.reset_error or self.env._rl_lost else "answered"
        self.say(
            PlayReward(
                self.trajectory.reward,
                self.trajectory.reward_error,
                succeeded(self.trajectory),
                self.trajectory.as_dict(),
            )
        )

    def handle(self, line: str) -> bool:
        """One request. False when the play should stop."""
        try:
            request = json.loads(line)
        except ValueError as exc:
            self.say(PlayError(f"a request is one JSON object per line ({exc}): {line[:120]!r}"))
            return True
        if not isinstance(request, dict):
            self.say(PlayError(f"a request is a JSON object, not {line[:120]!r}"))
            return True
        if "tool" in request:
            self.call(str(request["tool"]), request.get("arguments", {}))
            return True
        cmd = request.get("cmd")
        if cmd == "reward":
            self.reward()
        elif cmd == "reset":
            task = request.get("task", getattr(self, "index", 0))
            if isinstance(task, int) and not isinstance(task, bool):
                self.reset(task)
            else:
                self.say(PlayError(f"reset needs a task number, not {task!r}"))
        elif cmd == "quit":
            return False
        else:
            self.say(
                PlayError(
                    f'unknown request {line[:120]!r}: send {{"tool": ..., "arguments": ...}}, or a cmd: reward, reset, quit'
                )
            )
        return True


def cmd_env_play(args: argparse.Namespace) -> int:
    try:
        tasks = [row for _, row in json_lines(args.tasks, DataError)]
        if not tasks:
            raise DataError(f"{args.tasks} holds no task")
        if not 0 <= args.task < len(tasks):
            raise DataError(
                f"--task {args.task}: {args.tasks} has {len(tasks)} tasks (0 to {len(tasks) - 1})"
            )
        factory = load_environment(args.environment, tool_timeout=args.tool_timeout)
    except (DataError, EnvironmentLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with factory:
        play = Play(factory, args.environment, tasks, sys.stdout)
        play.reset(args.task)
        for line in sys.stdin:
            if line.strip() and not play.handle(line.strip()):
                break
    return EXIT_OK
