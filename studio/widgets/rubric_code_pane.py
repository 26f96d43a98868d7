"""The Python side of the rubric editor: pick a source file or a criterion's inline code, edit it, and see
its problems inline and in a list (click one to jump to its line)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.contract.reward_signatures import Analysis, Diagnostic
from studio.state.rubric_doc import CodeTarget
from studio.state.rubric_session import RubricSession
from studio.widgets.code_editor import CodeEditor
from studio.widgets.rubric_highlighters import PythonHighlighter

LINE_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class CodeEntry:
    """One thing the editor can show: a source file (shared by the criteria naming it) or inline code."""

    key: str  # "file:PATH" or "inline:CRITERION"
    label: str
    targets: tuple[CodeTarget, ...]
    path: str | None = None

    @property
    def target(self) -> CodeTarget | None:
        return self.targets[0] if self.targets else None


def code_entries(session: RubricSession) -> list[CodeEntry]:
    doc = session.doc
    files: dict[str, list[CodeTarget]] = {}
    inline: list[CodeEntry] = []
    for i in range(len(doc.criteria)):
        target = doc.code_target(i)
        if target is None:
            continue
        if target.where == "file" and target.path is not None:
            files.setdefault(target.path, []).append(target)
        else:
            inline.append(CodeEntry(f"inline:{target.criterion}", target.label, (target,)))
    entries = []
    for path in [*files, *(p for p in doc.sources if p not in files and p.endswith(".py"))]:
        targets = tuple(files.get(path, ()))
        users = ", ".join(t.criterion for t in targets)
        label = f"{path}  ({users})" if users else f"{path}  (imported)"
        entries.append(CodeEntry(f"file:{path}", label, targets, path))
    return entries + inline


class CodePane(QWidget):
    sig_edited = Signal()
    """The user changed the code (the session has it already)."""

    def __init__(self, session: RubricSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.entries: list[CodeEntry] = []
        self.entry: CodeEntry | None = None
        self._loading = False
        self._analyses: dict[CodeTarget, Analysis] = {}

        self.picker = QComboBox()
        self.picker.setToolTip("The file or inline code shown in the editor")
        self.picker.currentIndexChanged.connect(self._picked)
        self.convention = QLabel()
        self.convention.setObjectName("muted")
        title = QLabel("CODE")
        title.setObjectName("sectionTitle")
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(title)
        self.picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.picker.setMinimumContentsLength(16)
        bar.addWidget(self.picker)
        bar.addStretch(1)
        bar.addWidget(self.convention)

        self.editor = CodeEditor()
        self.editor.setObjectName("codeEditor")
        self.highlighter = PythonHighlighter(self.editor.document())
        self.editor.textChanged.connect(self._text_changed)
        self.problems = QListWidget()
        self.problems.setObjectName("problemList")
        self.problems.itemActivated.connect(self._jump)
        self.problems.itemClicked.connect(self._jump)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.editor)
        split.addWidget(self.problems)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([420, 44])
        split.setChildrenCollapsible(False)
        self.split = split

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(split, 1)
        session.sig_loaded.connect(self.refresh_entries)
        session.sig_changed.connect(self._doc_changed)
        self.refresh_entries()

    # ---- entries -----------------------------------------------------------------------------------------
    def refresh_entries(self) -> None:
        """Re-list what can be edited, keeping the current entry when it still exists."""
        keep = self.entry.key if self.entry else None
        self.entries = code_entries(self.session)
        self._loading = True
        self.picker.blockSignals(True)
        self.picker.clear()
        for e in self.entries:
            self.picker.addItem(e.label)
        index = next((i for i, e in enumerate(self.entries) if e.key == keep), 0 if self.entries else -1)
        self.picker.setCurrentIndex(index)
        self.picker.blockSignals(False)
        self._loading = False
        self._show(self.entries[index] if index >= 0 else None)

    def show_criterion(self, row: int, reveal: bool = True) -> None:
        """Follow the table's selection: show the criterion's code (criteria without code change nothing),
        scrolled to its function when `reveal`."""
        target = self.session.doc.code_target(row)
        if target is None:
            return
        key = f"file:{target.path}" if target.where == "file" else f"inline:{target.criterion}"
        index = next((i for i, e in enumerate(self.entries) if e.key == key), -1)
        if index < 0:
            self.refresh_entries()
            index = next((i for i, e in enumerate(self.entries) if e.key == key), -1)
        if index >= 0 and index != self.picker.currentIndex():
            self.picker.setCurrentIndex(index)
        if reveal and target.function:  # show the criterion's own function in a file that holds several
            match = re.search(
                rf"^[ \t]*(?:async\s+)?def\s+{re.escape(target.function)}\b", self.editor.toPlainText(), re.M
            )
            if match:
                line = self.editor.toPlainText().count("\n", 0, match.start()) + 1
                self.editor.go_to(line, 0, focus=False)

    def _picked(self, index: int) -> None:
        if not self._loading:
            self._show(self.entries[index] if 0 <= index < len(self.entries) else None)

    def _show(self, entry: CodeEntry | None) -> None:
        self.entry = entry
        self._loading = True
        try:
            if entry is None:
                self.editor.setPlainText("")
                self.editor.setReadOnly(True)
                self.editor.setPlaceholderText(
                    "No Python in this rubric. Add a 'Python function' criterion (+ Add) to write a reward "
                    "function; built-in checks are edited in the table."
                )
                self.convention.setText("")
            else:
                self.editor.setReadOnly(False)
                text = self._code(entry)
                if text != self.editor.toPlainText():
                    self.editor.setPlainText(text)
        finally:
            self._loading = False
        self.set_analyses(self._analyses)

    def _code(self, entry: CodeEntry) -> str:
        if entry.path is not None:
            return self.session.doc.sources.get(entry.path, "")
        return self.session.doc.code(entry.targets[0]) if entry.targets else ""

    # ---- edits -------------------------------------------------------------------------------------------
    def _text_changed(self) -> None:
        if self._loading or self.entry is None:
            return
        text = self.editor.toPlainText()
        entry = self.entry
        if entry.path is not None:
            self.session.doc.sources[entry.path] = text
        elif entry.target is not None:
            self.session.doc.set_code(entry.target, text)
        self.session.changed("code")
        self.sig_edited.emit()

    def _doc_changed(self, origin: str) -> None:
        if origin == "code":
            return
        # The table or the TOML pane may have added, renamed or re-pointed criteria.
        if code_entries(self.session) != self.entries:
            self.refresh_entries()
        elif self.entry is not None:
            text = self._code(self.entry)
            if text != self.editor.toPlainText():
                self._loading = True
                self.editor.setPlainText(text)
                self._loading = False

    # ---- problems ------------------------------------------------------------------------------------------
    def set_analyses(self, analyses: dict[CodeTarget, Analysis]) -> None:
        """Show the problems of the entry on screen (a file's are those of every function it holds)."""
        self._analyses = analyses
        diagnostics: list[Diagnostic] = []
        styles: list[str] = []
        if self.entry is not None:
            for target in self.entry.targets:
                analysis = analyses.get(target)
                if analysis is None:
                    continue
                for d in analysis.diagnostics:
                    if d not in diagnostics:
                        diagnostics.append(d)
                if analysis.label:
                    styles.append(f"{target.function}: {analysis.label}")
        diagnostics.sort(key=lambda d: (d.line, d.col))
        self.editor.set_diagnostics(diagnostics)
        self.convention.setText("  ·  ".join(styles))
        self.convention.setToolTip("The reward convention each function follows, read from its signature")
        self.problems.clear()
        for d in diagnostics:
            item = QListWidgetItem(f"{'✖' if d.severity == 'error' else '⚠'}  line {d.line}: {d.message}")
            item.setData(LINE_ROLE, (d.line, d.col))
            item.setToolTip(d.message)
            item.setForeground(Qt.GlobalColor.darkRed if d.severity == "error" else Qt.GlobalColor.darkYellow)
            self.problems.addItem(item)
        if not diagnostics and self.entry is not None:
            item = QListWidgetItem("✔  no problems found")
            item.setForeground(Qt.GlobalColor.darkGreen)
            self.problems.addItem(item)

    def _jump(self, item: QListWidgetItem) -> None:
        where = item.data(LINE_ROLE)
        if where:
            self.editor.go_to(*where)
