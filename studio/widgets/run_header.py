"""The top of the run dashboard: which run, its status, progress, rate and ETA, and its controls."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QVBoxLayout, QWidget

from studio.models.runs_model import STATUS_COLORS
from studio.state.studio_state import Progress
from studio.state.workspace import RunRow


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RunHeader(QWidget):
    """Shows a run; the buttons are the dashboard's QActions (so the shortcuts work everywhere)."""

    def __init__(self, actions: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runHeader")
        self.title = QLabel("No run selected")
        self.title.setObjectName("runTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel("")
        self.status.setObjectName("statusPill")
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail = QLabel("")
        self.detail.setObjectName("muted")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFixedHeight(18)
        self.rate = QLabel("")
        self.rate.setObjectName("muted")
        self.rate.setMinimumWidth(220)

        top = QHBoxLayout()
        top.setSpacing(10)
        top.addWidget(self.title)
        top.addWidget(self.status)
        top.addWidget(self.detail, 1)
        for action in actions:
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setObjectName("controlButton")
            top.addWidget(button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.rate)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 6)
        layout.addLayout(top)
        layout.addLayout(bottom)

    def show_run(self, run: RunRow | None, progress: Progress | None, note: str = "") -> None:
        if run is None:
            self.title.setText("No run selected")
            self.status.setVisible(False)
            self.detail.setText(note)
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("")
            self.rate.setText("")
            return
        self.title.setText(f"#{run.id}  {run.name}")
        self.status.setVisible(True)
        self.status.setText(run.status)
        color = STATUS_COLORS.get(run.status, "#4a5568")
        self.status.setStyleSheet(
            f"QLabel#statusPill {{ background: {color}; color: white; border-radius: 8px; padding: 1px 10px; }}"
        )
        self.detail.setText(f"{run.algorithm}" + (f"  ·  {note}" if note else ""))
        total = max(run.max_steps, 1)
        step = max(run.step, progress.step if progress else 0)
        self.progress.setRange(0, total)
        self.progress.setValue(min(step, total))
        self.progress.setFormat(f"step {step} / {run.max_steps}  (%p%)")
        if progress is not None and run.active:
            if progress.phase == "eval":
                self.rate.setText("evaluating on the held-out split…")
            elif progress.steps_per_s:
                self.rate.setText(
                    f"{progress.steps_per_s:.2f} steps/s  ·  ETA {format_duration(progress.eta_s)}"
                )
            else:
                self.rate.setText("measuring speed…")
        elif run.status == "queued":
            self.rate.setText("starting…")
        else:
            self.rate.setText("")
