"""The reward API shared by training, `rubric test` and `rubric redteam`: one code path scores all three.

A batch follows TRL's layout: N rows, where each prompt is repeated once per generation, consecutively.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
Text = str | list[Message]


@dataclass
class RewardBatch:
    prompts: list[Text]
    """One prompt per row: a string (standard format) or a message list (conversational)."""
    completions: list[Text]
    """One completion per row: a string, or [{"role": "assistant", "content": ...}, ...]."""
    columns: dict[str, list[Any]] = field(default_factory=dict)
    """Dataset columns (everything but prompt/completion), each aligned with the rows."""
    completion_ids: list[list[int]] | None = None
    """Unpadded token ids per completion, for functions that ask for them."""
    step: int = 0

    def __len__(self) -> int:
        return len(self.completions)


@dataclass
class ScoredBatch:
    totals: list[float]
    """The reward each row is optimised on: exactly what is logged."""
    scores: dict[str, list[float | None]]
    """Per criterion (in rubric order), per row: a float, or None (not applicable, or failed)."""
    errors: dict[str, list[str | None]]
    """Per criterion, per row: None, or a message saying what went wrong."""
    explanations: dict[str, list[str | None]] = field(default_factory=dict)
    """Per judge criterion, per row: the judge's explanation of its score."""
    total_errors: list[str | None] = field(default_factory=list)
    """Per row: None, or why a `total` expression could not be computed (that row's total is then 0.0)."""
    logged_metrics: dict[str, float] = field(default_factory=dict)
    """What reward functions passed to TRL's `log_metric(name, value)` during this batch."""
    logged_columns: dict[str, list[Any]] = field(default_factory=dict)
    """What reward functions passed to TRL's `log_extra(column, values)`: one value per row."""

    def row(self, i: int) -> tuple[float, dict[str, float | None], dict[str, str]]:
        return (
            self.totals[i],
            {name: values[i] for name, values in self.scores.items()},
            {name: msg for name, msgs in self.errors.items() if (msg := msgs[i]) is not None},
        )

    def summary(self) -> dict[str, float]:
        """Batch metrics under TRL's names: `reward`, `reward_std`, and per criterion
        `rewards/<name>/mean`, `rewards/<name>/std` (over rows with a value; NaN when none has one) and
        `rewards/<name>/error_rate` (the fraction of rows whose criterion failed)."""
        out = {"reward": _mean(self.totals), "reward_std": _std(self.totals)}
        for name, values in self.scores.items():
            present = [v for v in values if v is not None]
            errors = self.errors.get(name, [])
            out[f"rewards/{name}/mean"] = _mean(present)
            out[f"rewards/{name}/std"] = _std(present)
            out[f"rewards/{name}/error_rate"] = (
                sum(e is not None for e in errors) / len(errors) if errors else 0.0
            )
        return out


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _std(values: list[float]) -> float:
    """Sample standard deviation, as torch.std (TRL's reward_std) computes it."""
    if len(values) < 2:
        return 0.0 if values else math.nan
    mean = _mean(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
