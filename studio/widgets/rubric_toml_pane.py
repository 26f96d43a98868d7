"""The rubric's TOML, live: it follows every edit in the table and the code editor, and edits typed here
flow back into the table once they parse (a parse error is marked at its line)."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from engine.contract.reward_signatures import Diagnostic
from studio.state.rubric_doc import toml_error_line
from studio.state.rubric_session import RubricSession
from studio.widgets.code_editor import CodeEditor
from studio.widgets.rubric_highlighters import TomlHighlighter

DEBOUNCE_MS = 300


class TomlPane(QWidget):
    def __init__(self, session: RubricSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._loading = False
        self.editor = CodeEditor()
        self.editor.setObjectName("tomlEditor")
        self.highlighter = TomlHighlighter(self.editor.document())
        self.hint = QLabel(
            "The rubric file as it will be saved. Edit it here or in the table; each follows the other."
        )
        self.hint.setObjectName("muted")
        self.hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.hint)
        layout.addWidget(self.editor, 1)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.flush)
        self.editor.textChanged.connect(self._typed)
        session.sig_loaded.connect(self.reload)
        session.sig_changed.connect(self._changed)
        self.reload()

    def _changed(self, origin: str) -> None:
        if origin != "toml":
            self.reload()

    def reload(self) -> None:
        text = self.session.doc.text
        if text == self.editor.toPlainText():
            return
        scroll = self.editor.verticalScrollBar().value()
        self._loading = True
        self.editor.setPlainText(text)
        self._loading = False
        self.editor.verticalScrollBar().setValue(scroll)
        self._mark()

    def _typed(self) -> None:
        if not self._loading:
            self._timer.start()

    def flush(self) -> None:
        """Hand pending typing to the session now (before a save or a test)."""
        self._timer.stop()
        text = self.editor.toPlainText()
        if text != self.session.doc.text:
            self.session.set_toml(text)
        self._mark()

    def _mark(self) -> None:
        error = self.session.doc.parse_error
        if error is None:
            self.editor.set_diagnostics([])
            return
        line = toml_error_line(error) or 1
        self.editor.set_diagnostics([Diagnostic(line, 0, error)])
