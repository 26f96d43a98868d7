"""What every criterion reads from one batch, computed once per batch and shared."""

from __future__ import annotations

import pickle
from functools import cached_property
from typing import Any

from engine.rewards.api import RewardBatch
from engine.rewards.text import completion_text, last_user_text, parse_json_output, prompt_text


class ScoringContext:
    def __init__(self, batch: RewardBatch, tokenizer: Any = None) -> None:
        n = len(batch.completions)
        if len(batch.prompts) != n:
            raise ValueError(f"RewardBatch has {len(batch.prompts)} prompts for {n} completions")
        for column, values in batch.columns.items():
            if len(values) != n:
                raise ValueError(
                    f"RewardBatch column '{column}' has {len(values)} values for {n} completions"
                )
        if batch.completion_ids is not None and len(batch.completion_ids) != n:
            raise ValueError(
                f"RewardBatch has {len(batch.completion_ids)} completion_ids for {n} completions"
            )
        self.batch = batch
        self.n = n
        self.tokenizer = tokenizer
        self._blobs: dict[bool, bytes] = {}

    @cached_property
    def texts(self) -> list[str]:
        return [completion_text(c) for c in self.batch.completions]

    @cached_property
    def prompt_texts(self) -> list[str]:
        return [prompt_text(p) for p in self.batch.prompts]

    @cached_property
    def questions(self) -> list[str]:
        return [last_user_text(p) for p in self.batch.prompts]

    @cached_property
    def output_json(self) -> list[Any]:
        return [parse_json_output(t) for t in self.texts]

    def item(self, i: int) -> dict[str, Any]:
        """The dataset row of row i, as OpenAI graders' `item` sees it (the prompt included)."""
        row = {"prompt": self.batch.prompts[i]}
        row.update({column: values[i] for column, values in self.batch.columns.items()})
        return row

    @cached_property
    def completion_ids(self) -> list[list[int]] | None:
        """The batch's token ids, or the tokenizer's for the completion texts, or None if neither exists."""
        if self.batch.completion_ids is not None:
            return [list(ids) for ids in self.batch.completion_ids]
        if self.tokenizer is None:
            return None
        encoded = self.tokenizer(self.texts, add_special_tokens=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def worker_blob(self, with_ids: bool) -> bytes:
        """The batch as reward workers receive it, pickled once per batch and shared by every worker.

        Token ids go along when the batch has them; the tokenizer runs only for a function that names
        completion_ids."""
        if with_ids not in self._blobs:
            ids = self.completion_ids if with_ids else self.batch.completion_ids
            payload = {
                "prompts": self.batch.prompts,
                "completions": self.batch.completions,
                "columns": self.batch.columns,
                "completion_ids": ids,
                "step": self.batch.step,
            }
            self._blobs[with_ids] = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        return self._blobs[with_ids]
