"""The reward API shared by training, `rubric test` and `rubric redteam`: one code path scores all three.

A batch follows TRL's layout: N rows, where each prompt is repeated once per generation, consecutively.
"""

from __future__ import annotations

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

    def row(self, i: int) -> tuple[float, dict[str, float | None], dict[str, str]]:
        return (
            self.totals[i],
            {name: values[i] for name, values in self.scores.items()},
            {name: msg for name, msgs in self.errors.items() if (msg := msgs[i]) is not None},
        )
