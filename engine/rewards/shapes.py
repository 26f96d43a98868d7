"""The one place a completion gets its shape before a criterion sees it.

A criterion is handed completions in the shape TRL's GRPOTrainer hands reward functions in training:
a string for a standard prompt, `[{"role": "assistant", "content": text}]` for a conversational one (a
prompt that is a message list). Training, held-out evaluation, `rubric test`, `rubric redteam` and the
preflight all shape through `shape_completions`, so a reward written for one shape cannot score 1.0 in a
test and 0 on every training rollout.

Stdlib only: the engine imports it everywhere, and nothing here needs more.
"""

from __future__ import annotations

from typing import Any

from engine.rewards.text import as_completion_messages, completion_text


def is_conversational(prompt: Any) -> bool:
    """Whether a prompt is in the conversational format (a list of chat messages), as TRL decides it."""
    return isinstance(prompt, list)


def shape_completion(prompt: Any, completion: Any) -> str | list[dict[str, Any]]:
    """`completion` (a string, or a message list) in the shape training gives it for `prompt`."""
    if is_conversational(prompt):
        return as_completion_messages(completion)
    return completion_text(completion)


def shape_completions(prompts: list[Any], completions: list[Any]) -> list[Any]:
    """Every completion shaped for its own row's prompt (the lists are aligned, as in a reward batch)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    return [shape_completion(p, c) for p, c in zip(prompts, completions, strict=True)]
