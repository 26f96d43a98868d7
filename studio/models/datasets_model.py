"""Datasets registered in the workspace, and a paged preview of one dataset's rows (JSONL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from studio.state.studio_state import StudioState
from studio.state.workspace import DatasetRow

DATASET_ID_ROLE = Qt.ItemDataRole.UserRole + 1
PREVIEW_PAGE = 200
_CELL_CHARS = 160

Index = QModelIndex | QPersistentModelIndex


class DatasetsModel(QAbstractListModel):
    def __init__(self, state: StudioState) -> None:
        super().__init__()
        self.state = state
        self._rows: list[DatasetRow] = []
        state.sig_workspace_changed.connect(self.refresh)
        state.sig_authored_changed.connect(self.refresh)
        state.sig_runs_changed.connect(self._maybe_refresh)
        self.refresh()

    def refresh(self) -> None:
        rows = self.state.db.datasets() if self.state.db else []
        if rows == self._rows:
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def _maybe_refresh(self, runs: list[Any]) -> None:
        # The engine registers a run's datasets when the run starts.
        if any(r.status == "running" and r.step == 0 for r in runs):
            self.refresh()

    def dataset(self, row: int) -> DatasetRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        ds = self.dataset(index.row())
        if ds is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            rows = f"{ds.rows:,} rows" if ds.rows is not None else "? rows"
            return f"{ds.name}  ·  {rows}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{ds.path}\ncolumns: {', '.join(ds.columns) or '?'}"
        if role == DATASET_ID_ROLE:
            return ds.id
        return None


class JsonlPreviewModel(QAbstractTableModel):
    """The rows of a JSONL file, read PREVIEW_PAGE lines at a time as the view scrolls."""

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        self.path: Path | None = None
        self.error = ""
        self._columns: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._offset = 0
        self._at_end = True
        if path is not None:
            self.open(path)

    def open(self, path: str | Path) -> None:
        self.beginResetModel()
        self.path = Path(path)
        self.error = ""
        self._columns, self._rows, self._offset, self._at_end = [], [], 0, False
        if not self.path.is_file():
            self.error = f"{self.path} does not exist (moved or deleted?)."
            self._at_end = True
        self.endResetModel()
        if not self._at_end:
            self.fetchMore(QModelIndex())

    def _read_page(self) -> list[dict[str, Any]]:
        assert self.path is not None
        page: list[dict[str, Any]] = []
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            while len(page) < PREVIEW_PAGE:
                line = f.readline()
                if not line:
                    self._at_end = True
                    break
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    obj = {"(invalid JSON)": f"{exc}: {line[:200]!r}"}
                page.append(obj if isinstance(obj, dict) else {"(value)": obj})
            self._offset = f.tell()
        return page

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return not parent.isValid() and not self._at_end

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        if parent.isValid() or self._at_end or self.path is None:
            return
        try:
            page = self._read_page()
        except OSError as exc:
            self.error, self._at_end = str(exc), True
            return
        new_cols = [k for row in page for k in row if k not in self._columns]
        new_cols = list(dict.fromkeys(new_cols))
        if new_cols:
            self.beginInsertColumns(QModelIndex(), len(self._columns), len(self._columns) + len(new_cols) - 1)
            self._columns.extend(new_cols)
            self.endInsertColumns()
        if page:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(page) - 1)
            self._rows.extend(page)
            self.endInsertRows()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self._columns[section] if section < len(self._columns) else None
        return str(section + 1)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        value = self._rows[index.row()].get(self._columns[index.column()])
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if role == Qt.ItemDataRole.DisplayRole:
            text = text.replace("\n", "⏎ ")
            return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"
        return text if len(text) < 4000 else text[:4000] + "…"
