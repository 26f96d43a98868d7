"""The test pane: pick dataset rows (or type a prompt and completion), run `rubric test` in an engine
subprocess on the editor's current rubric, and read each criterion's score and error per sample."""

from __future__ import annotations

import html
import math
from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.contract.command_outputs import SampleScores
from studio.models.criteria_model import parse_parameters
from studio.state.rubric_runner import RubricJob, make_samples, read_rows, text_of
from studio.state.rubric_session import RubricSession
from studio.state.workspace import DatasetRow

DEFAULT_ROWS = 8
TYPED = "(typed below)"
ERROR_BG = QColor("#fed7d7")
NA_FG = QColor("#a0aec0")


def short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.3f}"


class JobStatus(QWidget):
    """A busy bar with the elapsed time and a Cancel button, shown while an engine job runs."""

    def __init__(self, job: RubricJob, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(10)
        self.label = QLabel()
        self.label.setObjectName("muted")
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop the engine process (Esc)")
        self.cancel.clicked.connect(job.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.label)
        layout.addWidget(self.cancel)
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._tick)
        job.sig_started.connect(self._started)
        for sig in (job.sig_finished, job.sig_failed):
            sig.connect(lambda *_: self._stopped())
        job.sig_cancelled.connect(lambda *_: self._stopped())
        self.setVisible(False)

    def _started(self, kind: str) -> None:
        self.setVisible(True)
        self._timer.start()
        self._tick()

    def _tick(self) -> None:
        self.label.setText(f"{self.job.kind}: running in the engine… {self.job.elapsed_s:.1f} s")

    def _stopped(self) -> None:
        self._timer.stop()
        self.setVisible(False)


