"""Series buffers and EMA smoothing: pure numpy, no Qt."""

from __future__ import annotations

import numpy as np
import pytest

from studio.plots.smoothing import SmoothedView, ema
from studio.state.series import Series


def reference_ema(values: np.ndarray, w: float) -> np.ndarray:
    out, acc, n = [], 0.0, 0
    for v in values:
        if not np.isfinite(v):
            out.append(np.nan)
            continue
        acc, n = w * acc + (1 - w) * v, n + 1
        out.append(acc / (1 - w**n))
    return np.array(out)


def test_append_grows_by_doubling_and_keeps_order() -> None:
    s = Series()
    capacities = set()
    for i in range(2000):
        s.append([i], [i * 0.5])
        capacities.add(s._x.shape[0])
    assert len(s) == 2000 and s.x[-1] == 1999 and s.y[-1] == 999.5
    assert capacities == {256, 512, 1024, 2048}
    assert s.version == 2000


def test_non_finite_values_become_nan_and_out_of_order_points_merge() -> None:
    s = Series()
    s.append([1, 2, 4], [1.0, np.inf, 4.0])
    assert np.isnan(s.y[1])
    s.append([3], [3.0])  # a late row
    assert s.x.tolist() == [1, 2, 3, 4]
    assert s.last() == 4.0


def test_rebase_replaces_the_overview_and_keeps_the_live_tail() -> None:
    s = Series()
    s.append([0, 10, 20], [0.0, 1.0, 2.0])  # overview: every 10th step
    s.n_base = s.n
    s.append([31, 32], [3.1, 3.2])  # live rows that arrived while the full history loaded
    full_x = np.arange(31, dtype=float)
    s.rebase(full_x, full_x / 10)
    assert s.n == 33 and s.n_base == 31
    assert s.x[-3:].tolist() == [30, 31, 32]
    assert s.y[-2:].tolist() == [3.1, 3.2]


def test_value_at_picks_the_nearest_point() -> None:
    s = Series()
    assert s.value_at(3) is None
    s.append([0, 10, 20], [0.0, 1.0, 2.0])
    assert s.value_at(4) == (0.0, 0.0)
    assert s.value_at(6) == (10.0, 1.0)
    assert s.value_at(100) == (20.0, 2.0)


@pytest.mark.parametrize("w", [0.0, 0.3, 0.6, 0.9, 0.99, 0.999])
def test_ema_matches_the_definition_and_skips_nan(w: float) -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(size=5000)
    v[::7] = np.nan
    got, _, _ = ema(v, w)
    want = reference_ema(v, w)
    assert np.array_equal(np.isnan(got), np.isnan(v))
    assert np.nanmax(np.abs(got - want)) < 1e-9


def test_smoothed_view_is_incremental_and_restarts_when_points_are_rewritten() -> None:
    rng = np.random.default_rng(2)
    v = rng.normal(size=3000)
    s = Series()
    view = SmoothedView(s)
    for start in range(0, 3000, 250):
        s.append(np.arange(start, start + 250), v[start : start + 250])
        view.values(0.9)
    assert np.allclose(view.values(0.9), reference_ema(v, 0.9))
    assert np.allclose(view.values(0.5), reference_ema(v, 0.5))  # a new weight recomputes
    s.rebase(np.arange(100, dtype=float), np.ones(100))
    assert np.allclose(view.values(0.5)[:100], 1.0)


def test_peak_levels_are_incremental_and_keep_every_spike() -> None:
    from studio.plots.decimate import Decimator, PeakLevel

    rng = np.random.default_rng(3)
    y = rng.normal(size=20_000)
    y[100:140] = np.nan
    y[12_345] = 50.0  # a spike must survive decimation
    x = np.arange(y.shape[0], dtype=float)
    grown = PeakLevel(16)
    for end in (100, 1_000, 1_001, 7_777, 20_000):
        gx, gy = grown.arrays(x[:end], y[:end], "same source")
    fx, fy = PeakLevel(16).arrays(x, y, "other")
    assert np.array_equal(gx, fx) and np.allclose(gy, fy, equal_nan=True)
    assert np.nanmax(fy) == 50.0 and np.nanmin(fy) == np.nanmin(y)
    assert np.isnan(fy[2 * (112 // 16)])  # an all-NaN bucket stays a gap
    d = Decimator()
    assert len(d.arrays(x, y, (0, 20_000), 300, "s")[0]) < 4_000  # zoomed out: a level
    assert len(d.arrays(x, y, (0, 1_000), 300, "s")[0]) == 20_000  # zoomed in: every point
