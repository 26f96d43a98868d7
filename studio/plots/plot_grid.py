"""The dashboard's grid of live plots for the runs on screen, refreshed on a 15 Hz timer.

Series change whenever rows arrive; the plots look at them only on the timer tick, so a burst of
events costs one redraw. Curves are created once per (run, key) and updated with setData.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from studio.plots import palette
from studio.plots.metric_plot import MetricPlot, PlotSpec
from studio.state.series import Series
from studio.state.studio_state import StudioState

pg.setConfigOptions(background="w", foreground="#4a5568", antialias=False, useNumba=False)

REFRESH_HZ = 15
COLUMNS = 3

SPECS: tuple[PlotSpec, ...] = (
    PlotSpec("reward", "Reward (mean ± std)", r"reward", band_std_key="reward_std"),
    # rewards/total/mean repeats `reward` (the rubric's total is one reward function to TRL)
    PlotSpec("criteria", "Reward by criterion", r"rewards/(?!total/)(.+)/mean"),
    PlotSpec(
        "eval",
        "Held-out eval",
        r"eval/(.+)/mean",
        smooth=False,
        symbols=True,
        empty_hint="Held-out evaluation appears after the first eval.",
    ),
    PlotSpec(
        "pass_at_k",
        "Held-out pass@k, mean@n",
        r"eval/((?:greedy_)?pass@\d+|mean@\d+)",
        smooth=False,
        symbols=True,
        empty_hint="pass@k appears after the first held-out evaluation ([eval] in the run config).",
    ),
    PlotSpec(
        "pass_by_tier",
        "Held-out pass@k by tier",
        r"eval/((?:(?:greedy_)?pass@\d+|mean@\d+)/(?:tier|difficulty)=.+)",
        smooth=False,
        symbols=True,
        empty_hint="Per-tier figures appear when the held-out set has a tier or difficulty column.",
    ),
    PlotSpec("kl", "KL to the reference", r"kl", empty_hint="KL is logged when beta > 0."),
    PlotSpec("loss", "Loss", r"loss"),
    PlotSpec("entropy", "Entropy", r"entropy"),
    PlotSpec("length", "Completion length (tokens)", r"completions/mean_length"),
    PlotSpec("zero_std", "Zero-std groups (fraction)", r"frac_reward_zero_std"),
    PlotSpec("grad_norm", "Grad norm", r"grad_norm"),
)
AGENT_SPECS: tuple[PlotSpec, ...] = (
    # engine/envs/metrics.py logs these per step for a run with an [environment]
    PlotSpec(
        "agent_rates",
        "Agent: success and failure rates",
        r"agent/(success_rate|invalid_call_rate|tool_error_rate|loop_rate|max_turns_rate)",
        y_range=(0.0, 1.0),
    ),
    PlotSpec("agent_calls", "Agent: turns and tool calls per rollout", r"agent/(turns_mean|calls/.+)"),
    # the held-out evaluation's success per value of the tasks' `tier` column (and `all`)
    PlotSpec(
        "eval_success",
        "Held-out success by tier",
        r"eval/success/(.+)",
        smooth=False,
        symbols=True,
        y_range=(0.0, 1.0),
        empty_hint="Held-out success appears after the first eval.",
    ),
)
"""A fourth row of plots, shown while a run on screen logs agent metrics."""
PPO_SPECS: tuple[PlotSpec, ...] = (
    # engine/algos/ppo.py logs these per step; GRPO logs none of them
    PlotSpec("ppo_losses", "PPO: policy and value loss", r"ppo/(policy_loss|value_loss)"),
    PlotSpec("ppo_value", "PPO: value and return (mean per token)", r"ppo/(value_mean|return_mean)"),
    PlotSpec("ppo_explained_variance", "PPO: explained variance of the returns", r"ppo/(explained_variance)"),
    PlotSpec("ppo_approx_kl", "PPO: approx. KL of an update", r"ppo/(approx_kl)"),
    PlotSpec(
        "ppo_clip", "PPO: clip fractions", r"ppo/(clip_fraction|value_clip_fraction)", y_range=(0.0, 1.0)
    ),
    PlotSpec("ppo_kl_coef", "PPO: KL coefficient", r"ppo/(kl_coef)"),
)
"""Rows of PPO's own curves, shown while a PPO run is on screen (under the agent row if both are)."""
_BAND_KEYS = {s.band_std_key for s in SPECS if s.band_std_key}


