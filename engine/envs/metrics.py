"""What an agent batch did, as metrics: logged per training step under `agent/...` and per held-out
evaluation under `eval/agent/...` and `eval/success/<tier>`.

    agent/success_rate       rollouts whose environment reward (get_reward) is at least 1.0
    agent/turns_mean         assistant turns per rollout
    agent/invalid_call_rate  malformed calls (unknown tool, arguments that do not parse or fit) / calls
    agent/tool_error_rate    well-formed calls whose tool raised or timed out / well-formed calls
    agent/loop_rate          rollouts that made the same call (tool and arguments) more than once
    agent/max_turns_rate     rollouts that were still calling tools when the turn budget ran out
    agent/calls/<tool>       calls of each tool per rollout

A rate whose denominator is zero (no calls at all) is left out rather than logged as 0.
Standard library only, like trajectory.py.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from engine.contract.trajectory import SUCCESS_REWARD, succeeded
from engine.envs.trajectory import Trajectory

__all__ = ["SUCCESS_REWARD", "agent_metrics", "repeats_a_call", "succeeded", "success_by_tier"]


def agent_metrics(trajectories: list[Trajectory]) -> dict[str, float]:
    n = len(trajectories)
    if n == 0:
        return {}
    out: dict[str, float] = {}
    outcomes = [s for t in trajectories if (s := succeeded(t)) is not None]
    if outcomes:
        out["agent/success_rate"] = sum(outcomes) / len(outcomes)
    out["agent/turns_mean"] = sum(t.num_turns for t in trajectories) / n
    calls = [c for t in trajectories for c in t.calls]
    if calls:
        out["agent/invalid_call_rate"] = sum(not c.valid for c in calls) / len(calls)
    valid = [c for c in calls if c.valid]
    if valid:
        out["agent/tool_error_rate"] = sum(c.error is not None for c in valid) / len(valid)
    out["agent/loop_rate"] = sum(repeats_a_call(t) for t in trajectories) / n
    out["agent/max_turns_rate"] = sum(t.ended == "max_turns" for t in trajectories) / n
    per_tool = Counter(c.tool for c in valid)
    for tool in sorted(per_tool):
        out[f"agent/calls/{tool}"] = per_tool[tool] / n
    return out


def repeats_a_call(trajectory: Trajectory) -> bool:
    seen: set[tuple[str, str]] = set()
    for c in trajectory.calls:
        key = (c.tool, c.arguments)
        if key in seen:
            return True
        seen.add(key)
    return False


def success_by_tier(trajectories: list[Trajectory], tiers: list[Any]) -> dict[str, float]:
    """success/<tier> for each value of the rows' `tier` column (success/all over every row)."""
    groups: dict[str, list[bool]] = {}
    for trajectory, tier in zip(trajectories, tiers, strict=True):
        outcome = succeeded(trajectory)
        if outcome is None:
            continue
        groups.setdefault("all", []).append(outcome)
        if tier is not None:
            groups.setdefault(str(tier), []).append(outcome)
    return {f"success/{tier}": sum(v) / len(v) for tier, v in groups.items()}
