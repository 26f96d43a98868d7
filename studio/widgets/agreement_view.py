"""The inspector's "Agreement" dialog: how well each criterion of a run agrees with the thumbs you gave
its rollouts (accuracy, Cohen's kappa, Spearman, the confusion matrix), and the rollouts where they
disagree, one click from the inspector. See docs/evaluation.md.

The figures come from studio.state.label_agreement (engine/contract/agreement.py underneath, the module
`rl-studio-engine rubric calibrate` uses). Reading is a few hundred labelled rows: done on the GUI thread.
"""

from __future__ import annotations

import sqlite3

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.contract.agreement import DEFAULT_THRESHOLD, Agreement
from studio.state.label_agreement import LabelledRollout, run_agreement

SUMMARY_COLUMNS = ("Criterion", "Rows", "Accuracy", "Kappa", "Spearman", "Disagree")
ROLLOUT_COLUMNS = ("Rollout", "Step", "Label", "Score", "Completion")


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _item(text: str, align_right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().hide()
    table.setAlternatingRowColors(True)
    return table


class AgreementView(QWidget):
    """Per criterion agreement with a run's labels; the selected criterion's confusion matrix and
    disagreeing rollouts."""

    sig_select_rollout = Signal(int)
    """A disagreeing rollout was clicked: select it in the inspector."""
    sig_show_rollouts = Signal(list)
    """Show these rollout ids (a criterion's disagreements) in the inspector's table."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conn: sqlite3.Connection | None = None
        self.run_id: int | None = None
        self.results: list[Agreement] = []
        self.rows: dict[int, LabelledRollout] = {}

        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(-1e6, 1e6)
        self.threshold.setDecimals(2)
        self.threshold.setSingleStep(0.1)
        self.threshold.setValue(DEFAULT_THRESHOLD)
        self.threshold.setToolTip("A score (or total) at or above this counts as the criterion saying 'good'")
        self.threshold.valueChanged.connect(lambda _v: self.refresh())
        self.headline = QLabel()
        self.headline.setObjectName("muted")
        self.headline.setWordWrap(True)

        self.summary = _table(SUMMARY_COLUMNS)
        self.summary.setObjectName("agreementSummary")
        self.summary.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.summary.itemSelectionChanged.connect(self._criterion_changed)

        self.confusion = QTableWidget(2, 2)
        self.confusion.setObjectName("confusionMatrix")
        self.confusion.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.confusion.setMaximumHeight(110)
        self.confusion_title = QLabel()
        self.disagreements = _table(ROLLOUT_COLUMNS)
        self.disagreements.setObjectName("disagreements")
        self.disagreements.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.disagreements.cellClicked.connect(self._rollout_clicked)
        self.disagreements.cellActivated.connect(self._rollout_clicked)
        self.show_all = QPushButton("Show them in the inspector")
        self.show_all.setToolTip(
            "Filter the inspector's table to the rollouts where this criterion disagrees"
        )
        self.show_all.clicked.connect(self._show_all)

        top = QHBoxLayout()
        top.addWidget(QLabel("Says 'good' at ≥"))
        top.addWidget(self.threshold)
        top.addWidget(self.headline, 1)
        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.confusion_title)
        detail_layout.addWidget(self.confusion)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Where it disagrees with you (click one to select it):"), 1)
        bar.addWidget(self.show_all)
        detail_layout.addLayout(bar)
        detail_layout.addWidget(self.disagreements, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.summary)
        splitter.addWidget(detail)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)

    # ---- data -------------------------------------------------------------------------------------------
    def set_run(self, conn: sqlite3.Connection | None, run_id: int | None) -> None:
        self.conn, self.run_id = conn, run_id
        self.refresh()

    def refresh(self) -> None:
        rows: list[LabelledRollout] = []
        self.results = []
        if self.conn is not None and self.run_id is not None:
            self.results, rows = run_agreement(self.conn, self.run_id, self.threshold.value())
        self.rows = {r.id: r for r in rows}
        good = sum(r.label for r in rows)
        if not rows:
            self.headline.setText(
                "No rollout of this run is labelled yet. Give rollouts a thumbs up (+) or down (-) in the "
                "inspector, then come back: each criterion is compared with your labels."
            )
        else:
            self.headline.setText(f"{len(rows)} labelled rollouts: {good} good, {len(rows) - good} bad.")
        selected = self.current_criterion()
        self.summary.setRowCount(len(self.results))
        for i, a in enumerate(self.results):
            cells = [a.criterion, str(a.n), _figure(a.accuracy), _figure(a.kappa), _figure(a.spearman)]
            cells.append(str(len(a.disagreements)))
            for col, text in enumerate(cells):
                self.summary.setItem(i, col, _item(text, align_right=col > 0))
            rows_cell = self.summary.item(i, 1)
            if a.skipped and rows_cell is not None:
                rows_cell.setToolTip(f"{a.skipped} labelled rollouts have no score for it")
        names = [a.criterion for a in self.results]
        if names:
            self.summary.selectRow(names.index(selected) if selected in names else 0)
        self._criterion_changed()

    def current_criterion(self) -> str | None:
        row = self.summary.currentRow()
        return self.results[row].criterion if 0 <= row < len(self.results) else None

    def current(self) -> Agreement | None:
        row = self.summary.currentRow()
        return self.results[row] if 0 <= row < len(self.results) else None

    # ---- the selected criterion -----------------------------------------------------------------------
    def _criterion_changed(self) -> None:
        a = self.current()
        self.disagreements.setRowCount(0)
        self.confusion.clearContents()
        self.show_all.setEnabled(bool(a and a.disagreements))
        if a is None:
            self.confusion_title.setText("")
            return
        names = ["bad", "good"]
        self.confusion_title.setText(
            f"{a.criterion}: rows are your labels, columns what it says (score ≥ {a.threshold:g} is good)"
        )
        self.confusion.setHorizontalHeaderLabels([f"says {n}" for n in names])
        self.confusion.setVerticalHeaderLabels([f"you: {n}" for n in names])
        for i, row in enumerate(a.confusion):
            for j, count in enumerate(row):
                self.confusion.setItem(i, j, _item(str(count), align_right=True))
        self.disagreements.setRowCount(len(a.disagreements))
        for i, rid in enumerate(a.disagreements):
            r = self.rows[rid]
            score = r.reward if a.criterion == "total" else r.scores.get(a.criterion)
            cells = [str(rid), str(r.step), "good" if r.label else "bad", _figure(score), r.preview]
            for col, text in enumerate(cells):
                item = _item(text, align_right=col in (0, 1, 3))
                item.setData(Qt.ItemDataRole.UserRole, rid)
                self.disagreements.setItem(i, col, item)

    def _rollout_clicked(self, row: int, _col: int) -> None:
        item = self.disagreements.item(row, 0)
        if item is not None:
            self.sig_select_rollout.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def _show_all(self) -> None:
        a = self.current()
        if a and a.disagreements:
            self.sig_show_rollouts.emit([int(x) for x in a.disagreements])


class AgreementDialog(QDialog):
    """The agreement view in a window of its own, opened from the inspector (non-modal: clicking a
    disagreeing rollout selects it in the inspector behind)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Agreement with your labels")
        self.setModal(False)
        self.resize(760, 560)
        self.view = AgreementView(self)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(close)
        layout.addLayout(row)
