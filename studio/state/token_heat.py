"""Token-level evidence for the inspector's heat map: read a rollout's blob, choose each statistic's colour
scale, and say a token's exact values. No widgets; the format is engine/contract/token_stats.py."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from engine.contract import token_stats as ts
from engine.contract.token_stats import TokenStats, TokenStatsError, unpack

WHITE = (0xFF, 0xFF, 0xFF)
GOOD = (0x68, 0xD3, 0x91)  # green: reinforced, above average
BAD = (0xFC, 0x81, 0x81)  # red: unlikely, pushed down, below average
SEQUENTIAL_END = {
    ts.LOGPROB: BAD,  # white = the policy was sure of the token, red = it sampled an unlikely one
    ts.ENTROPY: (0xB7, 0x94, 0xF4),  # purple: the policy hesitated there
    ts.KL: (0xF6, 0xAD, 0x55),  # orange: the policy moved away from the reference there
}
FLOOR = {ts.LOGPROB: 1.0, ts.ENTROPY: 1.0, ts.KL: 0.01}
"""The least extent of a sequential scale, so a rollout of sure tokens does not paint 0.01 nats red."""

CAPTIONS = {
    ts.LOGPROB: "log p(token) under the policy that sampled it: white = sure, red = unlikely",
    ts.ENTROPY: "entropy of the next-token distribution (nats): white = sure, purple = hesitant",
    ts.LOSS: "share of the policy loss: green = made more likely by the update, red = less likely",
    ts.ADVANTAGE: "advantage: green = better than expected, red = worse",
    ts.KL: "KL against the reference at the token: white = unchanged, orange = moved away",
    ts.VALUE: "the value head's expected return from the token: green = high, red = low",
}


def read_token_stats(conn: sqlite3.Connection, rollout_id: int) -> TokenStats | None:
    """The rollout's token stats; None when it has none (an older workspace, a run recorded without
    them, an agent rollout) or its blob is not readable."""
    try:
        row = conn.execute("SELECT data FROM token_stats WHERE rollout_id = ?", (rollout_id,)).fetchone()
    except sqlite3.OperationalError:  # a workspace from before schema migration 6
        return None
    if row is None:
        return None
    try:
        return unpack(bytes(row[0]))
    except TokenStatsError:
        return None


def available(tokens: TokenStats) -> list[str]:
    """The statistics the blob holds, in the order the studio offers them."""
    known = [name for name in ts.STATS if name in tokens.stats]
    return known + [name for name in tokens.stats if name not in known]


@dataclass(frozen=True)
class Scale:
    stat: str
    lo: float
    hi: float
    diverging: bool

    def color(self, value: float) -> str:
        """The background of a token with `value`, as #rrggbb (light grey when it was not recorded)."""
        if not math.isfinite(value):
            return "#e2e8f0" if math.isnan(value) else _hex(self._end(value > 0))
        if self.diverging:
            extent = max(abs(self.lo), abs(self.hi)) or 1.0
            t = max(-1.0, min(1.0, value / extent))
            return _hex(_mix(WHITE, self._end(t > 0), abs(t)))
        t = (value - self.lo) / ((self.hi - self.lo) or 1.0)
        t = max(0.0, min(1.0, t))
        if self.stat == ts.LOGPROB:
            t = 1.0 - t  # the low end (unlikely) is coloured, 0 (sure) is white
        return _hex(_mix(WHITE, SEQUENTIAL_END.get(self.stat, BAD), t))

    def _end(self, positive: bool) -> tuple[int, int, int]:
        if not self.diverging:
            return SEQUENTIAL_END.get(self.stat, BAD)
        good = not positive if self.stat == ts.LOSS else positive  # a negative loss share is reinforcement
        return GOOD if good else BAD

    def stops(self) -> list[tuple[float, str]]:
        """The legend's colour stops from lo to hi."""
        return [(v, self.color(v)) for v in (self.lo + (self.hi - self.lo) * i / 8 for i in range(9))]


def scale_for(stat: str, values: list[float]) -> Scale:
    """A colour scale for one rollout's values of `stat`: diverging ones symmetric around 0, sequential
    ones from 0 (log-prob: up to 0) to the rollout's extreme, at least FLOOR."""
    finite = [v for v in values if math.isfinite(v)]
    if stat in ts.DIVERGING:
        extent = max((abs(v) for v in finite), default=0.0) or 1.0
        return Scale(stat, -extent, extent, True)
    floor = FLOOR.get(stat, 1.0)
    if stat == ts.LOGPROB:
        return Scale(stat, min(min(finite, default=0.0), -floor), 0.0, False)
    return Scale(stat, 0.0, max(max(finite, default=0.0), floor), False)


def token_tooltip(tokens: TokenStats, index: int) -> str:
    """A token's exact values, every statistic the blob holds."""
    text = tokens.texts[index]
    lines = [f"token {index + 1} of {len(tokens)} · id {tokens.ids[index]} · {text!r}"]
    for name in available(tokens):
        value = tokens.stats[name][index]
        label = ts.LABELS.get(name, name)
        if math.isnan(value):
            lines.append(f"{label}: not recorded")
        elif name == ts.LOGPROB:
            lines.append(f"{label}: {value:.4g} (p = {math.exp(value):.3g})")
        else:
            lines.append(f"{label}: {value:.4g}")
    return "\n".join(lines)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    r, g, bl = (round(a[i] + (b[i] - a[i]) * t) for i in range(3))
    return r, g, bl


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)
