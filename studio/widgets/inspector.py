"""The rollout inspector (issue 5). Until then, a placeholder that says so.

Issue 5 replaces this class; the main window only relies on ``InspectorView(state)`` being a QWidget.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.state.studio_state import StudioState


class InspectorView(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.label = QLabel()
        self.label.setObjectName("emptyState")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        state.sig_current_run_changed.connect(lambda _run: self._update())
        self._update()

    def _update(self) -> None:
        run = f" for run #{self.state.current_run}" if self.state.current_run is not None else ""
        self.label.setText(
            f"<h3>Rollout inspector{run}</h3><p>Every completion with its per-criterion scores, prompt groups "
            "side by side, filters and full-text search.</p><p><i>Not built yet: it comes in issue 5.</i></p>"
        )
