"""A run's rollouts as a Qt table, loaded a page at a time off the GUI thread and followed live.

Every query runs in one of two background threads, each with its own read-only connection: pages
(``fetchMore``, live appends) and counts. The GUI thread only appends rows that arrived. A filter
change starts a new *generation*; results of older ones are dropped, and a query of an older one that
is still running is cancelled by SQLite's progress handler. Pages follow the keyset cursor of
``studio.state.rollout_query``, so a page costs the same at row 0 and at row 900,000, and rows a live
run writes later are the next page of the same query.

Why Python threads and not QThread: a daemon thread needs no teardown order with Qt objects (a QThread
destroyed while it runs aborts the process); results still reach the GUI thread as queued signals.
"""

from __future__ import annotations

import contextlib
import math
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor

from engine.contract import schema
from studio.state import rollout_query as rq
from studio.state.rollout_query import RolloutFilter, RolloutRow

ROLLOUT_ID_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2
RECOUNT_MS = 3000
_CANCEL_CHECK_STEPS = 20_000  # SQLite VM steps between checks for a newer generation

Index = QModelIndex | QPersistentModelIndex

GOOD_COLOR, BAD_COLOR, MUTED_COLOR, WARN_COLOR = "#1f8a4c", "#c53030", "#718096", "#b7791f"
_DISPLAY, _TOOLTIP = int(Qt.ItemDataRole.DisplayRole), int(Qt.ItemDataRole.ToolTipRole)
_FOREGROUND, _ALIGN = int(Qt.ItemDataRole.ForegroundRole), int(Qt.ItemDataRole.TextAlignmentRole)
_ROLES = frozenset({_DISPLAY, _TOOLTIP, _FOREGROUND, _ALIGN, ROLLOUT_ID_ROLE, ROW_ROLE})
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


# ---- background queries --------------------------------------------------------------------------------
class _Bridge(QObject):
    """Carries results from the worker threads to the GUI thread (queued: emitted from another thread)."""

    window = Signal(int, object)
    counted = Signal(int, object)
    failed = Signal(int, str)


@dataclass
class _Job:
    gen: int
    path: str
    work: Callable[[sqlite3.Connection], None]


