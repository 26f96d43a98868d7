"""The dashboard's alert banner: the run's first unacknowledged training-time alert (kind, step, message),
with "Show examples" (the inspector, filtered to the rollouts that show it) and "Acknowledge"."""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from studio.state.alerts import AlertRow


class AlertBanner(QFrame):
    sig_show_examples = Signal(object)
    """The AlertRow whose example rollouts to open in the inspector."""
    sig_acknowledge = Signal(object)
    """The AlertRow to mark acknowledged."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alertBanner")
        self.alert: AlertRow | None = None
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.RichText)
        self.examples = QPushButton("Show examples")
        self.examples.setToolTip("Open the rollouts that show this alert in the inspector")
        self.examples.clicked.connect(lambda: self.alert and self.sig_show_examples.emit(self.alert))
        self.ack = QPushButton("Acknowledge")
        self.ack.setToolTip("Mark this alert seen: it leaves the banner and its marker turns grey")
        self.ack.clicked.connect(lambda: self.alert and self.sig_acknowledge.emit(self.alert))
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 6, 12, 6)
        row.addWidget(self.message, 1)
        row.addWidget(self.examples)
        row.addWidget(self.ack)
        self.setVisible(False)

    def set_alerts(self, alerts: Sequence[AlertRow]) -> None:
        """Show the first unacknowledged alert (by step) and how many more wait; hide when none does."""
        waiting = [a for a in alerts if not a.acknowledged]
        self.alert = waiting[0] if waiting else None
        if self.alert is None:
            self.setVisible(False)
            return
        a = self.alert
        more = f" <span style='color:#718096'>(+{len(waiting) - 1} more)</span>" if len(waiting) > 1 else ""
        self.message.setText(
            f"<b>⚠ {html.escape(a.title)}</b> at step {a.step}"
            f" <span style='color:#718096'>({html.escape(a.severity)})</span>{more}<br>{html.escape(a.message)}"
        )
        self.setProperty("severity", a.severity)
        self.setStyleSheet(
            "#alertBanner { background: %s; border: 1px solid %s; border-radius: 4px; }"
            % (("#fff5f5", "#feb2b2") if a.severity == "critical" else ("#fffaf0", "#fbd38d"))
        )
        count = len(a.examples)
        self.examples.setText(f"Show examples ({count})" if count else "Show examples")
        self.examples.setEnabled(count > 0)
        self.setVisible(True)
