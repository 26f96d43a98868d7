"""What every criterion is: a name, a kind, a weight, and a way to score a batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.rewards.context import ScoringContext


@dataclass
class CriterionResult:
    values: list[float | None]
    errors: list[str | None]
    explanations: list[str | None] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    columns: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def failed(cls, n: int, message: str) -> CriterionResult:
        return cls([None] * n, [message] * n)


class Criterion:
    """Built-in checks score in-process in `score`; user code and judges override `submit` so that slow
    criteria run side by side: the rubric submits every criterion, then collects every result."""

    kind = "?"
    needs_completion_ids = False
    """True when the criterion reads token ids (the rubric then tokenizes if the batch has none)."""

    def __init__(self, name: str, weight: float) -> None:
        self.name = name
        self.weight = weight

    def submit(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        result = self.score(ctx)
        return lambda: result

    def score(self, ctx: ScoringContext) -> CriterionResult:
        raise NotImplementedError

    def files(self) -> dict[str, str]:
        """{path relative to the rubric: text} of the files this criterion read at load (schemas, grader
        JSON, user code), for the rubric's immutable snapshot."""
        return {}

    def columns_used(self) -> set[str]:
        """Dataset columns this criterion reads (red-teaming stuffs their values)."""
        return set()

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} kind={self.kind} weight={self.weight:g}>"