class _Worker(threading.Thread):
    """One thread, one read-only connection, jobs in order; a job of an older generation is skipped or
    cancelled as soon as a newer one is submitted."""

    def __init__(self, name: str, bridge: _Bridge) -> None:
        super().__init__(name=name, daemon=True)
        self.bridge = bridge
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.latest = 0
        self.running_gen = 0
        self._conn: sqlite3.Connection | None = None
        self._path = ""

    def submit(self, job: _Job) -> None:
        self.latest = max(self.latest, job.gen)
        self.jobs.put(job)

    def stop(self) -> None:
        self.latest += 1 << 30
        self.jobs.put(None)

    def _connection(self, path: str) -> sqlite3.Connection:
        if self._conn is None or path != self._path:
            if self._conn is not None:
                self._conn.close()
            self._conn = schema.connect(path, readonly=True, timeout_s=5.0)
            self._conn.set_progress_handler(self._cancelled, _CANCEL_CHECK_STEPS)
            self._path = path
        return self._conn

    def _cancelled(self) -> int:
        return 1 if self.running_gen < self.latest else 0

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if job.gen < self.latest:
                continue
            self.running_gen = job.gen
            try:
                job.work(self._connection(job.path))
            except sqlite3.OperationalError as exc:
                if "interrupt" not in str(exc):
                    self._emit_failure(job.gen, exc)
            except (sqlite3.Error, OSError) as exc:
                self._emit_failure(job.gen, exc)
            except RuntimeError:  # the model was deleted while this job ran
                return
        if self._conn is not None:
            self._conn.close()

    def _emit_failure(self, gen: int, exc: BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the model is gone
            self.bridge.failed.emit(gen, f"Could not read the rollouts: {exc}")


@dataclass
class _Window:
    rows: list[RolloutRow]
    cursor: int
    scanned: float
    final: bool
    done: bool


# ---- the model -----------------------------------------------------------------------------------------
class RolloutsModel(QAbstractTableModel):
    sig_state_changed = Signal()
    """Loading, progress, counts or the end of the list changed: status text should be redrawn."""
    sig_rows_arrived = Signal(bool)
    """Rows were appended; True for the first rows after a reset (a view may select one)."""
    sig_failed = Signal(str)

    FIXED_HEAD = ("Step", "Prompt", "Completion", "Reward")
    FIXED_TAIL = ("Adv.", "Tokens", "Trunc.", "Errors", "Label")

    def __init__(self, parent: QObject | None = None, page_rows: int = rq.PAGE_ROWS) -> None:
        super().__init__(parent)
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
        self._cells: list[tuple[tuple[str, ...], tuple[QColor | None, ...]] | None] = []
        """Each row's display texts and colours, made when first painted."""
        self._gen = 0
        self._cursor: int | None = None
        self._done = True
        self._busy = False
        self._tail_wanted = False
        self._bridge = _Bridge()
        self._bridge.window.connect(self._on_window)
        self._bridge.counted.connect(self._on_counted)
        self._bridge.failed.connect(self._on_failed)
        self._pages = _Worker("rollout-pages", self._bridge)
        self._counts = _Worker("rollout-counts", self._bridge)
        self._pages.start()
        self._counts.start()
        self._recount = QTimer(self)
        self._recount.setSingleShot(True)
        self._recount.setInterval(RECOUNT_MS)
        self._recount.timeout.connect(self._count)
        self.destroyed.connect(self._pages.stop)
        self.destroyed.connect(self._counts.stop)

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
        self.reload()

    def set_filter(self, flt: RolloutFilter) -> None:
        if flt != self.filter:
            self.filter = flt
            self.reload()

    def reload(self) -> None:
        """Forget the rows and read from the start (a new generation: older results are dropped)."""
        self._gen += 1
        self._pages.latest = self._counts.latest = self._gen  # cancel what still runs for the old one
        self.beginResetModel()
        self._rows, self._where, self._cells = [], {}, []
        self._cursor, self._busy, self._tail_wanted = None, False, False
        self._done = self.path is None or self.run_id is None
        self.matching = self.total = None
        self.scanned = 0.0
        self.endResetModel()
        if not self._done:
            self.fetchMore()
            self._count()
        self.sig_state_changed.emit()

    def close(self) -> None:
        """Stop the workers and close the connection (the model is unusable afterwards)."""
        self._pages.stop()
        self._counts.stop()
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # ---- state for a status line -----------------------------------------------------------------
    @property
    def loading(self) -> bool:
        return self._busy

    @property
    def at_end(self) -> bool:
        return self._done and not self._busy

    # ---- paging ----------------------------------------------------------------------------------
    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return not parent.isValid() and not self._done and not self._busy

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        if parent.isValid() or self._done or self._busy or self.path is None or self.run_id is None:
            return
        self._busy = True
        gen, run_id, flt, after, limit, bridge = (
            self._gen,
            self.run_id,
            self.filter,
            self._cursor,
            self.page_rows,
            self._bridge,
        )

        def work(conn: sqlite3.Connection) -> None:
            def on_window(rows: list[RolloutRow], cursor: int, scanned: float) -> None:
                bridge.window.emit(gen, _Window(rows, cursor, scanned, False, False))

            page = rq.read_page(conn, run_id, flt, after, limit, on_window)
            bridge.window.emit(gen, _Window([], page.cursor, 1.0 if page.done else -1.0, True, page.done))

        self._pages.submit(_Job(gen, self.path, work))
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

    def _on_window(self, gen: int, w: _Window) -> None:
        if gen != self._gen:
            return
        first = not self._rows
        fresh = [r for r in w.rows if r.id not in self._where]
        if fresh:
            self._ensure_criteria(fresh)
            start = len(self._rows)
            self.beginInsertRows(QModelIndex(), start, start + len(fresh) - 1)
            for i, row in enumerate(fresh):
                self._where[row.id] = start + i
            self._rows.extend(fresh)
            self._cells.extend([None] * len(fresh))
            self.endInsertRows()
        self._cursor = w.cursor
        if w.scanned >= 0:
            self.scanned = w.scanned
        if w.final:
            self._busy = False
            self._done = w.done
            if self._tail_wanted:
                self._tail_wanted = False
                self.poll_tail()
        if fresh:
            self.sig_rows_arrived.emit(first)
        self.sig_state_changed.emit()

    def _ensure_criteria(self, rows: list[RolloutRow]) -> None:
        names = [n for r in rows for n in r.scores if n not in self.criteria]
        new = list(dict.fromkeys(names))
        if new:
            at = len(self.FIXED_HEAD) + len(self.criteria)
            self.beginInsertColumns(QModelIndex(), at, at + len(new) - 1)
            self.criteria.extend(new)
            self._cells = [None] * len(self._rows)
            self.endInsertColumns()

    # ---- counts ----------------------------------------------------------------------------------
    def _count(self) -> None:
        if self.path is None or self.run_id is None:
            return
        gen, run_id, flt, bridge = self._gen, self.run_id, self.filter, self._bridge

        def work(conn: sqlite3.Connection) -> None:
            total = rq.run_total(conn, run_id)
            matching = total if flt.is_default else rq.count_matching(conn, run_id, flt)
            bridge.counted.emit(gen, (total, matching))

        self._counts.submit(_Job(gen, self.path, work))

    def _on_counted(self, gen: int, counts: tuple[int, int]) -> None:
        if gen == self._gen:
            self.total, self.matching = counts
            self.sig_state_changed.emit()

    def _on_failed(self, gen: int, message: str) -> None:
        if gen == self._gen:
            self._busy = False
            self._done = True
            self.sig_failed.emit(message)
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
        self._cells[row] = None
        col = self.columnCount() - 1
        self.dataChanged.emit(self.index(row, col), self.index(row, col))

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.FIXED_HEAD) + len(self.criteria) + len(self.FIXED_TAIL)

    def column_name(self, col: int) -> str:
        head, n = len(self.FIXED_HEAD), len(self.criteria)
        if col < head:
            return self.FIXED_HEAD[col]
        if col < head + n:
            return self.criteria[col - head]
        return self.FIXED_TAIL[col - head - n] if col - head - n < len(self.FIXED_TAIL) else ""

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        name = self.column_name(section)
        if role == Qt.ItemDataRole.DisplayRole:
            return name
        if role == Qt.ItemDataRole.ToolTipRole:
            if name in self.criteria:
                w = self.weights.get(name)
                weight = "" if w is None else f" (weight {w:g}{': logged, not optimised' if w == 0 else ''})"
                return f"Criterion “{name}”{weight}"
            return _HEADER_TIPS.get(name)
        return None

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        # A full repaint asks for ~2,000 cells x roles: answer from a per-row cache, decline other roles early.
        if role not in _ROLES:
            return None
        row = index.row()
        if not 0 <= row < len(self._rows):
            return None
        r = self._rows[row]
        if role in (_DISPLAY, _FOREGROUND):
            cells = self._cells[row]
            if cells is None:
                cells = self._cells[row] = self._format(r)
            return cells[0 if role == _DISPLAY else 1][index.column()]
        if role == _ALIGN:
            return (
                None if index.column() in (1, 2) or self.column_name(index.column()) == "Errors" else _RIGHT
            )
        if role == ROLLOUT_ID_ROLE:
            return r.id
        if role == ROW_ROLE:
            return r
        name = self.column_name(index.column())
        return _tooltip(r, name, name in self.criteria)

    def _format(self, r: RolloutRow) -> tuple[tuple[str, ...], tuple[QColor | None, ...]]:
        names = [self.column_name(c) for c in range(self.columnCount())]
        crit = set(self.criteria)
        return (
            tuple(_display(r, n, n in crit) for n in names),
            tuple(_foreground(r, n, n in crit) for n in names),
        )


