"""The inspector's agent tabs, shown for agent runs only: the selected rollout's trajectory (T), its
group's trajectories side by side, and where agents fail; plus the agent filters of the filter bar.

The inspector calls ``set_run`` when it shows a run and ``show_selection`` when the selection or the tab
changes; this object reads what its tabs need (one rollout or one group, by primary key) on the GUI
thread's read-only connection, and counts failures in a background job (agent_failures_view).
"""

from __future__ import annotations

import sqlite3

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QTabWidget

from studio.state import trajectories as tr
from studio.state.rollout_query import RolloutFilter
from studio.widgets.agent_failures_view import FailuresView
from studio.widgets.inspector_filters import FilterBar
from studio.widgets.trajectory_view import GroupTrajectories, TrajectoryView


class AgentTabs(QObject):
    sig_examples = Signal(object)
    """A RolloutFilter picking example rollouts (the inspector shows them in its table)."""

    def __init__(self, tabs: QTabWidget, filters: FilterBar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tabs = tabs
        self.filters = filters
        self.timeline = TrajectoryView()
        self.group = GroupTrajectories()
        self.failures = FailuresView()
        self.group.sig_open.connect(self.open_timeline)
        self.failures.sig_show_examples.connect(self._examples)
        self.conn: sqlite3.Connection | None = None
        self.run_id: int | None = None
        self.weights: dict[str, float] = {}
        self.active = False
        self._shown: tuple[str, int] | None = None
        self.clear()

    @property
    def pages(self) -> tuple[TrajectoryView, GroupTrajectories, FailuresView]:
        return self.timeline, self.group, self.failures

    def clear(self) -> None:
        self._shown = None
        self.timeline.clear("Select a rollout to read its trajectory turn by turn.")
        self.group.clear("Select a rollout to compare the trajectories of its group.")

    def set_run(
        self, path: str | None, conn: sqlite3.Connection | None, run_id: int | None, weights: dict[str, float]
    ) -> None:
        """Show the agent tabs and filters when the run is an agent run; hide them otherwise."""
        self.conn, self.run_id, self.weights = conn, run_id, weights
        self.clear()
        agent = conn is not None and run_id is not None and tr.is_agent_run(conn, run_id)
        self.failures.set_run(path if agent else None, run_id if agent else None)
        self._set_active(agent)
        if agent and conn is not None and run_id is not None:
            self.filters.set_agent(tr.agent_facets(conn, run_id))
        else:
            self.filters.set_agent(None)

    def recheck(self) -> None:
        """Rows arrived: a run whose first agent rollouts just came gets its tabs (and its tools)."""
        if self.conn is not None and self.run_id is not None and tr.is_agent_run(self.conn, self.run_id):
            if not self.active:
                self._set_active(True)
            self.filters.set_agent(tr.agent_facets(self.conn, self.run_id))

    def _set_active(self, agent: bool) -> None:
        self.active = agent
        present = self.tabs.indexOf(self.timeline) >= 0
        if agent and not present:
            self.tabs.insertTab(0, self.timeline, "Trajectory")
            self.tabs.insertTab(1, self.group, "Group trajectories")
            self.tabs.addTab(self.failures, "Where agents fail")
            self.tabs.setCurrentWidget(self.timeline)
        elif not agent and present:
            for page in self.pages:
                self.tabs.removeTab(self.tabs.indexOf(page))

    def owns_current_tab(self) -> bool:
        return self.active and self.tabs.currentWidget() in self.pages

    def show_selection(self, rollout_id: int, group_id: int) -> None:
        """Fill the agent tab on screen for the selected rollout (nothing is read twice)."""
        current = self.tabs.currentWidget()
        if self.conn is None or not self.active:
            return
        if current is self.timeline and self._shown != ("timeline", rollout_id):
            rollout = tr.read_agent_rollout(self.conn, rollout_id)
            if rollout is None:
                self.timeline.clear(f"Rollout {rollout_id} has no trajectory (a single-turn rollout).")
            else:
                self.timeline.show_rollout(rollout, self.weights)
            self._shown = ("timeline", rollout_id)
        elif current is self.group:
            if self._shown != ("group", group_id):
                self.group.show_group(tr.read_group(self.conn, group_id), rollout_id)
                self._shown = ("group", group_id)
            else:
                self.group.select(rollout_id)
        elif current is self.failures:
            self.failures.ensure()

    def open_timeline(self, rollout_id: int) -> None:
        """A row of the group comparison was clicked: its timeline."""
        if self.conn is None:
            return
        rollout = tr.read_agent_rollout(self.conn, rollout_id)
        if rollout is None:
            return
        self.tabs.blockSignals(True)
        self.tabs.setCurrentWidget(self.timeline)
        self.tabs.blockSignals(False)
        self.timeline.show_rollout(rollout, self.weights)
        self._shown = ("timeline", rollout_id)

    def _examples(self, ids: tuple[int, ...], what: str) -> None:
        steps = (self.failures.step_min.text().strip(), self.failures.step_max.text().strip())
        flt = RolloutFilter(
            step_min=int(steps[0]) if steps[0] else None,
            step_max=int(steps[1]) if steps[1] else None,
            ids=tuple(sorted(ids)),
        )
        self.last_examples = what
        self.sig_examples.emit(flt)
