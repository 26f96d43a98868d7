"""The plot grid on real workspaces: curves created once, live updates, comparison, NaN, hover, export."""

from __future__ import annotations

import csv

import numpy as np
from helpers import add_metrics, add_run

from studio.plots.plot_grid import SPECS, PlotGrid
from studio.state.export import export_metrics_csv
from studio.state.studio_state import StudioState


def _grid(qtbot, state: StudioState) -> PlotGrid:
    from studio.plots.plot_grid import plotted_key

    state.metrics.key_filter = plotted_key
    grid = PlotGrid(state)
    qtbot.addWidget(grid)
    grid.resize(1000, 700)
    grid.show()
    return grid


def _curve(grid: PlotGrid, plot: str, run_id: int, key: str):  # type: ignore[no-untyped-def]
    p = next(p for p in grid.plots if p.spec.name == plot)
    return p.curves[(run_id, key)]


def test_one_run_draws_every_plot_once(qtbot, state: StudioState, ws_path) -> None:
    run_id = add_run(ws_path, steps=40)
    grid = _grid(qtbot, state)
    grid.set_runs([run_id])
    names = {
        p.spec.name: sorted(label for (_r, _k), label in ((k, c.label) for k, c in p.curves.items()))
        for p in grid.plots
    }
    assert names["reward"] == [""] or names["reward"] == [f"#{run_id}"]
    assert names["criteria"] == ["correct", "format"]
    for plot in ("kl", "loss", "entropy", "length", "zero_std", "grad_norm"):
        assert len(names[plot]) == 1, plot
    reward = _curve(grid, "reward", run_id, "reward")
    assert reward.band is not None
    x, y = reward.line.getOriginalDataset()
    assert len(x) == 40 and np.isfinite(y).all()
    item_ids = {id(c.line) for p in grid.plots for c in p.curves.values()}
    grid.set_runs([run_id])
    assert item_ids == {id(c.line) for p in grid.plots for c in p.curves.values()}, "curves are created once"


def test_live_points_reach_the_curves_on_the_next_tick(qtbot, state: StudioState, ws_path) -> None:
    run_id = add_run(ws_path, steps=10, max_steps=100, status="running")
    grid = _grid(qtbot, state)
    state.refresh()
    grid.set_runs([run_id])
    reward = _curve(grid, "reward", run_id, "reward")
    add_metrics(ws_path, run_id, range(11, 31))
    qtbot.waitUntil(lambda: len(reward.line.getOriginalDataset()[0]) == 30, timeout=5_000)
    kl = _curve(grid, "kl", run_id, "kl")
    assert len(kl.line.getOriginalDataset()[0]) == 30


def test_eval_keys_appear_when_the_first_evaluation_lands(qtbot, state: StudioState, ws_path) -> None:
    from engine.contract import schema

    run_id = add_run(ws_path, steps=5, status="running")
    grid = _grid(qtbot, state)
    state.refresh()
    grid.set_runs([run_id])
    eval_plot = next(p for p in grid.plots if p.spec.name == "eval")
    assert not eval_plot.curves
    conn = schema.connect(str(ws_path))
    with conn:
        conn.executemany(
            "INSERT INTO metrics(run_id, step, key, value, time) VALUES (?, 5, ?, ?, 0)",
            [(run_id, "eval/reward/mean", 0.5), (run_id, "eval/correct/mean", 0.4)],
        )
    conn.close()
    qtbot.waitUntil(lambda: len(eval_plot.curves) == 2, timeout=5_000)
    assert sorted(c.label for c in eval_plot.curves.values()) == ["correct", "reward"]


def test_comparison_colours_by_run_and_smoothing_keeps_raw_underneath(qtbot, state, ws_path) -> None:
    a, b = add_run(ws_path, steps=30), add_run(ws_path, steps=50)
    grid = _grid(qtbot, state)
    grid.set_runs([a, b])
    ra, rb = _curve(grid, "reward", a, "reward"), _curve(grid, "reward", b, "reward")
    assert ra.line.opts["pen"].color() != rb.line.opts["pen"].color()
    assert (
        ra.label == f"#{a}" and _curve(grid, "criteria", b, "rewards/correct/mean").label == f"#{b} correct"
    )
    grid.set_smoothing(0.9)
    assert ra.raw.isVisible()
    raw_y = ra.raw.getOriginalDataset()[1]
    smooth_y = ra.line.getOriginalDataset()[1]
    assert np.std(np.diff(smooth_y)) < np.std(np.diff(raw_y))
    grid.set_smoothing(0.0)
    assert not ra.raw.isVisible()
    grid.set_runs([b])
    assert (a, "reward") not in next(p for p in grid.plots if p.spec.name == "reward").curves


def test_nan_values_and_hover_readout(qtbot, state: StudioState, ws_path) -> None:
    run_id = add_run(ws_path, steps=6)  # step 2 of frac_reward_zero_std is NULL
    grid = _grid(qtbot, state)
    grid.set_runs([run_id])
    grid.set_smoothing(0.5)
    zero = _curve(grid, "zero_std", run_id, "frac_reward_zero_std")
    assert np.isnan(zero.line.getOriginalDataset()[1][1])
    grid.show_step(4.2)
    reward_plot = next(p for p in grid.plots if p.spec.name == "reward")
    title = reward_plot.plot.titleLabel.text
    assert "step 4" in title and "±" in title
    assert reward_plot.cursor.isVisible() and reward_plot.cursor.value() == 4.2
    grid.show_step(None)
    assert not reward_plot.cursor.isVisible()


def test_export_png_and_csv(qtbot, state: StudioState, ws_path, tmp_path) -> None:
    a, b = add_run(ws_path, name="alpha", steps=12), add_run(ws_path, name="beta", steps=7)
    grid = _grid(qtbot, state)
    grid.set_runs([a, b])
    png = tmp_path / "plots.png"
    assert grid.export_png(png) and png.stat().st_size > 5_000
    path = tmp_path / "metrics.csv"
    assert state.db is not None
    assert export_metrics_csv(state.db, [a, b], path) == 19
    rows = list(csv.DictReader(path.open()))
    assert rows[0]["run_name"] == "alpha" and rows[0]["step"] == "1" and rows[-1]["run_name"] == "beta"
    assert float(rows[0]["reward"]) > 0 and rows[1]["frac_reward_zero_std"] == ""


def test_specs_cover_the_metrics_issue_4_names() -> None:
    keys = [
        "reward",
        "rewards/correct/mean",
        "eval/reward/mean",
        "eval/correct/mean",
        "kl",
        "loss",
        "entropy",
        "completions/mean_length",
        "frac_reward_zero_std",
    ]
    for key in keys:
        assert any(spec.match(key) is not None for spec in SPECS), key
