"""Training-time alerts as vertical markers on the dashboard's plots: a line at each alert's step, labelled
with its kind on the first plot (the reward), faint once acknowledged.

The markers live in data space but never move the axes (added with ignoreBounds).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt

from studio.state.alerts import AlertRow

COLORS = {"critical": "#c53030", "warning": "#dd6b20"}
ACKNOWLEDGED = "#a0aec0"


class AlertMarkers:
    """The markers of one run's alerts over a list of PlotItems (the first gets the labels)."""

    def __init__(self, plots: Sequence[pg.PlotItem]) -> None:
        self.plots = list(plots)
        self.lines: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []
        self.shown: list[tuple[int, int, bool]] = []

    def set_alerts(self, alerts: Sequence[AlertRow]) -> None:
        """Show these alerts (an empty list clears the markers). Unchanged alerts are left as they are."""
        wanted = [(a.id, a.step, a.acknowledged) for a in alerts]
        if wanted == self.shown:
            return
        self.clear()
        self.shown = wanted
        labelled_steps: set[int] = set()
        for alert in alerts:
            color = ACKNOWLEDGED if alert.acknowledged else COLORS.get(alert.severity, COLORS["warning"])
            pen = pg.mkPen(color, width=1 if alert.acknowledged else 2, style=Qt.PenStyle.DashLine)
            for i, plot in enumerate(self.plots):
                label = None
                if i == 0 and alert.step not in labelled_steps:  # one label per step: alerts often coincide
                    labelled_steps.add(alert.step)
                    here = [a.title for a in alerts if a.step == alert.step]
                    label = f"⚠ {here[0]}" if len(here) == 1 else f"⚠ {len(here)} alerts"
                line = pg.InfiniteLine(
                    pos=alert.step,
                    angle=90,
                    movable=False,
                    pen=pen,
                    label=label,
                    labelOpts={"position": 0.92, "color": color, "anchors": [(0, 0.5), (0, 0.5)]}
                    if label
                    else None,
                )
                line.setToolTip(f"Step {alert.step}: {alert.title}. {alert.message}")
                line.setZValue(-5)  # under the curves
                plot.addItem(line, ignoreBounds=True)
                self.lines.append((plot, line))

    def clear(self) -> None:
        for plot, line in self.lines:
            plot.removeItem(line)
        self.lines = []
        self.shown = []

    def steps(self) -> list[int]:
        """The steps marked (each once), for tests and the screenshot check."""
        return sorted({int(line.value()) for _plot, line in self.lines})
