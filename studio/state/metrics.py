"""Metric series of the runs on screen, loaded fast and then kept live.

Opening a run never waits for its whole history: a run with a million metric rows first gets an
overview (every k-th step of each key, a few thousand points, read in one indexed pass), then a
background job (studio.jobs) reads the full history and swaps it in. Rows that arrive while it reads are appended
live and survive the swap (Series.rebase). Live rows come from the workspace watcher, ``WHERE id > ?``.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.contract import schema
from studio.jobs import Jobs, ReadConnection, Task, query
from studio.state.series import Series
from studio.state.workspace import WorkspaceDB

OVERVIEW_POINTS = 1000
"""Points per key in the first, synchronous load of a long run (a plot is a few hundred pixels wide).
Each costs a table lookup (the index holds run_id, key, step but not value), so fewer is faster."""

_SQL_KEY = "SELECT step, value FROM metrics WHERE run_id = ? AND key = ? AND id <= ? ORDER BY step"
_SQL_KEY_STRIDED = "SELECT step, value FROM metrics WHERE run_id = ? AND key = ? AND id <= ? AND (step - ?) % ? = 0 ORDER BY step"


def read_key(
    conn, run_id: int, key: str, through_id: int, stride: int = 1, first: int = 0
) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    if stride <= 1:
        rows = conn.execute(_SQL_KEY, (run_id, key, through_id)).fetchall()
    else:
        rows = conn.execute(_SQL_KEY_STRIDED, (run_id, key, through_id, first, stride)).fetchall()
    if not rows:
        return np.empty(0), np.empty(0)
    arr = np.array(rows, dtype=np.float64)  # NULL -> NaN
    return arr[:, 0], arr[:, 1]


@dataclass
class RunMetrics:
    run_id: int
    series: dict[str, Series] = field(default_factory=dict)
    through_id: int = 0
    """Rows with id <= this came from the bulk load; newer ones arrive live."""
    complete: bool = False
    """False while only the overview is loaded."""
    token: int = 0

    def keys(self) -> list[str]:
        return sorted(self.series)


class MetricsCache(QObject):
    """Series per (run, key) for the runs a view asked for."""

    sig_run_loaded = Signal(int)
    """A run's series were (re)built: views recreate that run's curves."""
    sig_keys_added = Signal(int, list)
    """New keys appeared live in a run."""
    sig_run_complete = Signal(int)
    """A run's full-resolution history replaced its overview."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.db: WorkspaceDB | None = None
        self.runs: dict[int, RunMetrics] = {}
        self.key_filter: Callable[[str], bool] = lambda key: True
        self._tokens = 0
        self._conn = ReadConnection()
        self._loads = Jobs("metrics-history", self, poll_ms=20, on_exit=self._conn.close)
        """Full histories, one run after another (each is one indexed pass per key)."""

    def set_workspace(self, db: WorkspaceDB | None) -> None:
        self.db = db
        self.runs.clear()
        self._tokens += 1
        self._loads.cancel_all()  # loads still running for the old workspace stop; their results are dropped

    # ---- loading ---------------------------------------------------------------------------------
    def get(self, run_id: int) -> RunMetrics | None:
        return self.runs.get(run_id)

    def ensure(self, run_id: int, through_id: int, background: bool = True) -> RunMetrics:
        """The run's metrics, loading them now if needed (see the module docstring)."""
        found = self.runs.get(run_id)
        if found is not None:
            return found
        return self.load(run_id, through_id, background)

    def load(self, run_id: int, through_id: int, background: bool = True) -> RunMetrics:
        assert self.db is not None, "no workspace is open"
        self._tokens += 1
        rm = RunMetrics(run_id, through_id=through_id, token=self._tokens)
        conn = self.db.conn
        deferred: list[str] = []
        for key in self.db.metric_keys(run_id):
            if not self.key_filter(key):
                continue
            # Estimate the row count from three index seeks (a count(*) would walk the whole range).
            head = conn.execute(
                "SELECT step FROM metrics WHERE run_id = ? AND key = ? ORDER BY step LIMIT 2", (run_id, key)
            ).fetchall()
            last = conn.execute(
                "SELECT step FROM metrics WHERE run_id = ? AND key = ? ORDER BY step DESC LIMIT 1",
                (run_id, key),
            ).fetchone()
            first = int(head[0][0]) if head else 0
            spacing = max(1, int(head[1][0]) - first) if len(head) > 1 else 1
            count = (int(last[0]) - first) // spacing + 1 if last else 0
            stride = 1
            if count > 2 * OVERVIEW_POINTS:
                stride = spacing * math.ceil(count / OVERVIEW_POINTS)
                deferred.append(key)
            xs, ys = read_key(conn, run_id, key, through_id, stride, first)
            series = Series(capacity=int(count) + 64)
            series.append(xs, ys)
            series.n_base = series.n
            rm.series[key] = series
        rm.complete = not deferred
        self.runs[run_id] = rm
        if deferred:
            if background:
                self._start_full_load(rm, deferred)
            else:
                self._on_full_ready(
                    run_id, rm.token, self._read_full(self.db.path, run_id, deferred, through_id)
                )
        self.sig_run_loaded.emit(run_id)
        return rm

    def reload(self, run_id: int, through_id: int) -> None:
        """Read a run again from scratch (after a resume truncated its later steps)."""
        if run_id in self.runs:
            del self.runs[run_id]
            self.load(run_id, through_id)

    def forget(self, run_id: int) -> None:
        self.runs.pop(run_id, None)

    @staticmethod
    def _read_full(
        path: str, run_id: int, keys: list[str], through_id: int
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        conn = schema.connect(path, readonly=True)
        try:
            return {key: read_key(conn, run_id, key, through_id) for key in keys}
        finally:
            conn.close()

    def _start_full_load(self, rm: RunMetrics, keys: list[str]) -> None:
        assert self.db is not None
        path, run_id, token, through = self.db.path, rm.run_id, rm.token, rm.through_id
        connection = self._conn  # not self: a job holds no reference to its owner

        def read(task: Task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            def keys_of(conn: sqlite3.Connection) -> dict[str, tuple[np.ndarray, np.ndarray]]:
                full = {}
                for key in keys:
                    task.check()  # a cancelled load leaves the lane to the next one at once
                    full[key] = read_key(conn, run_id, key, through)
                return full

            return query(task, connection, path, keys_of)

        self._loads.submit(
            read,
            on_done=lambda result: self._on_full_ready(run_id, token, result),
            on_failed=lambda _exc: None,  # the workspace went away: the overview stays
        )

    def _on_full_ready(self, run_id: int, token: int, result: object) -> None:
        rm = self.runs.get(run_id)
        if rm is None or rm.token != token or not isinstance(result, dict):
            return
        for key, (xs, ys) in result.items():
            series = rm.series.get(key)
            if series is not None:
                series.rebase(xs, ys)
        rm.complete = True
        self.sig_run_complete.emit(run_id)

    # ---- live rows ---------------------------------------------------------------------------------
    def add_rows(self, rows: Iterable[tuple[int, int, int, str, float | None]]) -> None:
        """Append rows (id, run_id, step, key, value) newer than each run's bulk load."""
        grouped: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
        for id_, run_id, step, key, value in rows:
            rm = self.runs.get(run_id)
            if rm is None or id_ <= rm.through_id or not self.key_filter(key):
                continue
            grouped[(run_id, key)].append((step, math.nan if value is None else value))
        new_keys: dict[int, list[str]] = defaultdict(list)
        for (run_id, key), points in grouped.items():
            rm = self.runs[run_id]
            series = rm.series.get(key)
            if series is None:
                series = rm.series[key] = Series()
                new_keys[run_id].append(key)
            arr = np.asarray(points, dtype=np.float64)
            series.append(arr[:, 0], arr[:, 1])
        for run_id, keys in new_keys.items():
            self.sig_keys_added.emit(run_id, sorted(keys))
