"""Reward functions of the demo rubric (engine/assets/demo/rubric.toml), in TRL's convention.

Each is called by keyword, as trl.GRPOTrainer calls reward functions:
``fn(prompts=..., completions=..., completion_ids=..., **dataset_columns)`` and returns one float per
completion. Plain Python on purpose: no heavy imports, so the rubric runner can load it anywhere.
"""

from __future__ import annotations

import re

ANSWER = re.compile(r"<answer>\s*(-?\d+)\s*</answer>")


def extract_answer(completion: str) -> str | None:
    """The integer inside the first <answer>...</answer> of a completion, or None when there is none."""
    match = ANSWER.search(completion)
    return match.group(1) if match else None


def _text(completion) -> str:
    # Conversational datasets pass a list of messages; score the assistant's text.
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def correct(completions, answer, **kwargs) -> list[float]:
    """1.0 when the number in <answer>...</answer> equals the row's answer, else 0.0."""
    scores = []
    for completion, expected in zip(completions, answer, strict=True):
        got = extract_answer(_text(completion))
        scores.append(1.0 if got is not None and int(got) == int(str(expected).strip()) else 0.0)
    return scores


def well_formatted(completions, **kwargs) -> list[float]:
    """1.0 when the whole completion is exactly <answer>INTEGER</answer> (the rubric's regex criterion, as code)."""
    return [1.0 if re.fullmatch(r"\s*<answer>-?\d+</answer>\s*", _text(c)) else 0.0 for c in completions]
