"""Token-level evidence of a rollout: its tokens and per-token statistics, packed into one small blob.

The engine packs one blob per rollout (``token_stats`` table, schema migration 6, written in the same
transaction as the rollout); the studio unpacks it to draw the completion as a token heat map. Both sides
use this module, which is stdlib-only (struct), so the studio decodes without numpy or transformers.

Layout (little-endian), version 1::

    b"TKS1"                         magic and version
    u32 n                           tokens
    u8  k                           statistics
    k x (u8 length, ASCII name)     their names, in the order their values follow
    n x u32                         token ids
    n x u16                         byte length of each token's text
    UTF-8 text of every token, concatenated
    k x n x float16                 the values, one array per statistic (NaN: not recorded for that token)

A token's text is what the tokenizer decodes it to alone; a character split over several byte-level
tokens decodes whole on its first token, the others then show as empty (see ``engine/token_evidence.py``).
float16 keeps about three significant digits, plenty for a colour and a tooltip; a value beyond its range
(65504) is stored clamped to it. About ``6 + 2k`` bytes a token plus its text: ~1 KB for 64 tokens.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MAGIC = b"TKS1"
FLOAT16_MAX = 65504.0

# The statistics the engine records, in the order the studio offers them. See docs/inspector.md.
LOGPROB = "logprob"
"""log p(token) under the policy that sampled it, at the sampling temperature (always <= 0)."""
ENTROPY = "entropy"
"""Entropy (nats) of the policy's next-token distribution at that position, at the sampling temperature."""
ADVANTAGE = "advantage"
"""The token's advantage: GRPO's is the completion's, on every token; PPO's is per token (GAE)."""
LOSS = "loss"
"""The token's share of the policy loss at the first update after sampling, where the importance weight
pi/pi_sampling is 1: (-advantage x weight + beta x kl) / completion tokens. Summed over a completion it is
that completion's term in GRPO's loss (loss_type grpo; other loss types divide by another constant).
Negative: the update makes the token more likely."""
KL = "kl"
"""KL(policy || reference) at the token, when beta > 0: GRPO's k3 estimator (TRL's), PPO's kl_estimator."""
VALUE = "value"
"""PPO: the value head's estimate of the return from that token."""

STATS = (LOGPROB, ENTROPY, LOSS, ADVANTAGE, KL, VALUE)

LABELS = {
    LOGPROB: "Log-prob",
    ENTROPY: "Entropy",
    LOSS: "Loss share",
    ADVANTAGE: "Advantage",
    KL: "KL vs reference",
    VALUE: "Value",
}

DIVERGING = frozenset({LOSS, ADVANTAGE, VALUE})
"""Statistics centred on 0 (coloured both ways from white); the others run one way from their best."""


class TokenStatsError(ValueError):
    """A blob that is not token stats in a format this version reads."""


@dataclass
class TokenStats:
    ids: list[int]
    texts: list[str]
    stats: dict[str, list[float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def _half(values: Sequence[float]) -> list[float]:
    """Values float16 can hold: finite ones beyond its range are clamped to it (inf and NaN stay)."""
    out = []
    for v in values:
        v = float(v)
        if math.isfinite(v) and abs(v) > FLOAT16_MAX:
            v = math.copysign(FLOAT16_MAX, v)
        out.append(v)
    return out


def pack(ids: Sequence[int], texts: Sequence[str], stats: Mapping[str, Sequence[float]]) -> bytes:
    n = len(ids)
    if len(texts) != n:
        raise ValueError(f"{len(texts)} token texts for {n} token ids")
    encoded = [t.encode("utf-8", "replace") for t in texts]
    parts = [MAGIC, struct.pack("<IB", n, len(stats))]
    for name in stats:
        raw = name.encode("ascii")
        parts.append(struct.pack("<B", len(raw)) + raw)
    parts.append(struct.pack(f"<{n}I", *ids))
    parts.append(struct.pack(f"<{n}H", *(min(len(e), 0xFFFF) for e in encoded)))
    parts.append(b"".join(e[:0xFFFF] for e in encoded))
    for name, values in stats.items():
        if len(values) != n:
            raise ValueError(f"{len(values)} values of {name} for {n} tokens")
        parts.append(struct.pack(f"<{n}e", *_half(values)))
    return b"".join(parts)


def unpack(blob: bytes) -> TokenStats:
    view = memoryview(blob)
    if bytes(view[:4]) != MAGIC:
        raise TokenStatsError(f"not token stats of format {MAGIC.decode()} (starts {bytes(view[:4])!r})")
    try:
        n, k = struct.unpack_from("<IB", view, 4)
        pos = 9
        names = []
        for _ in range(k):
            (length,) = struct.unpack_from("<B", view, pos)
            names.append(bytes(view[pos + 1 : pos + 1 + length]).decode("ascii"))
            pos += 1 + length
        ids = list(struct.unpack_from(f"<{n}I", view, pos))
        pos += 4 * n
        lengths = struct.unpack_from(f"<{n}H", view, pos)
        pos += 2 * n
        texts = []
        for length in lengths:
            texts.append(bytes(view[pos : pos + length]).decode("utf-8", "replace"))
            pos += length
        stats = {}
        for name in names:
            stats[name] = list(struct.unpack_from(f"<{n}e", view, pos))
            pos += 2 * n
    except (struct.error, UnicodeDecodeError) as exc:
        raise TokenStatsError(f"damaged token stats: {exc}") from None
    if pos != len(view):
        raise TokenStatsError(f"damaged token stats: {len(view) - pos} bytes past the end")
    return TokenStats(ids, texts, stats)
