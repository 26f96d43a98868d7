"""Difficulty-aware prompt sampling for GRPO ([data] sampling = "difficulty", skip_zero_variance).

Each training prompt carries a running estimate of its failure rate: the fraction of a group's completions
that fail the pass rule (engine/contract/passk.py), folded in group after group as an exponential moving
average (the first group replaces the prior; unseen prompts count 0.5). A prompt is drawn with weight
MIN_WEIGHT + failure rate, so unsolved prompts come up more often and solved ones now and then, which
keeps their estimate honest. With skip_zero_variance, a prompt whose latest group's rewards were all equal
(no GRPO signal: every advantage is 0) is down-weighted by ZERO_VARIANCE_WEIGHT, so another prompt is
drawn in its place most of the time.

The estimates are rebuilt from the run's recorded rollouts when a run resumes (`from_workspace`), so a
resumed run samples as the interrupted one would have. The sampler keeps the layout of TRL's
RepeatSampler (each chosen prompt repeated num_generations times in a row, each batch of prompts repeated
for TRL's reuse of a generation): only which prompts are drawn changes.

Accelerate's data loader fetches one batch ahead, so the weights a batch is drawn with lack the latest
step's groups: a lag of one generation.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.contract.passk import PassRule

PRIOR_FAILURE = 0.5
EMA_ALPHA = 0.3
"""How much the latest group moves a prompt's estimate (the first group sets it outright)."""
MIN_WEIGHT = 0.05
"""A solved prompt's weight: it still comes up now and then."""
ZERO_VARIANCE_WEIGHT = 0.1
"""skip_zero_variance: the factor on a prompt whose latest group all scored the same."""


@dataclass
class PromptEstimate:
    failure: float = PRIOR_FAILURE
    groups: int = 0
    zero_variance: bool = False


@dataclass
class DifficultyStats:
    """Per training prompt: its running failure rate and whether its latest group had any signal."""

    num_prompts: int
    rule: PassRule
    difficulty: bool = True
    """Weight by failure rate (sampling = "difficulty"); False: every prompt alike (uniform)."""
    skip_zero_variance: bool = False
    estimates: dict[int, PromptEstimate] = field(default_factory=dict)

    def observe_group(
        self, prompt_index: int, totals: Sequence[float | None], scores: Sequence[dict[str, Any]]
    ) -> None:
        """Fold one recorded group (its completions' totals and per-criterion scores) into the estimate."""
        passes = [self.rule.passed(t, s) for t, s in zip(totals, scores, strict=True)]
        if not passes:
            return
        failure = 1.0 - sum(passes) / len(passes)
        finite = [t for t in totals if t is not None and math.isfinite(t)]
        est = self.estimates.setdefault(prompt_index, PromptEstimate())
        est.failure = failure if est.groups == 0 else (1 - EMA_ALPHA) * est.failure + EMA_ALPHA * failure
        est.groups += 1
        est.zero_variance = len(finite) == len(totals) and max(finite) - min(finite) <= 1e-9

    def failure(self, prompt_index: int) -> float:
        est = self.estimates.get(prompt_index)
        return est.failure if est is not None else PRIOR_FAILURE

    def weight(self, prompt_index: int) -> float:
        w = MIN_WEIGHT + self.failure(prompt_index) if self.difficulty else 1.0
        est = self.estimates.get(prompt_index)
        if self.skip_zero_variance and est is not None and est.zero_variance:
            w *= ZERO_VARIANCE_WEIGHT
        return w

    def weights(self) -> list[float]:
        return [self.weight(i) for i in range(self.num_prompts)]

    def observe_rows(
        self,
        rows: Sequence[dict[str, Any]],
        totals: Sequence[float | None],
        scores: Sequence[dict[str, Any]],
        group_size: int,
        index_key: str,
    ) -> None:
        """A generated batch in TRL's layout (row i belongs to group i // group_size)."""
        for start in range(0, len(rows), group_size):
            end = min(start + group_size, len(rows))
            index = rows[start].get(index_key)
            if index is not None:
                self.observe_group(int(index), totals[start:end], scores[start:end])

    def load_recorded(self, conn: sqlite3.Connection, run_id: int) -> int:
        """Fold in every group the run has recorded, oldest first (a resumed run's estimates); returns
        how many groups were read."""
        groups = 0
        current, totals, scores = None, [], []  # type: ignore[var-annotated]
        sql = (
            "SELECT g.id, g.prompt_index, r.reward, r.scores_json FROM groups g JOIN rollouts r ON r.group_id = g.id"
            " WHERE g.run_id = ? AND g.prompt_index IS NOT NULL ORDER BY g.id, r.id"
        )
        for group_id, prompt_index, reward, scores_json in conn.execute(sql, (run_id,)):
            if current is not None and group_id != current[0]:
                self.observe_group(current[1], totals, scores)
                groups += 1
                totals, scores = [], []
            current = (group_id, prompt_index)
            totals.append(reward)
            scores.append(json.loads(scores_json or "{}"))
        if current is not None:
            self.observe_group(current[1], totals, scores)
            groups += 1
        return groups


