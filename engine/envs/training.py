"""What a training algorithm needs from an [environment]: the factory to hand TRL, and the columns the
rubric scores each agent rollout with.

    factory = environment_factory(cfg)                  # None without an [environment]
    GRPOTrainer(..., environment_factory=factory)       # with args.max_tool_calling_iterations = max_turns
    # in the rubric's reward function, which TRL calls with environments=[one proxy per rollout]:
    columns |= episode_columns(kwargs["environments"], completions)

The factory does not expose get_reward to TRL (expose_reward=False): TRL would add it as a second reward
function beside the rubric, and the reward TRL optimises must stay the rubric's total, the one RL Studio
logs. The environment's reward reaches the rubric through the `env_reward` criterion instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.contract.config import RunConfig
from engine.envs.proxy import EnvironmentFactory, EnvironmentProxy, load_environment
from engine.envs.trajectory import Trajectory, build_trajectory, finish

EPISODE_COLUMNS = ("trajectories", "environments")
"""Columns added to an agent batch for the rubric; not dataset columns, so never recorded as such."""


def environment_factory(cfg: RunConfig) -> EnvironmentFactory | None:
    env = cfg.environment
    if env is None:
        return None
    return load_environment(env.path, cfg.base_dir, env.tool_timeout, expose_reward=False)


def episode_columns(
    environments: list[Any], completions: list[Any], max_turns: int | None = None
) -> dict[str, list[Any]]:
    """`trajectories` (Trajectory per rollout) and `environments` (EnvironmentSnapshot per rollout:
    the end state as plain data, and get_reward()) from TRL's per-rollout environments and completions.
    `max_turns` (the run's tool-calling rounds) tells a rollout cut by the turn budget from one cut by
    the token budget (Trajectory.ended)."""
    trajectories: list[Trajectory] = []
    snapshots = []
    for env, completion in zip(environments, completions, strict=True):
        if not isinstance(env, EnvironmentProxy):  # a bare environment (not ours): nothing recorded
            trajectories.append(Trajectory())
            snapshots.append(env)
            continue
        messages = (
            completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        )
        trajectory = build_trajectory(
            messages, list(env._rl_calls), set(env._rl_factory.tools), env._rl_task, env._rl_reset_error
        )
        snapshot = env._rl_snapshot()
        trajectory.reward, trajectory.reward_error = snapshot.reward, snapshot.reward_error
        trajectory.environment_error = env._rl_lost
        trajectories.append(finish(trajectory, max_turns, messages))
        snapshots.append(snapshot)
    return {"trajectories": trajectories, "environments": snapshots}


def write_trajectories(path: Path, step: int, rows: list[int | None], trajectories: list[Trajectory]) -> None:
    """Append one JSON line per rollout: the step, the dataset row, the trajectory and its OpenAI-format
    messages. (The workspace has no trajectory table yet: this file in the run's folder is the record.)"""
    with path.open("a", encoding="utf-8") as fh:
        for row, trajectory in zip(rows, trajectories, strict=True):
            record = {
                "step": step,
                "row": row,
                "trajectory": trajectory.as_dict(),
                "messages": trajectory.openai_messages(),
            }
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def turn_tokens(trajectories: list[Trajectory], completion_mask: Any, tool_mask: Any | None) -> None:
    """Set each turn's token count from TRL's masks: the model's tokens of a rollout (completion_mask x
    tool_mask) come in one run per assistant turn, separated by the tool results' tokens (tool_mask 0)."""
    model_tokens = completion_mask if tool_mask is None else completion_mask * tool_mask
    for trajectory, row, valid in zip(
        trajectories, model_tokens.tolist(), completion_mask.tolist(), strict=True
    ):
        runs: list[int] = []
        previous = 0
        for token, inside in zip(row, valid, strict=True):
            if not inside:
                break
            if token and not previous:
                runs.append(0)
            if token:
                runs[-1] += 1
            previous = token
        for turn, count in zip(trajectory.turns, runs, strict=False):
            turn.tokens = count
