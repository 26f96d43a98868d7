"""Follow the workspace file: runs and metric rows, whoever writes them.

The studio does not rely on its pipes to know what a run did: a run started from the command line or
by another studio, or one left training while this studio was closed, shows live from the file alone.
A cheap ``PRAGMA data_version`` tells whether anyone committed since the last look; only then are the
runs table and the new metric rows (``WHERE id > ?``) read. Events from the studio's own engines
trigger a look at once (``poll_soon``), so its own runs update without waiting for the timer.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from studio.state.metrics import MetricsCache
from studio.state.workspace import RunRow, WorkspaceDB

ACTIVE_INTERVAL_MS = 250
IDLE_INTERVAL_MS = 1000
MAX_ROWS_PER_POLL = 100_000


class WorkspaceWatcher(QObject):
    sig_runs_changed = Signal(list)
    """RunRows that are new or changed since the last poll."""
    sig_run_restarted = Signal(int)
    """A run was resumed (its started_at changed): its later steps may have been rewritten."""
    sig_metrics_added = Signal(list)
    """Run ids that received new metric rows."""

    def __init__(self, metrics: MetricsCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.metrics = metrics
        self.db: WorkspaceDB | None = None
        self.runs: dict[int, RunRow] = {}
        self.cursor = 0
        self._data_version: int | None = None
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.poll)
        self._soon = QTimer(self)
        self._soon.setSingleShot(True)
        self._soon.setInterval(0)
        self._soon.timeout.connect(lambda: self.poll(force=True))

    def set_workspace(self, db: WorkspaceDB | None) -> None:
        self.db = db
        self.runs = {}
        self._data_version = None
        self._timer.stop()
        if db is None:
            return
        self.cursor = db.max_metric_id()
        self.runs = {r.id: r for r in db.runs_from(0)}
        self._timer.start(self._interval())

    def _interval(self) -> int:
        return ACTIVE_INTERVAL_MS if any(r.active for r in self.runs.values()) else IDLE_INTERVAL_MS

    def poll_soon(self) -> None:
        if not self._soon.isActive():
            self._soon.start()

    def poll(self, force: bool = False) -> None:
        db = self.db
        if db is None:
            return
        version = db.conn.execute("PRAGMA data_version").fetchone()[0]
        if not force and version == self._data_version:
            return
        self._data_version = version
        self._poll_runs(db)
        self._poll_metrics(db)
        interval = self._interval()
        if self._timer.interval() != interval:
            self._timer.setInterval(interval)

    def _poll_runs(self, db: WorkspaceDB) -> None:
        changed: list[RunRow] = []
        restarted: list[int] = []
        for run in db.runs_from(0):
            old = self.runs.get(run.id)
            if old != run:
                changed.append(run)
                if old is not None and old.started_at != run.started_at:
                    restarted.append(run.id)
                self.runs[run.id] = run
        for run_id in restarted:
            self.sig_run_restarted.emit(run_id)
        if changed:
            self.sig_runs_changed.emit(changed)

    def _poll_metrics(self, db: WorkspaceDB) -> None:
        wanted = sorted(self.metrics.runs)
        top = db.max_metric_id()
        if not wanted or top <= self.cursor:
            self.cursor = max(self.cursor, top)
            return
        marks = ",".join("?" * len(wanted))
        rows = db.conn.execute(
            f"SELECT id, run_id, step, key, value FROM metrics WHERE id > ? AND id <= ? AND run_id IN ({marks})"
            " ORDER BY id LIMIT ?",
            (self.cursor, top, *wanted, MAX_ROWS_PER_POLL),
        ).fetchall()
        # A full page means more is waiting: continue from its last row on the next tick.
        self.cursor = rows[-1][0] if len(rows) == MAX_ROWS_PER_POLL else top
        if len(rows) == MAX_ROWS_PER_POLL:
            self.poll_soon()
        if rows:
            self.metrics.add_rows(rows)
            self.sig_metrics_added.emit(sorted({r[1] for r in rows}))
