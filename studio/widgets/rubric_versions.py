"""Versions of the rubric being edited: each immutable version with its note and the runs that used it,
a coloured diff (against the editor or the version before), and restore."""

from __future__ import annotations

import html
from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.state import rubric_store
from studio.state.rubric_session import RubricSession
from studio.state.rubric_store import VersionInfo
from studio.widgets.code_editor import monospace_font

VERSION_ROLE = Qt.ItemDataRole.UserRole + 1
RUN_ROLE = Qt.ItemDataRole.UserRole + 2
_COLOURS = {"+": ("#22543d", "#f0fff4"), "-": ("#742a2a", "#fff5f5"), "@": ("#2a4365", "#ebf8ff")}


def diff_html(lines: list[str]) -> str:
    """Unified diff lines as HTML: additions green, removals red, hunks blue, file headers bold."""
    if not lines:
        return "<p style='color:#4a5568'>No differences: the two are identical.</p>"
    out = []
    for line in lines:
        text = html.escape(line) or "&nbsp;"
        if line.startswith(("+++", "---")):
            out.append(f"<div style='font-weight:bold;color:#1a202c;background:#edf2f7'>{text}</div>")
        elif line[:1] in _COLOURS:
            fg, bg = _COLOURS[line[:1]]
            out.append(f"<div style='color:{fg};background:{bg}'>{text}</div>")
        else:
            out.append(f"<div style='color:#4a5568'>{text}</div>")
    return "<pre style='margin:0'>" + "".join(out) + "</pre>"


class VersionsPane(QWidget):
    sig_restore = Signal(int)
    """The user asked to load this version into the editor."""
    sig_open_run = Signal(int)

    def __init__(self, session: RubricSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.list = QTreeWidget()
        self.list.setObjectName("versionList")
        self.list.setHeaderLabels(["Version", "Saved", "Note", "Used by runs"])
        self.list.setRootIsDecorated(False)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.list.header()
        header.setStretchLastSection(False)
        for col in (0, 1, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.list.currentItemChanged.connect(lambda *_: self._selection_changed())
        self.list.itemDoubleClicked.connect(self._double_clicked)

        self.diff_current = QPushButton("Diff with editor")
        self.diff_current.setToolTip("What changed from the selected version to the rubric in the editor")
        self.diff_previous = QPushButton("Diff with previous")
        self.diff_previous.setToolTip("What the selected version changed from the version before it")
        self.restore = QPushButton("Restore")
        self.restore.setToolTip("Load the selected version into the editor (saving it again reuses it)")
        self.diff_current.clicked.connect(self.show_diff_with_current)
        self.diff_previous.clicked.connect(self.show_diff_with_previous)
        self.restore.clicked.connect(self._restore)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel()
        self.summary.setObjectName("muted")
        buttons.addWidget(self.summary, 1)
        for b in (self.diff_current, self.diff_previous, self.restore):
            buttons.addWidget(b)

        self.diff = QTextEdit()
        self.diff.setObjectName("diffView")
        self.diff.setReadOnly(True)
        self.diff.setFont(monospace_font(9))
        self.diff.setLineWrapMode(QTextEdit.LineWrapMode.NoWrap)
        self.diff.setPlaceholderText("Select a version and choose a diff.")
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.list, 1)
        lv.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.diff)
        split.setSizes([520, 480])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(split)
        session.sig_versions_changed.connect(self.refresh)
        session.sig_loaded.connect(self.refresh)
        session.sig_dirty_changed.connect(lambda _d: self._mark_base())
        self.versions: list[VersionInfo] = []
        self.refresh()

    def refresh(self) -> None:
        keep = self.selected_id()
        self.versions = self.session.versions()
        self.list.clear()
        for v in self.versions:
            runs = ", ".join(f"#{r.id} {r.name}" for r in v.runs) or "—"
            when = datetime.fromtimestamp(v.created_at).strftime("%Y-%m-%d %H:%M")
            item = QTreeWidgetItem([f"v{v.version}", when, v.note, runs])
            item.setData(0, VERSION_ROLE, v.id)
            if v.runs:
                item.setData(3, RUN_ROLE, v.runs[0].id)
                item.setToolTip(
                    3,
                    "\n".join(f"#{r.id} {r.name} ({r.status})" for r in v.runs)
                    + "\nDouble-click: open the run",
                )
            item.setToolTip(2, v.note)
            item.setToolTip(0, f"sha256 {v.sha256[:16]}…")
            self.list.addTopLevelItem(item)
        name = self.session.doc.name or "this rubric"
        count = len(self.versions)
        self.summary.setText(
            f"{count} version{'s' if count != 1 else ''} of {name}" if count else "Not saved yet"
        )
        self._mark_base()
        target = keep if keep is not None else (self.session.base.id if self.session.base else None)
        for item in self._items():
            if item.data(0, VERSION_ROLE) == target:
                self.list.setCurrentItem(item)
        self._selection_changed()

    def _mark_base(self) -> None:
        base = self.session.base.id if self.session.base else None
        for item in self._items():
            is_base = item.data(0, VERSION_ROLE) == base
            font = QFont(item.font(0))
            font.setBold(is_base)
            for col in range(4):
                item.setFont(col, font)
            version = item.text(0).split()[0]
            mark = (" ●" if not self.session.dirty else " ◐") if is_base else ""
            item.setText(0, version + mark)
            item.setToolTip(
                1,
                "the version in the editor" + (" (edited since)" if self.session.dirty else "")
                if is_base
                else "",
            )

    def _items(self) -> list[QTreeWidgetItem]:
        items = (self.list.topLevelItem(i) for i in range(self.list.topLevelItemCount()))
        return [item for item in items if item is not None]

    def selected_id(self) -> int | None:
        item = self.list.currentItem()
        return int(item.data(0, VERSION_ROLE)) if item is not None else None

    def select_version(self, version_id: int) -> None:
        for item in self._items():
            if item.data(0, VERSION_ROLE) == version_id:
                self.list.setCurrentItem(item)

    def _selection_changed(self) -> None:
        current = self.list.currentItem()
        has = current is not None
        index = self.list.indexOfTopLevelItem(current) if current is not None else -1
        self.diff_current.setEnabled(has)
        self.restore.setEnabled(has)
        self.diff_previous.setEnabled(has and index < len(self.versions) - 1)

    # ---- actions -----------------------------------------------------------------------------------------
    def show_diff_with_current(self) -> list[str]:
        version_id = self.selected_id()
        if version_id is None:
            return []
        lines = self.session.diff_with(version_id)
        self.diff.setHtml(diff_html(lines))
        return lines

    def show_diff_with_previous(self) -> list[str]:
        item = self.list.currentItem()
        if item is None:
            return []
        index = self.list.indexOfTopLevelItem(item)
        if index + 1 >= len(self.versions):
            return []
        db = self.session.state.db
        new, old = self.versions[index], self.versions[index + 1]
        a = rubric_store.load(db, old.id) if db else None
        b = rubric_store.load(db, new.id) if db else None
        if a is None or b is None:
            return []
        lines = rubric_store.diff((a.toml, a.sources), (b.toml, b.sources), old.label, new.label)
        self.diff.setHtml(diff_html(lines))
        return lines

    def _restore(self) -> None:
        version_id = self.selected_id()
        if version_id is not None:
            self.sig_restore.emit(version_id)

    def _double_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        run_id = item.data(3, RUN_ROLE)
        if column == 3 and run_id is not None:
            self.sig_open_run.emit(int(run_id))
        else:
            self.show_diff_with_current()
