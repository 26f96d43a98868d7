"""The red-team pane: score cheap cheats on the chosen dataset with `rubric redteam` and show which ones
the rubric pays for (flagged when a cheat's mean total reaches half the reference completions')."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.contract.command_outputs import RedteamOutput
from studio.state.rubric_runner import RubricJob, read_rows
from studio.state.rubric_session import RubricSession
from studio.widgets.code_editor import monospace_font
from studio.widgets.rubric_test_pane import JobStatus, number, short

MAX_ROWS = 200
FLAGGED_BG = QColor("#fed7d7")
CHEATS = {
    "empty": "an empty completion",
    "format_only": "the expected format with nothing in it",
    "echo_prompt": "the prompt repeated back",
    "stuff_answers": "every answer seen in the dataset, stuffed into one completion",
    "pad_to_limit": "filler text padded to the length limit",
    "repeat": "one sentence repeated",
    "judge_injection": "an instruction telling a judge to give the maximum score",
}


class RedTeamPane(QWidget):
    sig_ran = Signal()

    def __init__(self, session: RubricSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.job = RubricJob(self)
        self.report: RedteamOutput | None = None

        self.run_button = QPushButton("Red-team")
        self.run_button.setObjectName("primary")
        self.run_button.setToolTip("Score cheap cheats on the dataset's rows (Ctrl+Shift+Enter)")
        self.run_button.clicked.connect(self.run)
        self.summary = QLabel("Attack the rubric with cheap cheats before spending compute on it.")
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        top = QHBoxLayout()
        top.addWidget(self.run_button)
        top.addWidget(self.summary, 1)
        self.status = JobStatus(self.job)

        self.table = QTableWidget(0, 4)
        self.table.setObjectName("redteamResults")
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setHorizontalHeaderLabels(["Cheat", "Mean total", "Flagged", "Example"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        for col in range(3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._show_example)
        self.example = QPlainTextEdit()
        self.example.setReadOnly(True)
        self.example.setFont(monospace_font(9))
        self.example.setPlaceholderText("Select a cheat to read its example completion.")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(self.example)
        split.setSizes([640, 360])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)
        self.job.sig_started.connect(lambda _k: self.run_button.setEnabled(False))
        self.job.sig_finished.connect(self._finished)
        self.job.sig_failed.connect(self._failed)
        self.job.sig_cancelled.connect(self._cancelled)

    def run(self) -> bool:
        dataset = self.session.dataset
        if dataset is None:
            self.summary.setText(
                "Choose a dataset (top right) to red-team on: the cheats are built from its rows."
            )
            return False
        if self.session.doc.parse_error:
            self.summary.setText(
                html.escape(f"Cannot red-team: the rubric's TOML is {self.session.doc.parse_error}")
            )
            return False
        try:
            rows = read_rows(dataset.path, MAX_ROWS)
        except OSError as exc:
            self.summary.setText(html.escape(f"Cannot read {dataset.path}: {exc}"))
            return False
        if not rows:
            self.summary.setText(html.escape(f"{dataset.path} has no rows to build cheats from."))
            return False
        self.summary.setText(html.escape(f"Red-teaming on {len(rows)} rows of {dataset.name}…"))
        self.job.start_redteam(self.session.doc, rows)
        return True

    def _finished(self, kind: str, report: RedteamOutput) -> None:
        self.run_button.setEnabled(True)
        self.show_report(report, len(self.job.samples))
        self.sig_ran.emit()

    def _failed(self, kind: str, message: str) -> None:
        self.run_button.setEnabled(True)
        self.summary.setText(
            f"<span style='color:#c53030'><b>Red-team did not run:</b> {html.escape(message)}</span>"
        )

    def _cancelled(self, kind: str) -> None:
        self.run_button.setEnabled(True)
        self.summary.setText("Red-team cancelled.")

    def show_report(self, report: RedteamOutput, rows: int) -> None:
        self.report = report
        cheats = report.cheats
        reference = report.reference_mean
        flagged = [c.name for c in report.flagged]
        if reference is None:
            text = (
                f"{rows} rows; none has a <code>reference</code> completion, so nothing can be flagged: "
                "compare the totals yourself."
            )
        else:
            text = (
                f"{rows} rows · reference completions score {reference:.3f} on average; a cheat reaching "
                f"{reference / 2:.3f} is flagged."
            )
        if flagged:
            text += f" <b style='color:#c53030'>Flagged: {html.escape(', '.join(flagged))}</b>"
        elif reference is not None:
            text += " <b style='color:#2f855a'>No cheat pays.</b>"
        self.summary.setText(text)
        self.table.setRowCount(len(cheats))
        for row, c in enumerate(cheats):
            name = c.name
            items = [
                QTableWidgetItem(name),
                QTableWidgetItem(number(c.mean_total)),
                QTableWidgetItem("FLAGGED" if c.flagged else ""),
                QTableWidgetItem(short(c.example, 90) or "(empty)"),
            ]
            items[0].setToolTip(CHEATS.get(name, name))
            items[1].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            items[3].setToolTip(c.example[:2000])
            for col, item in enumerate(items):
                if c.flagged:
                    item.setBackground(QBrush(FLAGGED_BG))
                    if col in (0, 2):
                        font = item.font()
                        font.setBold(True)
                        item.setFont(font)
                self.table.setItem(row, col, item)
        first = next((i for i, c in enumerate(cheats) if c.flagged), 0)
        if cheats:
            self.table.selectRow(first)

    def _show_example(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if len(rows) != 1 or not self.report:
            return
        c = self.report.cheats[rows.pop()]
        verdict = "FLAGGED: the rubric pays for this cheat." if c.flagged else "Not flagged."
        self.example.setPlainText(
            f"{c.name}: {CHEATS.get(c.name, '')}\nmean total {number(c.mean_total)}. {verdict}\n\n"
            f"Example completion:\n{c.example}"
        )
