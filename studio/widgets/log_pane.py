"""The engine's stderr for the run on screen, tailed from its log file beside the workspace."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QFont, QTextCursor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from engine.contract.protocol import Event, RunStarted
from studio.engine_client import EngineProcess
from studio.state.studio_state import StudioState

INITIAL_BYTES = 64_000
TAIL_MS = 250


class LogPane(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.path: Path | None = None
        self._offset = 0
        self.title = QLabel("Engine log")
        self.title.setObjectName("muted")
        self.open_button = QPushButton("Open file")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._open_file)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(5000)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSize(9)
        self.text.setFont(mono)
        self.text.setPlaceholderText("The engine's log (stderr) of the selected run appears here.")
        row = QHBoxLayout()
        row.addWidget(self.title, 1)
        row.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addLayout(row)
        layout.addWidget(self.text)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.poll)
        self.timer.start(TAIL_MS)
        state.sig_current_run_changed.connect(self._follow_run)
        state.sig_launched.connect(self._follow_process)
        state.sig_engine_event.connect(self._on_event)
        state.engines.sig_stdout_text.connect(self._on_stdout_text)
        state.sig_workspace_changed.connect(lambda: self.follow(None))

    def _follow_run(self, run_id: int | None) -> None:
        if run_id is None:
            return  # keep showing a launch that has no run yet
        path = self.state.log_path(run_id)
        self.follow(
            path,
            f"Engine log · run #{run_id}"
            if path
            else f"Run #{run_id} has no engine log here "
            "(it was started from a terminal, or on another machine).",
        )

    def _follow_process(self, proc: EngineProcess) -> None:
        self.follow(proc.log_path, f"Engine log · {proc.name or proc.kind}")

    def _on_event(self, proc: EngineProcess, event: Event) -> None:
        renamed = self.path is not None and self.path.name.startswith("launch-") and not self.path.exists()
        if isinstance(event, RunStarted) and renamed and proc.log_path != self.path:
            self.path = proc.log_path  # the launch log was renamed to run-<id>.log; same file, same offset

    def _on_stdout_text(self, proc: EngineProcess, text: str) -> None:
        if proc.log_path == self.path:
            self.text.appendPlainText(f"[stdout] {text}")

    def follow(self, path: Path | None, title: str = "Engine log") -> None:
        if path == self.path and path is not None:
            return
        self.path = path
        self.title.setText(title)
        self.text.clear()
        self._offset = 0
        self.open_button.setEnabled(path is not None)
        if path is not None and path.exists():
            size = path.stat().st_size
            self._offset = max(0, size - INITIAL_BYTES)
        self.poll()

    def poll(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if size < self._offset:  # truncated or replaced
                    self._offset = 0
                if size == self._offset:
                    return
                f.seek(self._offset)
                data = f.read(size - self._offset)
                self._offset = size
        except OSError:
            return
        text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
        # tqdm redraws a line with \r; keep only the last drawing of each line.
        lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
        bar = self.text.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        cursor = self.text.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText("\n".join(lines))
        if at_end:
            bar.setValue(bar.maximum())

    def _open_file(self) -> None:
        if self.path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.path)))