def plotted_key(key: str) -> bool:
    """Whether the dashboard draws this metric key (the rest is only exported)."""
    return key in _BAND_KEYS or any(
        spec.match(key) is not None for spec in (*SPECS, *AGENT_SPECS, *PPO_SPECS)
    )


class PlotGrid(QWidget):
    sig_hover = Signal(object)
    """The step under the mouse (float), or None when it left the plots."""

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.weight = 0.6
        self.run_ids: list[int] = []
        self.view = pg.GraphicsLayoutWidget()
        self.view.ci.setContentsMargins(4, 4, 4, 4)
        self.view.ci.setSpacing(2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.plots: list[MetricPlot] = []
        first: pg.PlotItem | None = None
        for i, spec in enumerate(SPECS):
            item = self.view.addPlot(row=i // COLUMNS, col=i % COLUMNS)
            if first is None:
                first = item
            else:
                item.setXLink(first)
            if i // COLUMNS == (len(SPECS) - 1) // COLUMNS:
                item.setLabel("bottom", "step")
            self.plots.append(MetricPlot(spec, item))
        # built now, laid out under the common rows only while a run on screen logs their keys
        self.agent_plots = self._optional_plots(AGENT_SPECS, first)
        self.ppo_plots = self._optional_plots(PPO_SPECS, first)
        self.sections = {"agent": self.agent_plots, "ppo": self.ppo_plots}
        self.sections_shown: set[str] = set()
        for col in range(COLUMNS):  # equal columns, whatever the titles' lengths
            self.view.ci.layout.setColumnStretchFactor(col, 1)
            self.view.ci.layout.setColumnPreferredWidth(col, 10)
        self._label_index: dict[tuple[str, str], int] = {}
        # The x axes are linked. Until the user zooms or pans, they span every plot's steps (an eval at
        # step 0 included), which the first plot's own autorange would not.
        self._auto_x = True
        self._x_extent: tuple[float, float] | None = None
        for plot in self.plots:
            plot.plot.getViewBox().sigRangeChangedManually.connect(self._user_moved)
        self._hover_proxy = pg.SignalProxy(self.view.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse)
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / REFRESH_HZ))
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        state.metrics.sig_run_loaded.connect(self._on_run_loaded)
        state.metrics.sig_keys_added.connect(self._on_keys_added)
        state.sig_workspace_changed.connect(lambda: self.set_runs([]))

    # ---- runs -----------------------------------------------------------------------------------------
    def set_runs(self, run_ids: list[int], background: bool = True) -> None:
        """Show these runs' curves (the first is the current run)."""
        self._x_extent = None  # fit tightly to what is shown now
        restyle = len(run_ids) != len(self.run_ids) and (len(run_ids) > 1) != (len(self.run_ids) > 1)
        for run_id in self.run_ids:
            if run_id not in run_ids or restyle:
                self._remove_run(run_id)
        previous = [] if restyle else self.run_ids
        self.run_ids = list(run_ids)
        for run_id in run_ids:
            if run_id not in previous:
                self.state.load_metrics(run_id, background=background)
                self._add_run(run_id)
        self._lay_out_sections()
        self.refresh()

    def _optional_plots(self, specs: tuple[PlotSpec, ...], first: pg.PlotItem | None) -> list[MetricPlot]:
        plots = []
        for spec in specs:
            item = pg.PlotItem()
            item.setXLink(first)
            plots.append(MetricPlot(spec, item))
        self.plots += plots
        return plots

    @property
    def agent_shown(self) -> bool:
        return "agent" in self.sections_shown

    @property
    def ppo_shown(self) -> bool:
        return "ppo" in self.sections_shown

    def _lay_out_sections(self) -> None:
        """Lay out the agent row and the PPO rows under the common ones, each only while it has curves
        (only agent runs log agent keys, only PPO runs ppo/ keys); take out the ones that have none."""
        shown = {name for name, plots in self.sections.items() if any(p.curves for p in plots)}
        if shown == self.sections_shown:
            return
        for name in self.sections_shown:
            for plot in self.sections[name]:
                self.view.ci.removeItem(plot.plot)
        self.sections_shown = shown
        row = (len(SPECS) - 1) // COLUMNS + 1
        for name, plots in self.sections.items():
            if name not in shown:
                continue
            for i, plot in enumerate(plots):
                self.view.addItem(plot.plot, row=row + i // COLUMNS, col=i % COLUMNS)
                plot.plot.setLabel("bottom", "step")
            row += (len(plots) - 1) // COLUMNS + 1

    def _remove_run(self, run_id: int) -> None:
        for plot in self.plots:
            plot.remove_run(run_id)

    def _add_run(self, run_id: int, keys: list[str] | None = None) -> None:
        rm = self.state.metrics.get(run_id)
        if rm is None or run_id not in self.run_ids:
            return
        compare = len(self.run_ids) > 1
        run_pos = self.run_ids.index(run_id)
        run_label = f"#{run_id}"
        for key in keys if keys is not None else list(rm.series):
            series = rm.series[key]
            for plot in self.plots:
                label = plot.spec.match(key)
                if label is None:
                    continue
                idx = self._label_index.setdefault(
                    (plot.spec.name, label), sum(1 for k in self._label_index if k[0] == plot.spec.name)
                )
                if compare:
                    color, style = palette.color(run_pos), palette.dash(idx)
                    name = f"{run_label} {label}".strip()
                else:
                    color, style = palette.color(idx), palette.dash(0)
                    name = label or run_label
                band = None
                if plot.spec.band_std_key:
                    band = rm.series.get(plot.spec.band_std_key)
                    if band is None:  # mean and std arrive together; make the slot the std will fill
                        band = rm.series[plot.spec.band_std_key] = Series()
                plot.add_curve(run_id, key, series, name, color, style, band_series=band)
        self._lay_out_sections()

    def _on_run_loaded(self, run_id: int) -> None:
        if run_id in self.run_ids:
            self._remove_run(run_id)
            self._add_run(run_id)

    def _on_keys_added(self, run_id: int, keys: list[str]) -> None:
        if run_id in self.run_ids:
            self._add_run(run_id, keys)

    # ---- drawing --------------------------------------------------------------------------------------
    def set_smoothing(self, weight: float) -> None:
        self.weight = min(max(weight, 0.0), 0.999)
        self.refresh()

    def _tick(self) -> None:
        if self.isVisible():
            self.refresh()

    def refresh(self) -> int:
        """Push changed series to their curves. Returns how many curves were updated."""
        if self._auto_x:
            self._fit_x()  # before setData: the curves then clip and downsample once, to the final range
        return sum(plot.refresh(self.weight) for plot in self.plots)

    def _fit_x(self) -> None:
        lo, hi = float("inf"), float("-inf")
        for plot in self.plots:
            for curve in plot.curves.values():
                if curve.series.n:
                    lo, hi = min(lo, curve.series.x[0]), max(hi, curve.series.x[-1])
        if lo > hi or (lo, hi) == self._x_extent:
            return
        first = self._x_extent is None
        self._x_extent = (lo, hi)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        vb = self.plots[0].plot.getViewBox()
        (r0, r1) = vb.viewRange()[0]
        if not first and r0 <= lo and hi <= r1:
            return  # still inside: leave the axes alone (a range change redraws every axis and curve)
        # A live run grows to the right: leave headroom so the range changes once per ~10% of steps.
        headroom = 0.0 if first else 0.1 * (hi - lo)
        vb.setXRange(lo, hi + headroom, padding=0.02)

    def _user_moved(self, *_: object) -> None:
        self._auto_x = False

    def fit(self) -> None:
        """Back to following the data on both axes (after a zoom or pan)."""
        self._auto_x, self._x_extent = True, None
        for plot in self.plots:
            plot.plot.getViewBox().enableAutoRange(y=True)
        self.refresh()
        self._fit_x()

    def curve_count(self) -> int:
        return sum(len(p.curves) for p in self.plots)

    def point_count(self, run_id: int) -> int:
        rm = self.state.metrics.get(run_id)
        return 0 if rm is None else sum(s.n for s in rm.series.values())

    # ---- hover ----------------------------------------------------------------------------------------
    def _on_mouse(self, args: tuple[object, ...]) -> None:
        pos = args[0]
        step = None
        for plot in self.plots:
            vb = plot.plot.getViewBox()
            if vb.sceneBoundingRect().contains(pos):  # type: ignore[arg-type]
                step = float(vb.mapSceneToView(pos).x())  # type: ignore[arg-type]
                break
        self.show_step(step)

    def show_step(self, step: float | None) -> None:
        labels = {run_id: f"#{run_id}" for run_id in self.run_ids}
        for plot in self.plots:
            plot.show_cursor(step, labels)
        self.sig_hover.emit(step)

    def leaveEvent(self, event: object) -> None:
        self.show_step(None)

    # ---- export ---------------------------------------------------------------------------------------
    def export_png(self, path: str | Path) -> bool:
        self.refresh()
        return self.view.grab().save(str(path), "PNG")
