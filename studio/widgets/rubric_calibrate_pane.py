"""The rubric editor's Calibrate pane: score a human-labelled set with the rubric (`rl-studio-engine rubric
calibrate --json`, through studio.engine_client.start_engine like every engine job) and show each
criterion's agreement with the labels before and after an edit, side by side. Edit a judge's prompt,
score again, and keep the edit only if the judge agrees with people better. See docs/evaluation.md.

Before is the stored version the editor opened (when the document differs from it), else the previous
score of this pane; after is the document as it is now. The labels file is JSONL: prompt, completion,
the columns the rubric reads, and `label` (true/false, an integer grade, or a number).
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.contract.agreement import Agreement
from engine.contract.command_outputs import CalibrateOutput
from studio.state import rubric_store
from studio.state.rubric_doc import RubricDocument
from studio.state.rubric_runner import RubricJob, read_rows
from studio.state.rubric_session import RubricSession
from studio.widgets.rubric_test_pane import JobStatus

MAX_LABELLED = 500
FIGURES = ("accuracy", "kappa", "spearman")
COLUMNS = (
    "Criterion",
    "Rows",
    "Accuracy before",
    "Accuracy after",
    "Kappa before",
    "Kappa after",
    "Spearman before",
    "Spearman after",
    "Disagree before → after",
)
BETTER = QColor("#c6f6d5")
WORSE = QColor("#fed7d7")


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


class CalibratePane(QWidget):
    sig_ran = Signal()

    def __init__(self, session: RubricSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.job = RubricJob(self)
        self.before: CalibrateOutput | None = None
        self.after: CalibrateOutput | None = None
        self.before_label = ""
        self._queue: list[tuple[str, RubricDocument]] = []
        self._rows: list[dict[str, object]] = []

        self.labels_edit = QLineEdit()
        self.labels_edit.setPlaceholderText("labelled set: JSONL with prompt, completion, columns and label")
        self.labels_edit.setToolTip(
            "Each line: 'prompt', 'completion', the columns the rubric reads, and the human 'label' "
            "(true/false, an integer grade, or a number)"
        )
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.run_button = QPushButton("Score before and after")
        self.run_button.setObjectName("primary")
        self.run_button.setToolTip(
            "Score the labelled set with the stored version and with your edit, and compare each criterion's "
            "agreement with the labels"
        )
        self.run_button.clicked.connect(self.run)
        self.summary = QLabel(
            "Edit a criterion (a judge's prompt, a threshold), then score a labelled set: each criterion's "
            "agreement with people, before and after the edit."
        )
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)
        self.status = JobStatus(self.job)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("calibrationTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

        top = QHBoxLayout()
        top.addWidget(QLabel("Labels"))
        top.addWidget(self.labels_edit, 1)
        top.addWidget(browse)
        top.addWidget(self.run_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

        self.job.sig_finished.connect(self._finished)
        self.job.sig_failed.connect(self._failed)
        self.job.sig_cancelled.connect(lambda _k: self._stop("Cancelled."))

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Labelled set", "", "JSON lines (*.jsonl *.json);;All files (*)"
        )
        if path:
            self.labels_edit.setText(path)

    # ---- running --------------------------------------------------------------------------------------
    def run(self) -> bool:
        """Score the labelled set: the stored version first when the document differs from it, then the
        document. False when there is nothing to score."""
        path = Path(self.labels_edit.text().strip()).expanduser()
        if not path.is_file():
            self.summary.setText("Pick a labelled set first (a JSONL file with a 'label' on each line).")
            return False
        try:
            self._rows = [r for r in read_rows(path, MAX_LABELLED) if "label" in r]
        except OSError as exc:
            self.summary.setText(f"Cannot read {html.escape(str(path))}: {html.escape(str(exc))}")
            return False
        if not self._rows:
            self.summary.setText(f"{html.escape(path.name)} has no row with a 'label'.")
            return False
        self._queue = []
        stored = self._stored_document()
        if stored is not None:
            self.before, self.before_label = (
                None,
                f"stored {self.session.base.label if self.session.base else ''}",
            )
            self._queue.append(("before", stored))
        else:
            self.before, self.before_label = self.after, "previous score"
        self._queue.append(("after", self.session.doc))
        self.run_button.setEnabled(False)
        self._next()
        return True

    def _stored_document(self) -> RubricDocument | None:
        base, db = self.session.base, self.session.state.db
        if base is None or db is None or not self.session.dirty:
            return None
        stored = rubric_store.load(db, base.id)
        return stored.document() if stored is not None else None

    def _next(self) -> None:
        slot, doc = self._queue[0]
        self.summary.setText(
            f"Scoring {len(self._rows)} labelled rows ({'stored version' if slot == 'before' else 'your edit'})…"
        )
        self.job.start_calibrate(doc, self._rows)

    def _finished(self, kind: str, result: object) -> None:
        if kind != "calibrate" or not self._queue or not isinstance(result, CalibrateOutput):
            return
        slot, _doc = self._queue.pop(0)
        if slot == "before":
            self.before = result
        else:
            self.after = result
        if self._queue:
            self._next()
            return
        self.run_button.setEnabled(True)
        self._show()
        self.sig_ran.emit()

    def _failed(self, kind: str, message: str) -> None:
        if kind == "calibrate":
            self._stop(f"<span style='color:#c53030'>{html.escape(message)}</span>")

    def _stop(self, text: str) -> None:
        self._queue = []
        self.run_button.setEnabled(True)
        self.summary.setText(text)

    # ---- showing --------------------------------------------------------------------------------------
    def _show(self) -> None:
        after = self.after.by_name() if self.after else {}
        before = self.before.by_name() if self.before else {}
        names = list(after) + [n for n in before if n not in after]
        self.table.setRowCount(len(names))
        for row, name in enumerate(names):
            a, b = after.get(name), before.get(name)
            self._cell(row, 0, name)
            self._cell(row, 1, str(a.n if a else b.n if b else 0))
            for k, figure in enumerate(FIGURES):
                old = getattr(b, figure) if b else None
                new = getattr(a, figure) if a else None
                self._cell(row, 2 + 2 * k, _figure(old))
                self._cell(row, 3 + 2 * k, _figure(new), _change(old, new))
            self._cell(row, 8, f"{_count(b)} → {_count(a)}")
        rows = self.after.rows if self.after else 0
        kind = self.after.label_kind if self.after else ""
        where = f"before: {self.before_label}" if self.before else "no earlier score to compare with"
        errors = self.after.errors if self.after else {}
        text = f"{rows} labelled rows ({kind} labels); {where}; after: the rubric as edited."
        if errors:
            text += " Errors (those rows are left out): " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        self.summary.setText(html.escape(text))

    def _cell(self, row: int, col: int, text: str, background: QColor | None = None) -> None:
        item = QTableWidgetItem(text)
        if col > 0:
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if background is not None:
            item.setBackground(QBrush(background))
        self.table.setItem(row, col, item)

    def figures(self, name: str) -> dict[str, str]:
        """The row of one criterion as shown ({column: text}), for tests and scripts."""
        for row in range(self.table.rowCount()):
            cells = [self.table.item(row, c) for c in range(len(COLUMNS))]
            texts = [cell.text() if cell is not None else "" for cell in cells]
            if texts[0] == name:
                return dict(zip(COLUMNS, texts, strict=True))
        return {}


def _count(a: Agreement | None) -> str:
    return "–" if a is None else str(len(a.disagreements))


def _change(old: float | None, new: float | None) -> QColor | None:
    if old is None or new is None or abs(new - old) < 1e-9:
        return None
    return BETTER if new > old else WORSE
