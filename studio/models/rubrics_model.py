"""Rubrics of the workspace with their immutable versions, newest version first."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel

from studio.state.studio_state import StudioState
from studio.state.workspace import RubricVersionRow

VERSION_ID_ROLE = Qt.ItemDataRole.UserRole + 1


class RubricsModel(QStandardItemModel):
    """A small tree (rubric -> versions); rubrics are few, so it is read whole."""

    def __init__(self, state: StudioState) -> None:
        super().__init__()
        self.state = state
        self._rows: list[RubricVersionRow] = []
        state.sig_workspace_changed.connect(self.refresh)
        state.sig_authored_changed.connect(self.refresh)
        state.sig_runs_changed.connect(lambda runs: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        rows = self.state.db.rubric_versions() if self.state.db else []
        if rows == self._rows:
            return
        self._rows = rows
        self.clear()
        parents: dict[int, QStandardItem] = {}
        for v in rows:
            parent = parents.get(v.rubric_id)
            if parent is None:
                parent = parents[v.rubric_id] = QStandardItem(v.rubric_name)
                parent.setEditable(False)
                self.appendRow(parent)
            when = datetime.fromtimestamp(v.created_at).strftime("%Y-%m-%d %H:%M")
            item = QStandardItem(f"v{v.version}  ·  {when}")
            item.setEditable(False)
            item.setToolTip(v.note or "")
            item.setData(v.id, VERSION_ID_ROLE)
            parent.appendRow(item)
        for parent in parents.values():
            count = parent.rowCount()
            parent.setText(f"{parent.text()}  ·  {count} version{'s' if count != 1 else ''}")
            if parent.rowCount():
                parent.setData(parent.child(0).data(VERSION_ID_ROLE), VERSION_ID_ROLE)
