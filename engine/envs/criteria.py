"""Trajectory criteria: built-in checks that score a whole agent rollout, not just its last message.

    [[criteria]]                      [[criteria]]                    [[criteria]]
    name = "solved"                   name = "well_formed"            name = "brief"
    kind = "env_reward"               kind = "valid_tool_calls"       kind = "turn_budget"
                                                                      max_turns = 6

They read the batch's `trajectories` column, which training fills for runs with an [environment] (and
`env check` for its episodes): one Trajectory (or its dict) per row. Without it they fail with a message
saying so, and the rest of the rubric goes on.
"""

from __future__ import annotations

from typing import Any

from engine.envs.trajectory import Trajectory
from engine.rewards.context import ScoringContext
from engine.rewards.criteria import Criterion, CriterionResult
from engine.rewards.params import Params

TRAJECTORIES = "trajectories"
NO_TRAJECTORY = (
    "needs the rollout's trajectory, which only runs with an [environment] (agent runs) and "
    "`rl-studio-engine env check` provide; use this criterion in an agent run's rubric"
)


def trajectories(ctx: ScoringContext) -> list[Trajectory | None] | None:
    column = ctx.batch.columns.get(TRAJECTORIES)
    if column is None:
        return None
    out: list[Trajectory | None] = []
    for value in column:
        if isinstance(value, Trajectory):
            out.append(value)
        elif isinstance(value, dict):
            out.append(Trajectory.from_dict(value))
        else:
            out.append(None)
    return out


class TrajectoryCriterion(Criterion):
    def score(self, ctx: ScoringContext) -> CriterionResult:
        found = trajectories(ctx)
        if found is None:
            return CriterionResult.failed(ctx.n, f"{self.kind} {NO_TRAJECTORY}")
        values: list[float | None] = []
        errors: list[str | None] = []
        for trajectory in found:
            if trajectory is None:
                values.append(None)
                errors.append(f"{self.kind}: this row has no trajectory")
                continue
            value, error = self.value(trajectory)
            values.append(value)
            errors.append(error)
        return CriterionResult(values, errors)

    def value(self, trajectory: Trajectory) -> tuple[float | None, str | None]:
        raise NotImplementedError


class EnvReward(TrajectoryCriterion):
    """The environment's own get_reward() for the episode. Null, with the reason, when it failed."""

    kind = "env_reward"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)

    def value(self, trajectory: Trajectory) -> tuple[float | None, str | None]:
        if trajectory.reward is not None:
            return trajectory.reward, None
        return None, trajectory.reward_error or "the environment defines no get_reward method"


class ValidToolCalls(TrajectoryCriterion):
    """The fraction of the rollout's tool calls that were well formed (known tool, JSON that parses,
    arguments that fit the signature). `count_tool_errors = true` also counts a call whose tool raised or
    timed out as a failure. A rollout without a call scores `no_calls` (0.0 unless set)."""

    kind = "valid_tool_calls"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        self.count_tool_errors = params.flag("count_tool_errors", False)
        self.no_calls = params.number("no_calls", 0.0)

    def value(self, trajectory: Trajectory) -> tuple[float | None, str | None]:
        calls = trajectory.calls
        if not calls:
            return self.no_calls, None
        good = [c for c in calls if c.valid and (c.error is None or not self.count_tool_errors)]
        return len(good) / len(calls), None


class TurnBudget(TrajectoryCriterion):
    """1.0 when the rollout took at most `max_turns` turns (assistant messages), else 0.0."""

    kind = "turn_budget"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        self.max_turns = params.integer("max_turns", minimum=1)

    def value(self, trajectory: Trajectory) -> tuple[float | None, str | None]:
        return float(trajectory.num_turns <= self.max_turns), None


TRAJECTORY_KINDS: dict[str, Any] = {cls.kind: cls for cls in (EnvReward, ValidToolCalls, TurnBudget)}
