"""The rubric editor (issue 5). Until then, a read-only view of the selected rubric version.

Issue 5 replaces this class; the main window only relies on ``RubricEditorView(state)`` being a QWidget.
"""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from studio.state.studio_state import StudioState


class RubricEditorView(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.label = QLabel(
            "<h3>Rubric editor</h3><p>Criteria table, Python editor with validation as you type, a test pane "
            "and red-teaming. <i>Not built yet: it comes in issue 5.</i> Meanwhile, pick a rubric version in the "
            "sidebar to read it.</p>"
        )
        self.label.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.text.setFont(mono)
        self.text.setPlaceholderText("No rubric version selected.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.label)
        layout.addWidget(self.text, 1)
        state.sig_show_rubric_version.connect(self.show_version)
        state.sig_workspace_changed.connect(self.text.clear)

    def show_version(self, version_id: int) -> None:
        if self.state.db is None:
            return
        toml, sources = self.state.db.rubric_version_text(version_id)
        parts = [toml.rstrip()]
        for name, content in sources.items():
            parts.append(f"\n# ---- {name} " + "-" * max(4, 60 - len(name)) + "\n" + content.rstrip())
        self.text.setPlainText("\n".join(parts))
