"""The criteria of the rubric being edited, as an editable table: name, kind, weight, key parameters.

Key parameters edit as TOML inline-table content (`pattern = '^<answer>', mode = "fullmatch"`), parsed
with tomllib, so any field of any kind can be set from the table; inline code is edited in the code
editor instead. Every edit goes through the RubricSession, which rewrites the TOML.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from engine.contract.rubric_format import KINDS, key_parameters, unknown_kind_message
from studio.state import rubric_toml
from studio.state.rubric_checks import Problem, Report
from studio.state.rubric_session import RubricSession

Index = QModelIndex | QPersistentModelIndex
COLUMNS = ("Name", "Kind", "Weight", "Key parameters")
NAME, KIND, WEIGHT, PARAMS = range(4)
ERROR_BG = QColor("#fff5f5")
WARNING_BG = QColor("#fffbea")
LOGGED_FG = QColor("#718096")


def format_parameters(params: dict[str, Any]) -> str:
    return ", ".join(f"{rubric_toml.key(k)} = {rubric_toml.inline(v)}" for k, v in params.items())


def parse_parameters(text: str) -> dict[str, Any]:
    """`a = 1, b = "x"` -> {"a": 1, "b": "x"}. Raises ValueError with tomllib's message."""
    try:
        data = tomllib.loads(f"p = {{ {text.strip()} }}") if text.strip() else {"p": {}}
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML key = value pairs ({exc})") from None
    return dict(data["p"])


class CriteriaModel(QAbstractTableModel):
    sig_edit_rejected = Signal(str)
    """An edit could not be applied; the message says why and how to fix it."""

    def __init__(self, session: RubricSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.report = Report()
        session.sig_loaded.connect(self._reset)
        session.sig_changed.connect(self._on_changed)

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def _on_changed(self, origin: str) -> None:
        if origin == "toml":  # the criteria may be new, gone or reordered
            self._reset()
        elif origin == "code" and self.rowCount():  # inline code: only the parameters' summary changes
            self.dataChanged.emit(self.index(0, PARAMS), self.index(self.rowCount() - 1, PARAMS))

    def set_report(self, report: Report) -> None:
        self.report = report
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, len(COLUMNS) - 1))

    @property
    def criteria(self) -> list[dict[str, Any]]:
        return self.session.doc.criteria

    # ---- reading ---------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.criteria)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.ToolTipRole
            and section == WEIGHT
        ):
            return "0 = logged, not optimised"
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        return base | Qt.ItemFlag.ItemIsEditable if index.isValid() else base

    def problems(self, row: int) -> list[Problem]:
        return self.report.for_criterion(row)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.criteria):
            return None
        c = self.criteria[index.row()]
        col = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if col == NAME:
                return str(c.get("name", ""))
            if col == KIND:
                return str(c.get("kind", ""))
            if col == WEIGHT:
                weight = c.get("weight", 1.0)
                if role == Qt.ItemDataRole.EditRole:
                    return float(weight) if isinstance(weight, int | float) else 1.0
                return f"{weight:g}" if isinstance(weight, int | float) else str(weight)
            params = key_parameters(c)
            text = format_parameters(params)
            if role == Qt.ItemDataRole.DisplayRole and "code" in c:
                lines = len(str(c["code"]).splitlines())
                text = (
                    f"{text}, code: {lines} line{'s' if lines != 1 else ''}"
                    if text
                    else f"code: {lines} lines"
                )
            return text
        problems = self.problems(index.row())
        if role == Qt.ItemDataRole.BackgroundRole and problems:
            return QBrush(ERROR_BG if any(p.is_error for p in problems) else WARNING_BG)
        if role == Qt.ItemDataRole.ForegroundRole and col == WEIGHT and c.get("weight", 1.0) == 0:
            return QBrush(LOGGED_FG)
        if role == Qt.ItemDataRole.ToolTipRole:
            tips = [p.message for p in problems]
            if col == KIND and str(c.get("kind")) in KINDS:
                tips.insert(0, KINDS[str(c["kind"])].help)
            if col == WEIGHT:
                tips.insert(0, "weight 0: logged, not optimised")
            if col == PARAMS:
                tips.insert(0, "Edit as TOML: key = value, separated by commas")
            return "\n".join(tips) or None
        return None

    # ---- editing ---------------------------------------------------------------------------------------
    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        row, col = index.row(), index.column()
        doc = self.session.doc
        try:
            if col == NAME:
                self._rename(row, str(value).strip())
            elif col == KIND:
                if str(value) not in KINDS:
                    raise ValueError(unknown_kind_message(str(value)))
                if str(value) == self.criteria[row].get("kind"):
                    return False
                doc.set_kind(row, str(value))
            elif col == WEIGHT:
                weight = float(value)
                doc.set_field(row, "weight", float(weight))
            else:
                doc.replace_parameters(row, parse_parameters(str(value)))
        except ValueError as exc:
            self.sig_edit_rejected.emit(str(exc))
            return False
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
        self.session.changed("table")
        return True

    def _rename(self, row: int, name: str) -> None:
        doc = self.session.doc
        old = str(self.criteria[row].get("name", ""))
        if not name:
            raise ValueError("a criterion needs a name")
        if name != old and name in doc.names():
            raise ValueError(f"'{name}' is already the name of another criterion")
        self.criteria[row]["name"] = name
        total = doc.data.get("total")
        if isinstance(total, str) and old:  # the total expression follows the rename
            doc.data["total"] = re.sub(rf"\b{re.escape(old)}\b", name, total)
        doc.regenerate()

    def add(self, kind: str) -> int:
        row = len(self.criteria)
        self.beginInsertRows(QModelIndex(), row, row)
        self.session.doc.add_criterion(kind)
        self.endInsertRows()
        self.session.changed("table")
        return row

    def remove(self, row: int) -> None:
        if not 0 <= row < len(self.criteria):
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        self.session.doc.remove_criterion(row)
        self.endRemoveRows()
        self.session.changed("table")

    def move(self, row: int, delta: int) -> int:
        target = row + delta
        if not (0 <= row < len(self.criteria) and 0 <= target < len(self.criteria)):
            return row
        self.beginResetModel()
        self.session.doc.move_criterion(row, delta)
        self.endResetModel()
        self.session.changed("table")
        return target
