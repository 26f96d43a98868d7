"""A recorded agent run for the studio's tests, made of real episodes.

Each episode is played in the real built-in file manager (engine.envs: the contained worker process, the
proxy's argument checks, TRL's tool-loop layout of messages) by a scripted policy: the task's correct
solution, or one of the mistakes agents make (a wrong argument, a file that does not exist, an unknown
tool, forgetting the manifest, listing the same folder until the turns run out). The episodes are turned
into trajectories by the engine's own code (build_trajectory, finish) and written through engine.store's
write path, with the agent metrics engine.envs.metrics computes from them: what an agent run records.

Only the per-turn token counts are not from a model (a run takes them from TRL's tool mask): each turn
counts the words of what its message would say, so they vary with the turn as real ones do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.envs.episodes import run_scripted
from engine.envs.file_manager import MANIFEST, solution
from engine.envs.metrics import agent_metrics, success_by_tier
from engine.envs.proxy import EnvironmentFactory, EnvironmentProxy, load_environment
from engine.envs.trajectory import Trajectory, build_trajectory, finish
from engine.store import GroupRecord, RolloutRecord, Workspace, with_trajectory

EVAL_TASKS = Path(__file__).resolve().parents[2] / "engine" / "envs" / "data" / "file_manager_eval.jsonl"
MAX_TURNS = 8
RUBRIC = """
[[criteria]]
name = "success"
kind = "env_reward"

[[criteria]]
name = "well_formed"
kind = "valid_tool_calls"
weight = 0.0
"""

Policy = Callable[[dict[str, Any]], list[dict[str, Any]]]


def _solved(task: dict[str, Any]) -> list[dict[str, Any]]:
    return solution(task)


def _no_manifest(task: dict[str, Any]) -> list[dict[str, Any]]:
    return solution(task)[:-1]


def _wrong_argument(task: dict[str, Any]) -> list[dict[str, Any]]:
    calls = solution(task)
    # `target` is no parameter of move_file: refused before the tool runs (an invalid call)
    bad = {"name": "move_file", "arguments": {"source": calls[1]["arguments"]["source"], "target": "x"}}
    return [calls[0], bad, *calls[1:]]


def _missing_file(task: dict[str, Any]) -> list[dict[str, Any]]:
    missing = {
        "name": "move_file",
        "arguments": {"source": f"{task['source']}/nothing.txt", "destination": "x"},
    }
    return [solution(task)[0], missing]  # the tool raises FileNotFoundError, then the model gives up


def _unknown_tool(task: dict[str, Any]) -> list[dict[str, Any]]:
    return [solution(task)[0], {"name": "delete_file", "arguments": {"path": f"{task['source']}/a"}}]


def _loop(task: dict[str, Any]) -> list[dict[str, Any]]:
    return [solution(task)[0]] * (MAX_TURNS + 1)  # the same listing until the turns run out


POLICIES: dict[str, Policy] = {
    "solved": _solved,
    "no_manifest": _no_manifest,
    "wrong_argument": _wrong_argument,
    "missing_file": _missing_file,
    "unknown_tool": _unknown_tool,
    "loop": _loop,
}


def play(
    factory: EnvironmentFactory, env: EnvironmentProxy, task: dict[str, Any], calls: list[dict[str, Any]]
) -> Trajectory:
    """One episode as TRL's loop plays it: one call per turn, at most MAX_TURNS rounds; a model still
    calling tools after them writes one more message whose calls never run."""
    played = run_scripted(factory, env, task, [[c] for c in calls], MAX_TURNS, None)
    messages = list(played.messages)
    if len(calls) > MAX_TURNS:
        extra = calls[MAX_TURNS]
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"type": "function", "function": dict(extra)}],
            }
        )
    else:
        messages.append({"role": "assistant", "content": "Done: the files are moved and listed."})
    trajectory = build_trajectory(
        messages, list(env._rl_calls), set(factory.tools), task=played.trajectory.task
    )
    trajectory.reward, trajectory.reward_error = played.trajectory.reward, played.trajectory.reward_error
    finish(trajectory, MAX_TURNS, messages)
    for turn in trajectory.turns:
        words = turn.text.split() + [w for c in turn.calls for w in (c.tool, *c.arguments.split())]
        turn.tokens = 4 + 2 * len(words)
    return trajectory


def build_agent_run(
    path: Path | str,
    steps: int = 2,
    tasks_per_step: int = 3,
    policies: tuple[str, ...] = tuple(POLICIES),
) -> int:
    """Write a finished agent run of `steps` steps into the workspace at `path`; returns its id.

    Each step takes `tasks_per_step` held-out tasks (easy and hard alternate) and plays each with every
    policy: a group of len(policies) trajectories per task."""
    tasks = [json.loads(line) for line in EVAL_TASKS.read_text().splitlines() if line.strip()]
    easy = [t for t in tasks if t["tier"] == "easy"]
    hard = [t for t in tasks if t["tier"] == "hard"]
    ws = Workspace(path)
    rubric_id = ws.save_rubric_version("agent", RUBRIC, {})
    config = {
        "algorithm": "grpo",
        "name": "agent-test",
        "environment": {"path": "builtin:file_manager", "max_turns": MAX_TURNS, "tool_timeout": 5.0},
        "data": {"train": str(EVAL_TASKS)},
    }
    run_id = ws.create_run("agent-test", "grpo", config, max_steps=steps, rubric_version_id=rubric_id)
    with load_environment("builtin:file_manager") as factory:
        env = factory()
        n = 0
        for step in range(1, steps + 1):
            groups: list[GroupRecord] = []
            trajectories: list[Trajectory] = []
            for _ in range(tasks_per_step):
                task = (easy if n % 2 == 0 else hard)[n // 2]
                n += 1
                played = [play(factory, env, task, POLICIES[p](task)) for p in policies]
                rewards = [t.reward or 0.0 for t in played]
                mean = sum(rewards) / len(rewards)
                records = []
                for t, reward in zip(played, rewards, strict=True):
                    record = RolloutRecord(
                        "",
                        reward,
                        reward - mean,
                        0,
                        False,
                        scores={"success": t.reward, "well_formed": t.valid_fraction()},
                    )
                    records.append(with_trajectory(record, t, task["prompt"]))
                columns = {k: v for k, v in task.items() if k != "prompt"}
                groups.append(GroupRecord(task["prompt"][-1]["content"], tasks.index(task), columns, records))
                trajectories += played
            ws.write_rollouts(run_id, step, groups)
            metrics = agent_metrics(trajectories)
            metrics["reward"] = sum(t.reward or 0.0 for t in trajectories) / len(trajectories)
            tiers = [g.columns["tier"] for g in groups for _ in g.rollouts]
            metrics.update({f"eval/{k}": v for k, v in success_by_tier(trajectories, tiers).items()})
            ws.write_metrics(run_id, step, metrics)
            ws.update_run(run_id, step=step)
    ws.set_status(run_id, "finished")
    ws.close()
    return run_id


__all__ = ["MANIFEST", "MAX_TURNS", "POLICIES", "build_agent_run", "play"]
