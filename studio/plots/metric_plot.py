"""One plot of the dashboard: a PlotItem whose curves are created once and updated with setData.

A curve is one (run, key) pair. Smoothing draws the raw values faintly under the smoothed ones; the
total reward also gets a mean ± std band. Every item downsamples to the pixels on screen (peak mode,
so spikes survive) and clips to the visible range, which keeps 100,000-point curves cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsItem

from studio.plots.decimate import Decimator
from studio.plots.smoothing import SmoothedView
from studio.state.series import Series


@dataclass(frozen=True)
class PlotSpec:
    """What one plot shows: keys matched by ``pattern`` (the first group, if any, names the curve)."""

    name: str
    title: str
    pattern: str
    band_std_key: str | None = None
    smooth: bool = True
    symbols: bool = False
    y_range: tuple[float, float] | None = None
    empty_hint: str = "Not logged by this run yet."

    def match(self, key: str) -> str | None:
        """The curve label for ``key``, or None when this plot does not show it."""
        m = re.fullmatch(self.pattern, key)
        if m is None:
            return None
        return m.group(1) if m.groups() else ""


@dataclass
class Curve:
    series: Series
    smoothed: SmoothedView
    raw: pg.PlotDataItem
    line: pg.PlotDataItem
    label: str
    band: tuple[pg.PlotDataItem, pg.PlotDataItem, pg.FillBetweenItem, Series, SmoothedView] | None = None
    drawn: tuple[int, int, float] = (-1, -1, -1.0)
    lod: dict[str, Decimator] = field(
        default_factory=lambda: {k: Decimator() for k in ("line", "raw", "lo", "hi")}
    )


_DASH_GLYPHS = {
    Qt.PenStyle.SolidLine: "—",
    Qt.PenStyle.DashLine: "╌",
    Qt.PenStyle.DotLine: "⋯",
    Qt.PenStyle.DashDotLine: "-·",
}


def _height_only_minimum(label: pg.LabelItem) -> None:
    height = label.itemRect().height()
    label.setMinimumWidth(0)
    label.setMinimumHeight(height)
    label._sizeHint = {
        Qt.SizeHint.MinimumSize: (0, height),
        Qt.SizeHint.PreferredSize: (0, height),
        Qt.SizeHint.MaximumSize: (-1, -1),
        Qt.SizeHint.MinimumDescent: (0, 0),
    }
    label.updateGeometry()


def _configure(item: pg.PlotDataItem) -> None:
    item.setDownsampling(auto=True, method="peak")
    item.setClipToView(True)


class MetricPlot:
    """Curves for one PlotSpec inside a PlotItem that the grid owns."""

    def __init__(self, spec: PlotSpec, plot: pg.PlotItem) -> None:
        self.spec = spec
        self.plot = plot
        self.curves: dict[tuple[int, str], Curve] = {}
        # The PlotItem imposes its own modes on every item it adds (PlotItem.addItem), so set them here.
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)
        plot.showGrid(x=True, y=True, alpha=0.15)
        # Axes and titles are repainted whenever any curve of the grid changes (the dirty region spans
        # the whole view); caching them as pixmaps makes that a blit unless they changed themselves.
        for name in ("left", "bottom"):
            plot.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        plot.titleLabel.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        # A long title (a legend, a hover readout) must not widen its column: LabelItem asks for its
        # text's width as a minimum after every change; ask for its height only, and clip the text.
        plot.titleLabel.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape)
        plot.titleLabel.updateMin = lambda label=plot.titleLabel: _height_only_minimum(label)
        plot.setMenuEnabled(True)
        plot.hideButtons()
        if spec.y_range is not None:
            plot.setYRange(*spec.y_range, padding=0.02)
        self.cursor = pg.InfiniteLine(
            angle=90, movable=False, pen=pg.mkPen("#888888", width=1, style=Qt.PenStyle.DashLine)
        )
        self.cursor.setVisible(False)
        plot.addItem(self.cursor, ignoreBounds=True)
        # The hint lives in the view box's pixel space, not in data space: it never moves the axes.
        self.hint = pg.TextItem(spec.empty_hint, color="#a0aec0", anchor=(0.5, 0.5))
        self.hint.setParentItem(plot.getViewBox())
        plot.getViewBox().sigResized.connect(self._center_hint)
        # The level of detail depends on the visible range and size: pick it again when they change.
        plot.getViewBox().sigXRangeChanged.connect(self.invalidate)
        plot.getViewBox().sigResized.connect(self.invalidate)
        self._center_hint()
        self._title_plain = spec.title
        self.set_title(spec.title)

    def _center_hint(self, *_: object) -> None:
        self.hint.setPos(self.plot.getViewBox().rect().center())

    def _update_title(self) -> None:
        """The title names the curves in their colours when there are several (a legend inside the
        plot would cover the data)."""
        title = self.spec.title
        if len(self.curves) > 1:
            # One swatch per colour. In a comparison the colour is the run and the criteria of a run
            # differ by dash, so the title names the runs, then the criteria with their dash.
            swatches: dict[str, str] = {}
            dashes: dict[str, str] = {}
            for c in self.curves.values():
                color = c.line.opts["pen"].color().name()
                run, _, criterion = c.label.partition(" ") if c.label.startswith("#") else ("", "", "")
                swatches.setdefault(color, run or c.label)
                if criterion:
                    dashes.setdefault(criterion, _DASH_GLYPHS.get(c.line.opts["pen"].style(), "—"))
            parts = [f"<span style='color:{color}'>■ {name}</span>" for color, name in swatches.items()]
            parts += [f"<span style='color:#4a5568'>{glyph} {name}</span>" for name, glyph in dashes.items()]
            title += "&nbsp;&nbsp; " + "&nbsp; ".join(parts)
        self._title_plain = title
        self.set_title(title)

    def set_title(self, html: str) -> None:
        self.plot.setTitle(html, size="9pt", color="#2d3748", justify="left")

    # ---- curves --------------------------------------------------------------------------------------
    def add_curve(
        self,
        run_id: int,
        key: str,
        series: Series,
        label: str,
        color: str,
        style: object,
        band_series: Series | None = None,
    ) -> Curve:
        existing = self.curves.get((run_id, key))
        if existing is not None:
            return existing
        qcolor = QColor(color)
        faint = QColor(qcolor)
        faint.setAlpha(70)
        raw = pg.PlotDataItem(pen=pg.mkPen(faint, width=1), connect="finite")
        # Whole-pixel widths: the raster engine strokes fractional widths several times slower.
        pen = pg.mkPen(qcolor, width=2 if self.spec.band_std_key else 1, style=style)
        if self.spec.symbols:
            line = pg.PlotDataItem(
                pen=pen,
                symbol="o",
                symbolSize=5,
                symbolBrush=qcolor,
                symbolPen=None,
                connect="finite",
                name=label,
            )
        else:
            line = pg.PlotDataItem(pen=pen, connect="finite", name=label)
        for item in (raw, line):
            _configure(item)
        raw.setVisible(False)
        self.plot.addItem(raw)
        self.plot.addItem(line)
        curve = Curve(series, SmoothedView(series), raw, line, label)
        if band_series is not None:
            band_color = QColor(qcolor)
            band_color.setAlpha(45)
            edge = pg.mkPen(
                QColor(0, 0, 0, 0)
            )  # cosmetic: a plain QPen is 1 data unit wide and pads the axes
            lo, hi = pg.PlotDataItem(pen=edge, connect="finite"), pg.PlotDataItem(pen=edge, connect="finite")
            for item in (lo, hi):
                _configure(item)
                self.plot.addItem(item)
            # Fill between the items' drawn curves: they are already clipped and downsampled.
            fill = pg.FillBetweenItem(lo.curve, hi.curve, brush=band_color)
            # lo and hi always change together (lo first): rebuild the fill path once, when hi changes.
            lo.curve.sigPlotChanged.disconnect(fill.curveChanged)
            self.plot.addItem(fill, ignoreBounds=True)  # lo and hi carry the bounds; a path item pads them
            curve.band = (lo, hi, fill, band_series, SmoothedView(band_series))
        self.curves[(run_id, key)] = curve
        self._update_title()
        self.hint.setVisible(False)
        return curve

    def remove_run(self, run_id: int) -> None:
        for key in [k for k in self.curves if k[0] == run_id]:
            curve = self.curves.pop(key)
            items: list[pg.GraphicsObject] = [curve.raw, curve.line]
            if curve.band is not None:
                items += list(curve.band[:3])
            for item in items:
                self.plot.removeItem(item)
        self._update_title()
        self.hint.setVisible(not self.curves)

    def clear(self) -> None:
        for run_id in {k[0] for k in self.curves}:
            self.remove_run(run_id)

    # ---- updates -------------------------------------------------------------------------------------
    def invalidate(self, *_: object) -> None:
        for curve in self.curves.values():
            curve.drawn = (-1, -1, -1.0)

    def refresh(self, weight: float) -> int:
        """setData on the curves whose series or smoothing changed. Returns how many were updated."""
        if not self.spec.smooth:
            weight = 0.0
        vb = self.plot.getViewBox()
        visible = vb.viewRange()[0]
        pixels = float(vb.width())
        updated = 0
        for curve in self.curves.values():
            s = curve.series
            state = (s.version, s.generation, weight)
            if state == curve.drawn:
                continue
            curve.drawn = state
            updated += 1
            x = s.x
            smooth = curve.smoothed.values(weight) if weight > 0 else s.y
            curve.line.setData(*curve.lod["line"].arrays(x, smooth, visible, pixels, (s.generation, weight)))
            curve.raw.setVisible(weight > 0)
            if weight > 0:
                curve.raw.setData(*curve.lod["raw"].arrays(x, s.y, visible, pixels, (s.generation, "raw")))
            if curve.band is not None:
                self._refresh_band(curve, x, smooth, weight, visible, pixels)
        return updated

    def _refresh_band(
        self,
        curve: Curve,
        x: np.ndarray,
        mean: np.ndarray,
        weight: float,
        visible: tuple[float, float],
        pixels: float,
    ) -> None:
        assert curve.band is not None
        lo, hi, _fill, std_series, std_smoothed = curve.band
        if std_series.n == 0:
            return
        # mean and std are logged at the same steps; align by step in case one has gaps.
        std = std_smoothed.values(weight) if weight > 0 else std_series.y
        if std_series.n != x.shape[0] or std_series.x[-1] != x[-1] or std_series.x[0] != x[0]:
            idx = np.clip(np.searchsorted(std_series.x, x), 0, std_series.n - 1)
            std = np.where(std_series.x[idx] == x, std[idx], np.nan)
        source = (curve.series.generation, std_series.generation, weight)
        lo.setData(*curve.lod["lo"].arrays(x, mean - std, visible, pixels, source))
        hi.setData(*curve.lod["hi"].arrays(x, mean + std, visible, pixels, source))

    # ---- hover readout ---------------------------------------------------------------------------------
    def show_cursor(self, step: float | None, run_labels: dict[int, str]) -> None:
        if step is None:
            self.cursor.setVisible(False)
            self.set_title(self._title_plain)
            return
        self.cursor.setVisible(True)
        self.cursor.setPos(step)
        parts = []
        for (run_id, _key), curve in list(self.curves.items())[:8]:
            found = curve.series.value_at(step)
            if found is None:
                continue
            at, value = found
            text = "nan" if np.isnan(value) else f"{value:.4g}"
            if curve.band is not None:
                sd = curve.band[3].value_at(at)
                if sd is not None and sd[0] == at and np.isfinite(sd[1]):
                    text += f" ± {sd[1]:.3g}"
            name = " ".join(
                p for p in (run_labels.get(run_id, "") if len(run_labels) > 1 else "", curve.label) if p
            )
            color = curve.line.opts["pen"].color().name()
            parts.append(f"<span style='color:{color}'>{name + ' ' if name else ''}{text}</span>")
        readout = f"&nbsp;&nbsp;<span style='color:#718096'>step {step:.0f}</span>&nbsp; " + "&nbsp; ".join(
            parts
        )
        self.set_title(f"{self.spec.title}{readout}")
