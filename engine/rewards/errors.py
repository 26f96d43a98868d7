"""The one error a user sees for a bad rubric."""

from __future__ import annotations

from engine.rewards.secret_env import scrub


class RubricError(ValueError):
    """A rubric cannot be loaded. The message names the criterion (when there is one) and the problem,
    and says how to fix it."""

    def __init__(self, message: str, criterion: str | None = None) -> None:
        self.criterion = criterion
        message = scrub(message)  # a message may quote user code's output or an endpoint's answer
        super().__init__(f"criterion '{criterion}': {message}" if criterion else message)
