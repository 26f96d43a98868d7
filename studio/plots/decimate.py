"""Level-of-detail for long curves: min/max per bucket, kept up to date as a series grows.

pyqtgraph's own peak downsampling reads every point of a curve on every setData, which for ten
100,000-point curves costs more than a frame. A zoomed-out view needs no more than a few points per
pixel, so a curve is handed a precomputed level instead: for each bucket of ``size`` points its
maximum and minimum (the same saw wave pyqtgraph's 'peak' mode draws, so spikes survive). Appending
points only completes new buckets: the cost of a frame follows the new points, not the history.
"""

from __future__ import annotations

import numpy as np

LEVELS = (16, 256, 4096)
POINTS_PER_PIXEL = 4


class PeakLevel:
    """Interleaved (max, min) per bucket of ``size`` source points, NaN-safe, append-only."""

    __slots__ = ("_x", "_y", "buckets", "size", "source")

    def __init__(self, size: int) -> None:
        self.size = size
        self.buckets = 0
        self.source: object = None
        self._x = np.empty(0)
        self._y = np.empty(0)

    def reset(self) -> None:
        self.buckets = 0
        self.source = None

    def arrays(self, x: np.ndarray, y: np.ndarray, source: object) -> tuple[np.ndarray, np.ndarray]:
        """The level for ``x, y``. ``source`` names the data: while it stays equal, the arrays must only
        have grown since the last call (old points unchanged), so only new buckets are computed."""
        if self.source != source or self.buckets * self.size > y.shape[0]:
            self.buckets = 0
            self.source = source
        size = self.size
        complete = y.shape[0] // size
        if complete > self.buckets:
            start, stop = self.buckets * size, complete * size
            block = y[start:stop].reshape(-1, size)
            new = complete - self.buckets
            need = 2 * complete
            if self._x.shape[0] < need:
                grow = max(need, 2 * self._x.shape[0], 512)
                self._x = np.resize(self._x, grow)
                self._y = np.resize(self._y, grow)
            a, b = 2 * self.buckets, need
            bx = x[start + size // 2 : stop : size]
            self._x[a:b:2] = bx
            self._x[a + 1 : b : 2] = bx
            with np.errstate(invalid="ignore"):
                self._y[a:b:2] = np.fmax.reduce(block, axis=1)
                self._y[a + 1 : b : 2] = np.fmin.reduce(block, axis=1)
            self.buckets += new
        done = 2 * self.buckets
        tail = slice(self.buckets * size, y.shape[0])
        if tail.start == tail.stop:
            return self._x[:done], self._y[:done]
        ty = y[tail]
        tx = x[tail.start + (tail.stop - tail.start) // 2]
        with np.errstate(invalid="ignore"):
            hi, lo = np.fmax.reduce(ty), np.fmin.reduce(ty)
        return np.append(self._x[:done], (tx, tx)), np.append(self._y[:done], (hi, lo))


class Decimator:
    """Picks the level of detail for the visible range and keeps each level current."""

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels = [PeakLevel(size) for size in LEVELS]

    def reset(self) -> None:
        for level in self.levels:
            level.reset()

    def arrays(
        self, x: np.ndarray, y: np.ndarray, visible: tuple[float, float] | None, pixels: float, source: object
    ) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        if n == 0:
            return x, y
        if visible is None:
            count = n
        else:
            count = int(np.searchsorted(x, visible[1], "right") - np.searchsorted(x, visible[0], "left"))
        budget = max(pixels, 100.0) * POINTS_PER_PIXEL
        if count <= budget:
            return x, y
        chosen = None
        for level in self.levels:
            chosen = level
            if count / level.size <= budget:
                break
        assert chosen is not None
        return chosen.arrays(x, y, source)