def weighted_sample(weights: Sequence[float], k: int, rng: random.Random) -> list[int]:
    """k distinct indices, each drawn with probability proportional to its weight among those left
    (Efraimidis and Spirakis 2006: the k largest u^(1/w))."""
    keyed = [(math.log(rng.random() or 1e-300) / w, i) for i, w in enumerate(weights) if w > 0]
    keyed.sort(reverse=True)
    return [i for _, i in keyed[:k]]


def make_sampler(
    stats: DifficultyStats, mini_repeat_count: int, batch_size: int, repeat_count: int, seed: int
) -> Any:
    """The torch Sampler GRPO draws its prompts from (TRL's RepeatSampler layout)."""
    from torch.utils.data import Sampler

    class DifficultySampler(Sampler[int]):
        def __init__(self) -> None:
            self.epoch = 0

        def __len__(self) -> int:
            chunks = stats.num_prompts // batch_size
            return chunks * batch_size * mini_repeat_count * repeat_count

        def __iter__(self) -> Iterator[int]:
            rng = random.Random(seed * 1_000_003 + self.epoch)
            self.epoch += 1
            for _ in range(stats.num_prompts // batch_size):
                chunk = weighted_sample(stats.weights(), batch_size, rng)  # the weights as of now
                for _ in range(repeat_count):
                    for index in chunk:
                        for _ in range(mini_repeat_count):
                            yield index

    return DifficultySampler()


def observe_batch(
    stats: DifficultyStats, rows: Sequence[dict[str, Any]], scored: Any, group_size: int, index_key: str
) -> None:
    """Fold a generated batch (TRL's layout: row i in group i // group_size; `scored` its ScoredBatch)."""
    scores = [scored.row(i)[1] for i in range(len(rows))]
    stats.observe_rows(rows, list(scored.totals), scores, group_size, index_key)


def difficulty_stats(session: Any) -> DifficultyStats | None:
    """The run's prompt estimates when [data] asks for difficulty sampling or skip_zero_variance (None:
    TRL's uniform sampler), rebuilt from what the run has recorded so far (a resumed run)."""
    d = session.cfg.data
    if d.sampling == "uniform" and not d.skip_zero_variance:
        return None
    from engine.evaluation_metrics import pass_rule

    stats = DifficultyStats(
        len(session.train_rows),
        pass_rule(session),
        difficulty=d.sampling == "difficulty",
        skip_zero_variance=d.skip_zero_variance,
    )
    groups = stats.load_recorded(session.workspace.conn, session.run_id)
    if groups:
        session.log(
            f"{d.sampling} sampling: estimates of {len(stats.estimates)} prompts rebuilt from {groups} recorded groups"
        )
    return stats
