"""Live plot update: 10 curves x 100,000 points, one new point per curve per frame. Goal: <= 16 ms/frame.

    python benchmarks/studio_live_plot.py [--frames 200] [--smoothing 0.6]

Drives the dashboard's own PlotGrid: each frame appends a point to ten series (the way the watcher
does), then runs the timer's refresh (setData on changed curves) and a synchronous repaint of the
plots. Reports the median and 95th percentile frame time. Smoothing on means each curve also draws
its raw values faintly underneath (20 plot items).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

GOAL_MS = 16.0
KEYS = [
    "reward",
    "rewards/correct/mean",
    "rewards/format/mean",
    "rewards/length/mean",
    "kl",
    "loss",
    "entropy",
    "completions/mean_length",
    "frac_reward_zero_std",
    "grad_norm",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--smoothing", type=float, default=None, help="default: measure 0 and 0.6")
    args = parser.parse_args()

    import numpy as np
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from studio.plots.plot_grid import PlotGrid
    from studio.state.metrics import RunMetrics
    from studio.state.series import Series
    from studio.state.studio_state import StudioState

    rng = np.random.default_rng(0)
    state = StudioState(engine_command=["true"])
    rm = RunMetrics(1, complete=True)
    n = args.points
    steps = np.arange(1, n + 1, dtype=float)
    for key in KEYS:
        s = Series(capacity=n + args.frames + 16)
        y = np.cumsum(rng.normal(size=n)) / 100
        y[rng.integers(0, n, 50)] = np.nan  # rewards can be NaN
        s.append(steps, y)
        rm.series[key] = s
    state.metrics.runs[1] = rm
    grid = PlotGrid(state)
    grid.timer.stop()  # we drive the frames
    grid.resize(1100, 750)
    grid.show()
    paints = [0]
    original_paint = grid.view.paintEvent

    def counting_paint(event):  # type: ignore[no-untyped-def]
        paints[0] += 1
        return original_paint(event)

    grid.view.paintEvent = counting_paint  # type: ignore[method-assign]
    grid.run_ids = [1]
    grid._add_run(1)
    next_step = [n]
    print(
        f"curves: {len(KEYS)} series x {n:,} points ({grid.curve_count()} plot curves incl. the reward band's)"
    )
    for weight in [args.smoothing] if args.smoothing is not None else [0.0, 0.6]:
        grid.set_smoothing(weight)
        app.processEvents()
        paints[0] = 0
        times = []
        for _frame in range(args.frames):
            next_step[0] += 1
            step = next_step[0]
            t0 = time.perf_counter()
            for key in KEYS:
                rm.series[key].append([step], [rng.normal()])
            grid.refresh()
            app.processEvents()  # the paint the refresh asked for
            times.append((time.perf_counter() - t0) * 1000)
        painted = paints[0]
        paints[0] = 0
        med = statistics.median(times)
        p95 = sorted(times)[int(0.95 * len(times)) - 1]
        print(
            f"smoothing {weight:.1f}: median {med:.1f} ms/frame, p95 {p95:.1f} ms "
            f"(goal <= {GOAL_MS:.0f} ms: ratio {med / GOAL_MS:.2f} -> {'OK' if med <= GOAL_MS else 'OVER'}); "
            f"{painted} paints in {args.frames} frames"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
