"""Exponential moving average for curves, the way TensorBoard smooths: debiased, NaN-skipping, and
incremental, so a live curve of 100,000 points costs only its new points per frame.

``weight`` is in [0, 1): 0 shows the raw values, 0.9 averages over roughly the last ten points.
"""

from __future__ import annotations

import math

import numpy as np

from studio.state.series import Series

# Within one chunk the closed form multiplies by weight**-k; keep that factor below 1e8 so float64
# keeps about eight significant digits (far finer than a pixel).
_MAX_GROWTH = math.log(1e8)


def ema(values: np.ndarray, weight: float, acc: float = 0.0, count: int = 0) -> tuple[np.ndarray, float, int]:
    """Smooth ``values`` continuing from accumulator ``acc`` after ``count`` finite points.

    Returns (smoothed values aligned with ``values``, NaN where the input is NaN; new acc; new count).
    """
    out = np.full(values.shape[0], np.nan)
    finite = np.isfinite(values)
    v = values[finite]
    m = v.shape[0]
    if m == 0:
        return out, acc, count
    if weight <= 0.0:
        out[finite] = v
        return out, float(v[-1]), count + m
    chunk = max(1, min(4096, int(_MAX_GROWTH / -math.log(weight))))
    smoothed = np.empty(m)
    for start in range(0, m, chunk):
        part = v[start : start + chunk]
        j = np.arange(part.shape[0], dtype=np.float64)
        powers = weight**j  # w^j
        sums = np.cumsum(part / powers)  # sum_k v_k w^-k
        run = weight * powers * acc + (1.0 - weight) * powers * sums
        smoothed[start : start + part.shape[0]] = run
        acc = float(run[-1])
    debias = 1.0 - weight ** (count + 1 + np.arange(m, dtype=np.float64))
    out[finite] = smoothed / debias
    return out, acc, count + m


class SmoothedView:
    """The smoothed copy of one Series, brought up to date incrementally."""

    __slots__ = ("_acc", "_buf", "_count", "_done", "_generation", "_version", "_weight", "series")

    def __init__(self, series: Series) -> None:
        self.series = series
        self._buf = np.empty(0)
        self._weight = -1.0
        self._generation = -1
        self._version = -1
        self._done = 0
        self._acc = 0.0
        self._count = 0

    def values(self, weight: float) -> np.ndarray:
        s = self.series
        if weight != self._weight or s.generation != self._generation or s.n < self._done:
            self._weight, self._generation = weight, s.generation
            self._done, self._acc, self._count = 0, 0.0, 0
        if s.n > self._done:
            if self._buf.shape[0] < s.n:
                grown = np.empty(max(s.n, 2 * self._buf.shape[0], 256))
                grown[: self._done] = self._buf[: self._done]
                self._buf = grown
            new, self._acc, self._count = ema(s.y[self._done :], weight, self._acc, self._count)
            self._buf[self._done : s.n] = new
            self._done = s.n
        self._version = s.version
        return self._buf[: s.n]
