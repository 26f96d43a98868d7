"""RL Studio's reward system: rubrics of weighted criteria (built-in checks, the user's Python reward
functions in any common convention, OpenAI-style graders, LLM judges), scored on one code path for
training, `rubric test` and `rubric redteam`. User code runs in worker processes the engine can kill.

Every module in this package imports only the standard library (transformers only lazily, for a local
judge model). The names below are imported on first use, so that a reward worker, which imports this
package on its way to engine.rewards.worker, starts without the loader it never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.rewards.api import RewardBatch, ScoredBatch
    from engine.rewards.errors import RubricError
    from engine.rewards.rubric import Rubric, load_rubric

_EXPORTS = {
    "RewardBatch": "engine.rewards.api",
    "ScoredBatch": "engine.rewards.api",
    "RubricError": "engine.rewards.errors",
    "Rubric": "engine.rewards.rubric",
    "load_rubric": "engine.rewards.rubric",
}

__all__ = ["RewardBatch", "Rubric", "RubricError", "ScoredBatch", "load_rubric"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine.rewards' has no attribute {name!r}")