_HEADER_TIPS = {
    "Step": "Training step that sampled the rollout",
    "Prompt": "The prompt (the group's shared input)",
    "Completion": "The start of the completion; the group view below shows it whole",
    "Reward": "Total reward: the weighted sum of the criteria, as optimised",
    "Adv.": "Advantage: the reward relative to its group (what GRPO learns from)",
    "Tokens": "Completion length in tokens",
    "Trunc.": "Cut off at the maximum completion length",
    "Errors": "Criteria that failed on this rollout",
    "Label": "Your label: ▲ good (+), ▼ bad (-); ✎ has a note (N)",
}


def _one_line(text: str, limit: int = 110) -> str:
    # Cut to about what a wide column shows: Qt lays out the whole string to elide it, on every paint.
    flat = text.replace("\r", "").replace("\n", " ⏎ ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _number(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _display(r: RolloutRow, name: str, criterion: bool) -> str:
    if criterion:
        if name in r.errors:
            return "error"
        return _number(r.scores.get(name)) if name in r.scores else ""
    if name == "Step":
        return str(r.step)
    if name == "Prompt":
        return _one_line(r.prompt, 60)
    if name == "Completion":
        return _one_line(r.completion)
    if name == "Reward":
        return _number(r.reward)
    if name == "Adv.":
        return _number(r.advantage, signed=True)
    if name == "Tokens":
        return "" if r.tokens is None else str(r.tokens)
    if name == "Trunc.":
        return "✂" if r.truncated else ""
    if name == "Errors":
        return ", ".join(r.errors) if r.errors else ("" if not r.error_count else str(r.error_count))
    if name == "Label":
        mark = {1: "▲", -1: "▼"}.get(r.label, "")
        return mark + (" ✎" if r.note else "")
    return ""


def _tooltip(r: RolloutRow, name: str, criterion: bool) -> str | None:
    if criterion and name in r.errors:
        return f"{name}: {r.errors[name]}"
    if name == "Prompt":
        return r.prompt[:2000]
    if name == "Completion":
        return r.completion[:2000] + ("…" if len(r.completion) >= rq.PREVIEW_CHARS else "")
    if name == "Errors" and r.errors:
        return "\n".join(f"{k}: {v}" for k, v in r.errors.items())
    if name == "Label" and (r.label or r.note):
        return ({1: "Good", -1: "Bad"}.get(r.label, "No label")) + (f"\nNote: {r.note}" if r.note else "")
    if name == "Adv." and r.group_std is not None and r.group_std <= rq.ZERO_STD:
        return "Zero-std group: every completion scored the same, so GRPO learns nothing from it"
    return None


_GOOD, _BAD, _MUTED, _WARN = (QColor(c) for c in (GOOD_COLOR, BAD_COLOR, MUTED_COLOR, WARN_COLOR))


def _foreground(r: RolloutRow, name: str, criterion: bool) -> QColor | None:
    if (criterion and name in r.errors) or name == "Errors":
        return _BAD
    if name == "Adv.":
        if r.group_std is not None and r.group_std <= rq.ZERO_STD:
            return _MUTED
        if r.advantage is not None:
            return _GOOD if r.advantage > 0 else _BAD if r.advantage < 0 else _MUTED
    if name == "Trunc.":
        return _WARN
    if name == "Label":
        return _GOOD if r.label == 1 else _BAD if r.label == -1 else _MUTED
    if name in ("Step", "Tokens"):
        return _MUTED
    return None
