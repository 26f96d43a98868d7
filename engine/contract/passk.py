"""Pass@k and what "pass" means, stdlib only (the engine's evaluation and difficulty sampler, and the
studio's prompt status view read the same rule).

A completion passes when the rubric's correctness criterion scores at least `threshold`. The criterion
is the configured one ([eval] correctness), else the first criterion with weight > 0 named like correct,
accuracy or success; a rubric with none of those passes a completion whose weighted total is above
`threshold`.

pass@k is the unbiased estimator of Chen et al. 2021 (Evaluating Large Language Models Trained on Code):
with n samples of a prompt of which c pass, 1 - C(n-c, k) / C(n, k), computed as the product
1 - prod_{i=n-c+1..n} (1 - k / i), which never forms the huge binomials. The figure of a set of prompts
is the mean over its prompts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

CORRECTNESS_NAME = re.compile(r"correct|accura|success", re.IGNORECASE)
TIER_COLUMNS = ("tier", "difficulty")
"""Columns of an eval set whose values split every figure by tier (the first present wins)."""

SOLVED, LEARNING, NEVER_SOLVED, UNSEEN = "solved", "learning", "never solved", "unseen"


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of k samples drawn without replacement from n, c of which pass,
    passes (Chen et al. 2021's unbiased estimator)."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def correctness_criterion(criteria: Iterable[tuple[str, float]], configured: str = "") -> str | None:
    """The criterion whose score says whether a completion is right: `configured` when set, else the first
    criterion with weight > 0 named like correct / accuracy / success; None means "use the total"."""
    pairs = list(criteria)
    if configured:
        if configured not in {name for name, _ in pairs}:
            names = ", ".join(name for name, _ in pairs)
            raise ValueError(
                f"the correctness criterion {configured!r} is not in the rubric; its criteria: {names}"
            )
        return configured
    for name, weight in pairs:
        if weight > 0 and CORRECTNESS_NAME.search(name):
            return name
    return None


@dataclass(frozen=True)
class PassRule:
    criterion: str | None
    """The correctness criterion, or None: the weighted total decides."""
    threshold: float

    def passed(self, total: float | None, scores: Mapping[str, float | None]) -> bool:
        """Whether one completion passes (a missing or NaN score fails)."""
        if self.criterion is None:
            return total is not None and math.isfinite(total) and total > self.threshold
        value = scores.get(self.criterion)
        return value is not None and math.isfinite(value) and value >= self.threshold

    def value(self, total: float | None, scores: Mapping[str, float | None]) -> float | None:
        """The number mean@n averages: the correctness criterion's score, or the total."""
        value = total if self.criterion is None else scores.get(self.criterion)
        return value if value is not None and math.isfinite(value) else None

    def describe(self) -> str:
        if self.criterion is None:
            return f"total > {self.threshold:g}"
        return f"{self.criterion} >= {self.threshold:g}"


@dataclass(frozen=True)
class PromptSamples:
    """The samples of one held-out prompt."""

    passed: Sequence[bool]
    values: Sequence[float | None]
    """What mean@n averages, per sample (None: no score)."""
    greedy_passed: bool | None = None
    tier: str | None = None


def eval_figures(
    prompts: Sequence[PromptSamples],
    ks: Sequence[int],
    n: int,
    prefix: str = "eval",
    tier_column: str = "tier",
) -> dict[str, float | None]:
    """pass@k for each k, mean@n and greedy pass@1 over the prompts, then the same per tier (keys
    `eval/pass@4`, `eval/mean@8`, `eval/greedy_pass@1`, `eval/pass@4/tier=hard`)."""
    out = _figures(prompts, ks, n, prefix, "")
    tiers = sorted({p.tier for p in prompts if p.tier is not None})
    for tier in tiers:
        part = [p for p in prompts if p.tier == tier]
        out |= _figures(part, ks, n, prefix, f"/{tier_column}={tier}")
    return out


def _figures(
    prompts: Sequence[PromptSamples], ks: Sequence[int], n: int, prefix: str, suffix: str
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    if not prompts:
        return out
    for k in ks:
        per_prompt = [pass_at_k(len(p.passed), sum(p.passed), k) for p in prompts if len(p.passed) >= k]
        out[f"{prefix}/pass@{k}{suffix}"] = sum(per_prompt) / len(per_prompt) if per_prompt else None
    means = []
    for p in prompts:
        values = [v for v in p.values if v is not None]
        if values:
            means.append(sum(values) / len(values))
    out[f"{prefix}/mean@{n}{suffix}"] = sum(means) / len(means) if means else None
    greedy = [p.greedy_passed for p in prompts if p.greedy_passed is not None]
    if greedy:
        out[f"{prefix}/greedy_pass@1{suffix}"] = sum(greedy) / len(greedy)
    return out


def tier_of(row: Mapping[str, object]) -> tuple[str, str | None]:
    """(the tier column, this row's tier) of an eval row; the tier is None when the row has none."""
    for column in TIER_COLUMNS:
        value = row.get(column)
        if value is not None and value != "":
            return column, str(value)
    return TIER_COLUMNS[0], None


def prompt_status(attempts: int, passes: int, latest_attempts: int, latest_passes: int) -> str:
    """Where a training prompt stands: solved (every completion of its latest group passed), never solved
    (no completion ever passed), learning (the rest), unseen (never sampled)."""
    if attempts == 0:
        return UNSEEN
    if passes == 0:
        return NEVER_SOLVED
    if latest_attempts > 0 and latest_passes == latest_attempts:
        return SOLVED
    return LEARNING
