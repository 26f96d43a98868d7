"""Growable numpy series for live curves: appends are amortised O(1) (capacity doubles when full)."""

from __future__ import annotations

import numpy as np

_MIN_CAPACITY = 256


class Series:
    """One metric of one run: (step, value) points in step order, NaN where the value is missing.

    ``version`` increases on every change, so a view can skip unchanged series. ``n_base`` counts the
    points that came from a bulk load (an overview or the full history); points appended after it came
    live, so a later bulk load can replace the base and keep the live tail (see ``rebase``).
    """

    __slots__ = ("_x", "_y", "generation", "n", "n_base", "version")

    def __init__(self, capacity: int = _MIN_CAPACITY) -> None:
        self._x = np.empty(max(capacity, _MIN_CAPACITY), dtype=np.float64)
        self._y = np.empty_like(self._x)
        self.n = 0
        self.n_base = 0
        self.version = 0
        self.generation = 0  # bumps when points are rewritten, not appended: derived caches restart

    def __len__(self) -> int:
        return self.n

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.n]

    def _reserve(self, total: int) -> None:
        if total <= self._x.shape[0]:
            return
        capacity = self._x.shape[0]
        while capacity < total:
            capacity *= 2
        for name in ("_x", "_y"):
            old = getattr(self, name)
            new = np.empty(capacity, dtype=np.float64)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def append(self, xs: np.ndarray | list[float], ys: np.ndarray | list[float]) -> None:
        xs = np.asarray(xs, dtype=np.float64)
        ys = _clean(np.asarray(ys, dtype=np.float64))
        k = xs.shape[0]
        if k == 0:
            return
        if (self.n and xs[0] < self._x[self.n - 1]) or (k > 1 and np.any(np.diff(xs) < 0)):
            # Out of order (rare: a late eval row). Merge, keeping step order stable.
            x = np.concatenate([self.x, xs])
            y = np.concatenate([self.y, ys])
            order = np.argsort(x, kind="stable")
            self._set(x[order], y[order], n_base=self.n_base)
            return
        self._reserve(self.n + k)
        self._x[self.n : self.n + k] = xs
        self._y[self.n : self.n + k] = ys
        self.n += k
        self.version += 1

    def rebase(self, xs: np.ndarray, ys: np.ndarray) -> None:
        """Replace the bulk-loaded points with ``xs, ys``; keep the points that arrived live since."""
        tail_x = self._x[self.n_base : self.n].copy()
        tail_y = self._y[self.n_base : self.n].copy()
        xs = np.asarray(xs, dtype=np.float64)
        self._set(xs, _clean(np.asarray(ys, dtype=np.float64)), n_base=xs.shape[0])
        if tail_x.shape[0]:
            keep = tail_x > (xs[-1] if xs.shape[0] else -np.inf)
            self.append(tail_x[keep], tail_y[keep])

    def _set(self, xs: np.ndarray, ys: np.ndarray, n_base: int) -> None:
        self._reserve(xs.shape[0])
        self._x[: xs.shape[0]] = xs
        self._y[: ys.shape[0]] = ys
        self.n = xs.shape[0]
        self.n_base = n_base
        self.version += 1
        self.generation += 1

    def value_at(self, step: float) -> tuple[float, float] | None:
        """The point nearest to ``step`` (for the hover readout), or None when empty."""
        if not self.n:
            return None
        x = self.x
        i = int(np.searchsorted(x, step))
        if i >= self.n or (i > 0 and step - x[i - 1] <= x[i] - step):
            i -= 1
        return float(x[i]), float(self._y[i])

    def last(self) -> float | None:
        """The newest finite value."""
        y = self.y
        finite = np.flatnonzero(np.isfinite(y))
        return float(y[finite[-1]]) if finite.shape[0] else None


def _clean(y: np.ndarray) -> np.ndarray:
    """NaN for anything non-finite: SQLite stores NaN as NULL and an infinity breaks autoscale."""
    if not np.all(np.isfinite(y)):
        y = np.where(np.isfinite(y), y, np.nan)
    return y