class TestPane(QWidget):
    sig_ran = Signal()
    """A test finished and its results are on screen."""

    def __init__(self, session: RubricSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.job = RubricJob(self)
        self.rows: list[dict[str, Any]] = []
        self.results: list[SampleScores] = []
        self.criteria: list[str] = []

        # ---- samples -----------------------------------------------------------------------------------
        self.from_dataset = QRadioButton("Dataset rows")
        self.from_typed = QRadioButton("Typed sample")
        group = QButtonGroup(self)
        group.addButton(self.from_dataset)
        group.addButton(self.from_typed)
        self.from_dataset.setChecked(True)
        self.from_dataset.toggled.connect(self._mode_changed)
        modes = QHBoxLayout()
        modes.addWidget(self.from_dataset)
        modes.addWidget(self.from_typed)
        modes.addStretch(1)

        self.completion_from = QComboBox()
        self.completion_from.setToolTip(
            "Which column holds each row's completion, or the completion typed below"
        )
        self.completion_from.currentTextChanged.connect(self._completion_source_changed)
        self.row_list = QListWidget()
        self.row_list.setObjectName("sampleRows")
        self.row_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.row_list.setToolTip("Ctrl+click or Shift+click to pick rows")
        self.row_completion = QLineEdit()
        self.row_completion.setPlaceholderText("the completion to score for every picked row")
        self.row_completion.setVisible(False)
        rows_page = QWidget()
        rows_form = QFormLayout(rows_page)
        rows_form.setContentsMargins(0, 0, 0, 0)
        rows_form.addRow("Completion", self.completion_from)
        rows_form.addRow(self.row_completion)
        rows_form.addRow(self.row_list)

        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("the prompt, e.g. 2+3=")
        self.completion = QPlainTextEdit()
        self.completion.setPlaceholderText("the completion to score, e.g. <answer>5</answer>")
        self.columns = QLineEdit()
        self.columns.setPlaceholderText('dataset columns as TOML, e.g. answer = "5"')
        typed_page = QWidget()
        typed_form = QFormLayout(typed_page)
        typed_form.setContentsMargins(0, 0, 0, 0)
        typed_form.addRow("Prompt", self.prompt)
        typed_form.addRow("Completion", self.completion)
        typed_form.addRow("Columns", self.columns)
        self.stack = QStackedWidget()
        self.stack.addWidget(rows_page)
        self.stack.addWidget(typed_page)

        self.run_button = QPushButton("Run test")
        self.run_button.setObjectName("primary")
        self.run_button.setToolTip("Score the samples with the rubric in the editor (Ctrl+Enter)")
        self.run_button.clicked.connect(self.run)
        self.status = JobStatus(self.job)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addLayout(modes)
        lv.addWidget(self.stack, 1)
        lv.addWidget(self.run_button)

        # ---- results -----------------------------------------------------------------------------------
        self.message = QLabel("Pick rows or type a sample, then Run test (Ctrl+Enter).")
        self.message.setObjectName("muted")
        self.message.setTextFormat(Qt.TextFormat.RichText)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget()
        self.table.setObjectName("testResults")
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.itemSelectionChanged.connect(self._show_details)
        self.details = QLabel()
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.message)
        rv.addWidget(self.status)
        rv.addWidget(self.table, 1)
        rv.addWidget(self.details)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([330, 700])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(split)

        self.job.sig_started.connect(lambda _k: self.run_button.setEnabled(False))
        self.job.sig_finished.connect(self._finished)
        self.job.sig_failed.connect(self._failed)
        self.job.sig_cancelled.connect(self._cancelled)
        session.sig_dataset_changed.connect(self.set_dataset)
        self.set_dataset(session.dataset)

    # ---- samples ---------------------------------------------------------------------------------------
    def _mode_changed(self, from_dataset: bool) -> None:
        self.stack.setCurrentIndex(0 if from_dataset else 1)

    def _completion_source_changed(self, text: str) -> None:
        self.row_completion.setVisible(text == TYPED)

    def set_dataset(self, dataset: DatasetRow | None) -> None:
        self.rows = []
        if dataset is not None:
            try:
                self.rows = read_rows(dataset.path)
            except OSError as exc:
                self.message.setText(html.escape(f"Cannot read {dataset.path}: {exc}"))
        self.row_list.clear()
        for i, row in enumerate(self.rows):
            extras = ", ".join(f"{k}={short(text_of(v), 24)}" for k, v in row.items() if k != "prompt")
            item = QListWidgetItem(f"#{i}  {short(text_of(row.get('prompt')), 40)}   {extras}")
            item.setToolTip(text_of(row.get("prompt")))
            self.row_list.addItem(item)
        for i in range(min(DEFAULT_ROWS, len(self.rows))):
            self.row_list.item(i).setSelected(True)
        if self.rows:
            self.row_list.setCurrentRow(0, QItemSelectionModel.SelectionFlag.NoUpdate)
        columns = sorted({k for row in self.rows for k in row if k != "prompt"})
        self.completion_from.clear()
        preferred = [c for c in ("reference", "completion", "solution", "answer") if c in columns]
        self.completion_from.addItems([*preferred, *(c for c in columns if c not in preferred), TYPED])
        self.from_dataset.setEnabled(bool(self.rows))
        (self.from_dataset if self.rows else self.from_typed).setChecked(True)

    def picked_rows(self) -> list[int]:
        return sorted(self.row_list.row(item) for item in self.row_list.selectedItems())

    def samples(self) -> list[dict[str, Any]]:
        """The samples to score. Raises ValueError with a message when there are none or input is bad."""
        if self.from_typed.isChecked():
            sample: dict[str, Any] = parse_parameters(self.columns.text())
            sample["prompt"] = self.prompt.text()
            sample["completion"] = self.completion.toPlainText()
            return [sample]
        picked = [self.rows[i] for i in self.picked_rows()]
        if not picked:
            raise ValueError("pick at least one row (click, Ctrl+click or Shift+click), or type a sample")
        column = self.completion_from.currentText()
        if column == TYPED:
            return make_samples(picked, None, self.row_completion.text())
        return make_samples(picked, column)

    # ---- running ---------------------------------------------------------------------------------------
    def run(self) -> bool:
        """Start `rubric test` on the editor's rubric. False (with the reason shown) when it cannot."""
        try:
            samples = self.samples()
        except ValueError as exc:
            self.message.setText(html.escape(f"Cannot test: {exc}"))
            return False
        if self.session.doc.parse_error:
            self.message.setText(
                html.escape(f"Cannot test: the rubric's TOML is {self.session.doc.parse_error}")
            )
            return False
        self.message.setText(f"Testing {len(samples)} sample{'s' if len(samples) != 1 else ''}…")
        self.job.start_test(self.session.doc, samples)
        return True

    def _finished(self, kind: str, results: list[SampleScores]) -> None:
        self.run_button.setEnabled(True)
        self.results = list(results)
        self.show_results(self.job.samples, self.results)
        errors = sum(len(r.errors) for r in self.results)
        mean = sum(r.total or 0.0 for r in self.results) / max(1, len(self.results))
        note = f"; {errors} error{'s' if errors != 1 else ''} (red cells)" if errors else ""
        self.message.setText(
            f"{len(self.results)} sample{'s' if len(self.results) != 1 else ''} scored in "
            f"{self.job.elapsed_s:.1f} s · mean total {mean:.3f}{note}"
        )
        self.sig_ran.emit()

    def _failed(self, kind: str, message: str) -> None:
        self.run_button.setEnabled(True)
        self.message.setText(
            f"<span style='color:#c53030'><b>The test did not run:</b> {html.escape(message)}</span>"
        )

    def _cancelled(self, kind: str) -> None:
        self.run_button.setEnabled(True)
        self.message.setText("Test cancelled.")

    def show_results(self, samples: list[dict[str, Any]], results: list[SampleScores]) -> None:
        names: list[str] = []
        for r in results:
            for name in [*r.scores, *r.errors]:
                if name not in names and name != "total":
                    names.append(name)
        self.criteria = names
        weights = {str(c.get("name")): c.get("weight", 1.0) for c in self.session.doc.criteria}
        headers = ["#", "Prompt", "Completion", "Total", *(f"{n} ×{weights.get(n, '?')}" for n in names)]
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setRowCount(len(results))
        self.table.setHorizontalHeaderLabels(headers)
        for row, r in enumerate(results):
            sample = samples[r.index] if r.index < len(samples) else {}
            cells = [
                str(r.index),
                short(text_of(sample.get("prompt")), 30),
                short(text_of(sample.get("completion")), 40),
                number(r.total),
            ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 1 or col == 2:
                    item.setToolTip(text_of(sample.get("prompt" if col == 1 else "completion")))
                if col == 3:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                    if "total" in r.errors:
                        item.setBackground(QBrush(ERROR_BG))
                        item.setToolTip(r.errors["total"])
                self.table.setItem(row, col, item)
            for k, name in enumerate(names):
                error = r.errors.get(name)
                value = r.scores.get(name)
                item = QTableWidgetItem("error" if error else number(value))
                if error:
                    item.setBackground(QBrush(ERROR_BG))
                    item.setToolTip(error)
                elif value is None:
                    item.setForeground(QBrush(NA_FG))
                    item.setToolTip("not applicable (None)")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, 4 + k, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        if results:
            self.table.selectRow(0)

    def _show_details(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if len(rows) != 1 or not self.results:
            self.details.setText("")
            return
        r = self.results[rows.pop()]
        errors = r.errors
        if not errors:
            self.details.setText(f"<span style='color:#2f855a'>Sample #{r.index}: no errors.</span>")
            return
        lines = [f"<b>{html.escape(name)}</b>: {html.escape(message)}" for name, message in errors.items()]
        self.details.setText("<span style='color:#9b2c2c'>" + "<br>".join(lines) + "</span>")
