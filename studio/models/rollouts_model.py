"""A run's rollouts as a Qt table, loaded a page at a time off the GUI thread and followed live.

Every query runs in one of two lanes of background jobs (studio.jobs), each with its own read-only
connection: pages (``fetchMore``, live appends) and counts. The GUI thread only appends rows that
arrived. A filter change cancels every job of the old filter: their results are dropped, and a query
still running is interrupted (sqlite3_interrupt). Pages follow the keyset cursor of
``studio.state.rollout_query``, so a page costs the same at row 0 and at row 900,000, and rows a live
run writes later are the next page of the same query.

Why studio.jobs and not QThreads or signals from workers: the workers touch no Qt object at all. They
put results on a thread-safe queue that a GUI-thread timer drains while the model waits for something.
(A signal emitted from a worker while the model is being deleted on the GUI thread races inside the
bindings, and a QThread destroyed while it runs aborts the process.)

Why a QStandardItemModel: painting a table asks the model for ~9 things per visible cell (data for 7
roles, row and column counts). Answered by Python, each is a call from C++ into Python, and a full
repaint of a large table cost twice Qt's own (benchmarks/studio_inspector.py). So the worker thread
turns each page into plain per-cell role dicts, and the GUI thread stores them into C++ items with
setItemData, APPLY_ROWS rows per turn of the event loop: painting never enters Python. (Python-made
QStandardItems would do too, but each keeps a Python wrapper alive: twelve per row for the garbage
collector to walk, which made its pauses longer than a frame after a few thousand rows.)
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel

from engine.contract import schema
from studio.jobs import Jobs, ReadConnection, Task, query
from studio.state import rollout_query as rq
from studio.state.rollout_query import RolloutFilter, RolloutRow

Cells = list[dict[int, Any]]
ROLLOUT_ID_ROLE = Qt.ItemDataRole.UserRole + 1
RECOUNT_MS = 3000
POLL_MS = 4
"""How often the GUI thread looks for results while it waits for a page or a count."""
APPLY_ROWS = 40
"""Rows stored into the table per turn of the event loop (about 2 ms each)."""

Index = QModelIndex | QPersistentModelIndex


class CellMaker(Protocol):
    """How rows look: the columns and each cell's {role: value}. Called from a worker thread, so it
    may build plain values only (see studio.widgets.inspector_cells.RolloutCells)."""

    label_column: str

    def columns(self, criteria: list[str]) -> list[str]: ...

    def header_tip(self, name: str, criteria: list[str], weights: dict[str, float]) -> str: ...

    def row(self, r: RolloutRow, criteria: list[str]) -> Cells: ...

    def cell(self, r: RolloutRow, name: str, criterion: bool) -> dict[int, Any]: ...


@dataclass
class _Window:
    rows: list[RolloutRow]
    cells: list[Cells]
    """Each row's cells as {role: value}, made in the worker thread."""
    criteria: list[str]
    """The criterion columns the cells were made for."""
    cursor: int
    scanned: float
    final: bool
    done: bool
    applied: int = 0
    """Rows of this window already stored in the table."""


