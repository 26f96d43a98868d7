"""The inspector's "Prompts" tab: every training prompt the run sampled, solved, learning or never solved
(engine/contract/passk.py's rule over the recorded rollouts, studio.state.label_agreement), filtered by
standing. Activating a prompt shows its rollouts in the inspector's table, its latest group selected.
"""

from __future__ import annotations

import sqlite3

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.contract.passk import LEARNING, NEVER_SOLVED, SOLVED
from studio.state.label_agreement import PromptStanding, prompt_standings, run_pass_rule

STANDINGS = ("all", SOLVED, LEARNING, NEVER_SOLVED)
COLUMNS = ("#", "Prompt", "Standing", "Pass rate", "Completions", "Latest step")


class PromptStatusView(QWidget):
    sig_show_prompt = Signal(int, int)
    """(prompt_index, the group id of its latest group): show that prompt's rollouts in the inspector."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conn: sqlite3.Connection | None = None
        self.run_id: int | None = None
        self.standings: list[PromptStanding] = []
        self.stale = True
        self.standing = QComboBox()
        for name in STANDINGS:
            self.standing.addItem("All prompts" if name == "all" else name.capitalize(), name)
        self.standing.currentIndexChanged.connect(lambda _i: self._fill())
        self.summary = QLabel()
        self.summary.setObjectName("muted")
        refresh = QPushButton("Refresh")
        refresh.setToolTip("Read the run's latest rollouts again")
        refresh.clicked.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("promptStandings")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.cellActivated.connect(self._activated)
        self.table.cellDoubleClicked.connect(self._activated)
        top = QHBoxLayout()
        top.addWidget(self.standing)
        top.addWidget(self.summary, 1)
        top.addWidget(refresh)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)

    def set_run(self, conn: sqlite3.Connection | None, run_id: int | None) -> None:
        self.conn, self.run_id = conn, run_id
        self.stale = True
        if self.isVisible():
            self.refresh()

    def showEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().showEvent(event)
        if self.stale:
            self.refresh()

    def refresh(self) -> None:
        self.stale = False
        self.standings = []
        rule_text = ""
        if self.conn is not None and self.run_id is not None:
            rule = run_pass_rule(self.conn, self.run_id)
            self.standings = prompt_standings(self.conn, self.run_id, rule)
            rule_text = f" A completion passes when {rule.describe()}."
        counts = {name: sum(s.status == name for s in self.standings) for name in STANDINGS[1:]}
        self.summary.setText(
            f"{len(self.standings)} prompts sampled: {counts[SOLVED]} solved, {counts[LEARNING]} learning, "
            f"{counts[NEVER_SOLVED]} never solved.{rule_text}"
        )
        self.summary.setToolTip(
            "Solved: every completion of its latest group passed. Never solved: no completion ever passed. "
            "Learning: the rest."
        )
        self._fill()

    def shown(self) -> list[PromptStanding]:
        wanted = self.standing.currentData()
        return [s for s in self.standings if wanted == "all" or s.status == wanted]

    def _fill(self) -> None:
        rows = self.shown()
        self.table.setRowCount(len(rows))
        for i, s in enumerate(rows):
            cells = [
                str(s.prompt_index),
                " ".join(s.prompt.split())[:200],
                s.status,
                f"{s.pass_rate:.0%}",
                str(s.attempts),
                str(s.latest_step),
            ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col in (0, 3, 4, 5):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, col, item)

    def _activated(self, row: int, _col: int) -> None:
        rows = self.shown()
        if 0 <= row < len(rows):
            self.sig_show_prompt.emit(rows[row].prompt_index, rows[row].latest_group)
