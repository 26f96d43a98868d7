"""The runs of a workspace, newest first, loaded a page at a time and updated live."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from studio.state.studio_state import StudioState
from studio.state.workspace import RunRow

RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 1
SPARKLINE_ROLE = Qt.ItemDataRole.UserRole + 2
STATUS_ROLE = Qt.ItemDataRole.UserRole + 3

STATUS_COLORS = {
    "queued": "#7a7a7a",
    "running": "#1f8a4c",
    "paused": "#b7791f",
    "stopped": "#4a5568",
    "failed": "#c53030",
    "finished": "#2b6cb0",
    "interrupted": "#c05621",
}

COLUMNS = ("Run", "Status", "Step", "Reward")
PAGE = 100
_SPARK_REFRESH_S = 2.0

Index = QModelIndex | QPersistentModelIndex


class RunsModel(QAbstractTableModel):
    def __init__(self, state: StudioState) -> None:
        super().__init__()
        self.state = state
        self._rows: list[RunRow] = []
        self._has_more = False
        self._spark: dict[int, tuple[int, float, list[float]]] = {}
        state.sig_workspace_changed.connect(self.reset)
        state.sig_runs_changed.connect(self._on_runs_changed)
        self.reset()

    # ---- paging ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.beginResetModel()
        self._spark.clear()
        db = self.state.db
        self._rows = db.runs(limit=PAGE) if db else []
        self._has_more = len(self._rows) == PAGE
        self.endResetModel()

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return not parent.isValid() and self._has_more

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        db = self.state.db
        if parent.isValid() or db is None or not self._rows:
            return
        page = db.runs(before_id=self._rows[-1].id, limit=PAGE)
        self._has_more = len(page) == PAGE
        if page:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(page) - 1)
            self._rows.extend(page)
            self.endInsertRows()

    def _on_runs_changed(self, runs: list[RunRow]) -> None:
        where = {r.id: i for i, r in enumerate(self._rows)}
        newest = self._rows[0].id if self._rows else 0
        fresh = sorted((r for r in runs if r.id > newest), key=lambda r: -r.id)
        for run in runs:
            i = where.get(run.id)
            if i is not None:
                self._rows[i] = run
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))
        if fresh:
            self.beginInsertRows(QModelIndex(), 0, len(fresh) - 1)
            self._rows[0:0] = fresh
            self.endInsertRows()

    # ---- access ----------------------------------------------------------------------------------------
    def run_at(self, row: int) -> RunRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, run_id: int) -> int:
        for i, r in enumerate(self._rows):
            if r.id == run_id:
                return i
        return -1

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def sparkline(self, run: RunRow) -> list[float]:
        cached = self._spark.get(run.id)
        now = time.monotonic()
        if cached and (cached[0] == run.step or now - cached[1] < _SPARK_REFRESH_S):
            return cached[2]
        values = self.state.db.sparkline(run.id, run.step) if self.state.db else []
        self._spark[run.id] = (run.step, now, values)
        return values

    def shown_status(self, run: RunRow) -> str:
        """`interrupted (resumable)` for an active run whose engine is gone (a kill -9, a power cut)."""
        if not run.active or self.state.db is None:
            return run.status
        return run.shown_status(self.state.db.has_complete_checkpoint(run.id))

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        run = self.run_at(index.row())
        if run is None:
            return None
        col = index.column()
        if role == RUN_ID_ROLE:
            return run.id
        if role == STATUS_ROLE:
            return run.status
        if role == SPARKLINE_ROLE and col == 3:
            return self.sparkline(run)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return run.label
            if col == 1:
                return self.shown_status(run)
            if col == 2:
                return f"{run.step}/{run.max_steps}" if run.max_steps else str(run.step)
            if col == 3:
                values = [v for v in self.sparkline(run) if not math.isnan(v)]
                return f"{values[-1]:.3f}" if values else ""
        if role == Qt.ItemDataRole.ForegroundRole and col == 1:
            return QColor(STATUS_COLORS.get(self.shown_status(run).split(" ")[0], "#333333"))
        if role == Qt.ItemDataRole.ToolTipRole:
            started = datetime.fromtimestamp(run.created_at).strftime("%Y-%m-%d %H:%M")
            tip = f"{run.label}\n{run.algorithm}, {self.shown_status(run)}, step {run.step} of {run.max_steps}\ncreated {started}"
            if run.error:
                tip += f"\n\n{run.error}"
            return tip
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
