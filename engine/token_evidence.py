"""Token-level evidence for the rollouts a run records: each completion's tokens with their texts and
per-token statistics, packed into one blob per rollout (engine/contract/token_stats.py).

The algorithms hand over tensors they already hold (PPO) or compute in one no-grad pass (GRPO,
engine/algos/trl_compat.py); this module turns them into blobs. Token texts are decoded once per token id
for the whole run, so the studio renders tokens without a tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.contract.token_stats import pack

REPLACEMENT = "\ufffd"


class TokenTexts:
    """The text of each token id as the tokenizer decodes it alone, cached for the run."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def __call__(self, ids: Sequence[int]) -> list[str]:
        missing = sorted({i for i in ids if i not in self.cache})
        if missing:
            texts = self.tokenizer.batch_decode(
                [[i] for i in missing], skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
            self.cache.update(zip(missing, texts, strict=True))
        out = [self.cache[i] for i in ids]
        if any(REPLACEMENT in t for t in out):
            self._join_split_characters(ids, out)
        return out

    def _join_split_characters(self, ids: Sequence[int], out: list[str]) -> None:
        """A character whose UTF-8 bytes span several byte-level tokens decodes to U+FFFD token by token:
        decode the run together and give the character to its first token (the others show empty)."""
        i = 0
        while i < len(out):
            if REPLACEMENT in out[i]:
                for j in range(i + 2, min(i + 5, len(out)) + 1):
                    joined = self.tokenizer.decode(
                        list(ids[i:j]), skip_special_tokens=False, clean_up_tokenization_spaces=False
                    )
                    if REPLACEMENT not in joined:
                        out[i:j] = [joined] + [""] * (j - i - 1)
                        i = j - 1
                        break
            i += 1


def token_blobs(
    texts: TokenTexts,
    ids: Sequence[Sequence[int]],
    counts: Sequence[int],
    stats: Mapping[str, Sequence[Sequence[float]]],
) -> list[bytes]:
    """One blob per completion: its first `counts[i]` tokens and their values of every statistic (rows
    as the model's right-padded tensors give them, `.tolist()`-ed)."""
    blobs = []
    for i, n in enumerate(counts):
        row = list(ids[i][:n])
        blobs.append(pack(row, texts(row), {name: values[i][:n] for name, values in stats.items()}))
    return blobs
