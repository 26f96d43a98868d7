"""A red banner that says what went wrong, with the traceback (or the engine log's end) on demand."""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget


class ErrorBanner(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setObjectName("errorText")
        self.toggle = QPushButton("Show traceback")
        self.toggle.setCheckable(True)
        self.toggle.toggled.connect(self._toggled)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSize(9)
        self.details.setFont(mono)
        self.details.setMaximumHeight(220)
        self.details.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.message, 1)
        row.addWidget(self.toggle)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addLayout(row)
        layout.addWidget(self.details)
        self.setVisible(False)

    def show_error(self, message: str, details: str = "", title: str = "The run failed") -> None:
        self.message.setText(f"<b>{title}.</b> {_escape(message)}")
        self.details.setPlainText(details.strip())
        has_details = bool(details.strip())
        self.toggle.setVisible(has_details)
        self.toggle.setText("Show traceback" if "Traceback" in details else "Show engine log")
        self.toggle.setChecked(has_details and "Traceback" in details)
        self.details.setVisible(self.toggle.isChecked())
        self.setVisible(True)

    def clear(self) -> None:
        self.setVisible(False)
        self.details.clear()

    def _toggled(self, on: bool) -> None:
        self.details.setVisible(on)
        if on:
            self.details.verticalScrollBar().setValue(self.details.verticalScrollBar().maximum())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
