"""RL Studio's reward system: rubrics of weighted criteria (built-in checks, the user's Python reward
functions in any common convention, OpenAI-style graders, LLM judges), scored on one code path for
training, `rubric test` and `rubric redteam`. User code runs in worker processes the engine can kill.

Every module in this package imports only the standard library (transformers only lazily, for a local
judge model), so that reward workers start light.
"""

from engine.rewards.api import RewardBatch, ScoredBatch
from engine.rewards.errors import RubricError
from engine.rewards.rubric import Rubric, load_rubric

__all__ = ["RewardBatch", "Rubric", "RubricError", "ScoredBatch", "load_rubric"]