# ---- the model -----------------------------------------------------------------------------------------
class RolloutsModel(QStandardItemModel):
    sig_state_changed = Signal()
    """Loading, progress, counts or the end of the list changed: status text should be redrawn."""
    sig_rows_arrived = Signal(bool)
    """Rows were appended; True for the first rows after a reset (a view may select one)."""
    sig_failed = Signal(str)
    sig_columns_changed = Signal()
    """The columns were laid out anew (another run, or a criterion first seen)."""

    def __init__(
        self, cells: CellMaker, parent: QObject | None = None, page_rows: int = rq.PAGE_ROWS
    ) -> None:
        super().__init__(parent)
        self.cells = cells
        self.page_rows = page_rows
        self.path: str | None = None
        self.run_id: int | None = None
        self.filter = RolloutFilter()
        self.criteria: list[str] = []
        self.weights: dict[str, float] = {}
        self.conn: sqlite3.Connection | None = None
        """The GUI thread's own read-only connection, for small indexed reads (criteria, one group)."""
        self.matching: int | None = None
        self.total: int | None = None
        self.scanned = 0.0
        self._rows: list[RolloutRow] = []
        self._where: dict[int, int] = {}
        self._cursor: int | None = None
        self._done = True
        self._busy = False
        self._tail_wanted = False
        self._arrived: deque[_Window] = deque()
        self._apply_timer = QTimer(self)
        self._apply_timer.setInterval(0)
        self._apply_timer.timeout.connect(self._apply)
        self._counting = False
        self._count_after_page = False
        # Each lane's connection lives on its worker thread and closes when the lane ends (with this model).
        self._page_conn, self._count_conn = ReadConnection(), ReadConnection()
        self._pages = Jobs("rollout-pages", self, POLL_MS, on_exit=self._page_conn.close)
        self._counts = Jobs("rollout-counts", self, POLL_MS, on_exit=self._count_conn.close)
        self._recount = QTimer(self)
        self._recount.setSingleShot(True)
        self._recount.setInterval(RECOUNT_MS)
        self._recount.timeout.connect(self._count)

    # ---- what is shown ---------------------------------------------------------------------------
    def set_source(self, path: str | None, run_id: int | None) -> None:
        """Show a run of a workspace (None: nothing)."""
        if path != self.path and self.conn is not None:
            self.conn.close()
            self.conn = None
        if path is not None and self.conn is None:
            self.conn = schema.connect(path, readonly=True, timeout_s=5.0)
        self.path, self.run_id = path, run_id
        self.criteria, self.weights = [], {}
        if self.conn is not None and run_id is not None:
            self.criteria = rq.run_criteria(self.conn, run_id)
            self.weights = rq.criterion_weights(self.conn, run_id)
        self.setRowCount(0)
        self._set_headers()
        self.reload()

    def _set_headers(self) -> None:
        names = self.column_names()
        self.setColumnCount(len(names))
        for col, name in enumerate(names):
            item = QStandardItem(name)
            item.setToolTip(self.cells.header_tip(name, self.criteria, self.weights))
            self.setHorizontalHeaderItem(col, item)
        self.sig_columns_changed.emit()

    def set_filter(self, flt: RolloutFilter) -> None:
        if flt != self.filter:
            self.filter = flt
            self.reload()

    def reload(self) -> None:
        """Forget the rows and read from the start (what was asked before is cancelled, its results dropped)."""
        self._pages.cancel_all()  # what still runs for the old filter stops now
        self._counts.cancel_all()
        self._arrived.clear()
        self._apply_timer.stop()
        self._counting = self._count_after_page = False
        self.setRowCount(0)
        self._rows, self._where = [], {}
        self._cursor, self._busy, self._tail_wanted = None, False, False
        self._done = self.path is None or self.run_id is None
        self.matching = self.total = None
        self.scanned = 0.0
        if not self._done:
            self.fetchMore()
            self._count_after_page = True  # the page first: a count may read the whole run
        self.sig_state_changed.emit()

    def close(self) -> None:
        """Stop the workers and close the connection (the model is unusable afterwards)."""
        self._pages.close()
        self._counts.close()
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # ---- state for a status line -----------------------------------------------------------------
    @property
    def loading(self) -> bool:
        return self._busy or bool(self._arrived)

    @property
    def at_end(self) -> bool:
        return self._done and not self.loading

    # ---- paging ----------------------------------------------------------------------------------
    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return not parent.isValid() and not self._done and not self._busy

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        if parent.isValid() or self._done or self._busy or self.path is None or self.run_id is None:
            return
        self._busy = True
        # Plain values only: the job must not hold the model (see studio.jobs).
        path, run_id, flt, after, limit = self.path, self.run_id, self.filter, self._cursor, self.page_rows
        criteria, cell_maker, connection = list(self.criteria), self.cells, self._page_conn

        def work(task: Task) -> None:
            received = [0]

            def on_window(rows: list[RolloutRow], cursor: int, scanned: float) -> None:
                task.check()
                criteria.extend(dict.fromkeys(n for r in rows for n in r.scores if n not in criteria))
                received[0] += len(rows)
                # The rows that fill the page say so themselves: a view that checks for more as soon as they
                # are inserted must not find the model still busy.
                full = received[0] >= limit
                cells = _cells_yielding(cell_maker, rows, criteria)
                task.report(_Window(rows, cells, list(criteria), cursor, scanned, full, False))

            page = query(
                task, connection, path, lambda conn: rq.read_page(conn, run_id, flt, after, limit, on_window)
            )
            if received[0] < limit:
                scanned = 1.0 if page.done else -1.0
                task.report(_Window([], [], criteria, page.cursor, scanned, True, page.done))

        self._pages.submit(work, on_partial=self._on_window, on_failed=self._on_failed)
        self.sig_state_changed.emit()

    def poll_tail(self) -> None:
        """New rollouts may have been written: read those after the last row, if the list is at its end.

        (If it is not, scrolling reaches them: they come after every row not yet read.)
        """
        if self.run_id is None or self.path is None:
            return
        if self._busy:
            self._tail_wanted = True
            return
        if self._done:
            self._done = False
            self.fetchMore()
            if not self._recount.isActive():
                self._recount.start()

    def _on_window(self, w: _Window) -> None:
        self._arrived.append(w)
        self._apply()

    def _apply(self) -> None:
        """Store up to APPLY_ROWS arrived rows into the table; the rest on the next turn of the event loop."""
        budget = APPLY_ROWS
        while self._arrived and budget > 0:
            w = self._arrived[0]
            take = w.rows[w.applied : w.applied + budget]
            last = w.applied + len(take) >= len(w.rows)
            if last:  # the window's state first: views look for more rows when these are inserted
                self._arrived.popleft()
                self._window_state(w)
            if len(w.criteria) > len(self.criteria):
                self._add_criteria(w.criteria[len(self.criteria) :])
            first = not self._rows
            self._store(take, w.cells[w.applied : w.applied + len(take)])
            w.applied += len(take)
            budget -= max(len(take), 1)
            if take:
                self.sig_rows_arrived.emit(first)
            if last and w.final and self._tail_wanted:
                self._tail_wanted = False
                self.poll_tail()
            self.sig_state_changed.emit()
        if self._arrived:
            self._apply_timer.start()
        else:
            self._apply_timer.stop()

    def _window_state(self, w: _Window) -> None:
        self._cursor = w.cursor
        if w.scanned >= 0:
            self.scanned = w.scanned
        if w.final:
            self._busy = False
            self._done = w.done
            if self._count_after_page:
                self._count_after_page = False
                self._count()

    def _store(self, rows: list[RolloutRow], cells: list[Cells]) -> None:
        rows_cells = [(r, c) for r, c in zip(rows, cells, strict=True) if r.id not in self._where]
        if not rows_cells:
            return
        # One rowsInserted for the batch, the cells stored quietly, then one dataChanged repaints them.
        start = len(self._rows)
        self.insertRows(start, len(rows_cells))
        blocked = self.blockSignals(True)
        index, store = self.index, self.setItemData
        for i, (r, row) in enumerate(rows_cells):
            self._where[r.id] = start + i
            self._rows.append(r)
            for col, roles in enumerate(row):
                store(index(start + i, col), roles)
        self.blockSignals(blocked)
        end = start + len(rows_cells) - 1
        self.dataChanged.emit(self.index(start, 0), self.index(end, self.columnCount() - 1))

    def _add_criteria(self, names: list[str]) -> None:
        """Criteria the run's rubric did not list: columns after the others (rows read before stay blank)."""
        at = self.cells.columns([*self.criteria, *names]).index(names[0])
        self.insertColumns(at, len(names))
        self.criteria.extend(names)
        self._set_headers()

    # ---- counts ----------------------------------------------------------------------------------
    def _count(self) -> None:
        if self.path is None or self.run_id is None:
            return
        path, run_id, flt, connection = self.path, self.run_id, self.filter, self._count_conn

        def count(conn: sqlite3.Connection) -> tuple[int, int]:
            total = rq.run_total(conn, run_id)
            return total, total if flt.is_default else rq.count_matching(conn, run_id, flt)

        self._counting = True
        self._counts.submit(
            lambda task: query(task, connection, path, count),
            on_done=self._on_counted,
            on_failed=self._on_failed,
        )

    def _on_counted(self, counts: tuple[int, int]) -> None:
        self._counting = False
        self.total, self.matching = counts
        self.sig_state_changed.emit()

    def _on_failed(self, exc: BaseException) -> None:
        self._busy = self._counting = False
        self._done = True
        self.sig_failed.emit(f"Could not read the rollouts: {exc}")
        self.sig_state_changed.emit()

    # ---- access ----------------------------------------------------------------------------------
    def rollout(self, row: int) -> RolloutRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, rollout_id: int) -> int:
        return self._where.get(rollout_id, -1)

    def update_label(self, rollout_id: int, label: int, note: str) -> None:
        """Show a label that was just saved (no query needed)."""
        row = self.row_of(rollout_id)
        if row < 0:
            return
        r = self._rows[row]
        r.label, r.note = label, note
        col = self.column_names().index(self.cells.label_column)
        self.setItemData(self.index(row, col), self.cells.cell(r, self.cells.label_column, False))

    def column_names(self) -> list[str]:
        return self.cells.columns(self.criteria)

    def column_name(self, col: int) -> str:
        names = self.column_names()
        return names[col] if 0 <= col < len(names) else ""


def _cells_yielding(cells: CellMaker, rows: list[RolloutRow], criteria: list[str]) -> list[Cells]:
    """Cells for rows, made in a worker. sleep(0) every few rows hands the GIL to the GUI thread if it
    waits for it: otherwise it would wait up to the interpreter's 5 ms switch interval, each time."""
    out = []
    for i, r in enumerate(rows):
        if i % 8 == 7:
            time.sleep(0)
        row = cells.row(r, criteria)
        row[0][ROLLOUT_ID_ROLE] = r.id
        out.append(row)
    return out
