"""Where do agents fail: a heat map of where failing trajectories first went wrong (turn × tool) and bars of
why (the first failure's kind, and how the episodes ended). Clicking a cell or a bar shows example
rollouts in the inspector's table (sig_show_examples). The counting is studio/state/agent_failures.py,
run as a background job (studio/jobs.py): it reads every agent rollout of the step range.
"""

from __future__ import annotations

import html
from collections import Counter

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIntValidator, QLinearGradient
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.jobs import Jobs, ReadConnection, Task, query
from studio.state.agent_failures import KIND_TEXT, FailureReport, failure_report
from studio.widgets.trajectory_view import ENDED_TEXT

IDS_ROLE = Qt.ItemDataRole.UserRole + 1
ENDED_SHORT = {
    "answered": "answered",
    "max_turns": "out of turns",
    "length": "out of tokens",
    "error": "environment or markup error",
}


def _heat(fraction: float) -> QColor:
    """White to red by the share of failures a cell holds."""
    f = max(0.0, min(1.0, fraction))
    return QColor(int(255 - 30 * f), int(255 - 200 * f), int(255 - 200 * f))


def _bar(fraction: float) -> QBrush:
    """A cell background filled from the left to `fraction` of its width: a bar in a table."""
    gradient = QLinearGradient(0, 0, 1, 0)
    gradient.setCoordinateMode(QLinearGradient.CoordinateMode.ObjectBoundingMode)
    f = max(0.0, min(1.0, fraction))
    gradient.setColorAt(0, QColor("#feb2b2"))
    gradient.setColorAt(f, QColor("#feb2b2"))
    gradient.setColorAt(min(1.0, f + 0.0001), QColor("#ffffff"))
    gradient.setColorAt(1, QColor("#ffffff"))
    return QBrush(gradient)


class FailuresView(QWidget):
    sig_show_examples = Signal(object, str)
    """(rollout ids, what they are): show these rollouts in the inspector."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path: str | None = None
        self.run_id: int | None = None
        self.report: FailureReport | None = None
        self._connection = ReadConnection()
        self.jobs = Jobs("agent-failures", self, on_exit=self._connection.close)
        self._task: Task | None = None

        self.step_min = self._edit("from", "First step to count")
        self.step_max = self._edit("to", "Last step to count")
        self.analyse = QPushButton("Count failures")
        self.analyse.setToolTip(
            "Read the agent rollouts of these steps and count where the failing ones went wrong"
        )
        self.analyse.clicked.connect(self.refresh)
        self.summary = QLabel("Select an agent run.")
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)

        self.heat = self._table("failureHeatmap")
        self.kinds = self._table("failureKinds")
        self.endings = self._table("failureEndings")
        for table in (self.heat, self.kinds, self.endings):
            table.cellClicked.connect(lambda row, col, t=table: self._clicked(t, row, col))

        head = QHBoxLayout()
        for widget in (QLabel("Steps"), self.step_min, QLabel("–"), self.step_max, self.analyse):
            head.addWidget(widget)
        head.addWidget(self.summary, 1)
        right = QWidget()
        right.setMinimumWidth(340)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self._title("Why: the first failure"))
        right_layout.addWidget(self.kinds, 3)
        right_layout.addWidget(self._title("How the failing episodes ended"))
        right_layout.addWidget(self.endings, 2)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self._title("Where: first failure by turn (rows) and tool (columns)"))
        left_layout.addWidget(self.heat, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(head)
        layout.addWidget(split, 1)

    @staticmethod
    def _title(text: str) -> QLabel:
        label = QLabel(text.upper())
        label.setObjectName("sectionTitle")
        return label

    def _edit(self, placeholder: str, tip: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        edit.setFixedWidth(58)
        edit.setValidator(QIntValidator(0, 2**31 - 1, self))
        edit.setToolTip(tip)
        edit.returnPressed.connect(self.refresh)
        return edit

    @staticmethod
    def _table(name: str) -> QTableWidget:
        table = QTableWidget()
        table.setObjectName(name)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.verticalHeader().setDefaultSectionSize(22)
        return table

    # ---- the job ---------------------------------------------------------------------------------------
    def set_run(self, path: str | None, run_id: int | None) -> None:
        """A new run: forget the old report; it is counted when the tab is shown (``refresh``)."""
        if (path, run_id) == (self.path, self.run_id):
            return
        self.path, self.run_id = path, run_id
        self.report = None
        self.jobs.cancel_all()
        self._task = None
        for table in (self.heat, self.kinds, self.endings):
            table.clear()
            table.setRowCount(0)
            table.setColumnCount(0)
        self.summary.setText("Press “Count failures”." if run_id is not None else "Select an agent run.")

    def ensure(self) -> None:
        """Count once for the run when nothing is shown yet."""
        if self.report is None and self._task is None:
            self.refresh()

    def refresh(self) -> None:
        if self.path is None or self.run_id is None:
            return
        self.jobs.cancel_all()
        path, run_id, connection = self.path, self.run_id, self._connection
        lo, hi = _int(self.step_min.text()), _int(self.step_max.text())

        def work(task: Task) -> FailureReport:
            return query(
                task, connection, path, lambda conn: failure_report(conn, run_id, lo, hi, task.check)
            )

        self.summary.setText("Counting…")
        self._task = self.jobs.submit(work, self._show, on_failed=self._failed)

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def _failed(self, exc: BaseException) -> None:
        self._task = None
        self.summary.setText(f"Could not count the failures: {html.escape(str(exc))}")

    # ---- showing -----------------------------------------------------------------------------------------
    def _show(self, report: FailureReport) -> None:
        self._task = None
        self.report = report
        if report.rollouts == 0:
            self.summary.setText("No agent rollouts in these steps.")
        else:
            share = report.failed / report.rollouts
            self.summary.setText(
                f"{report.failed:,} of {report.rollouts:,} trajectories failed ({share:.0%}). "
                "Click a cell or a bar to see examples."
            )
        self._fill_heat(report)
        self._fill_bars(self.kinds, report.kinds, report.kind_examples, KIND_TEXT, report.failed)
        self._fill_bars(
            self.endings, report.endings, report.ending_examples, ENDED_SHORT, report.failed, ENDED_TEXT
        )

    def _fill_heat(self, report: FailureReport) -> None:
        turns, tools = report.turns, report.tools
        most = max(report.cells.values(), default=1)
        self.heat.clear()
        self.heat.setRowCount(len(turns))
        self.heat.setColumnCount(len(tools))
        self.heat.setHorizontalHeaderLabels(tools)
        self.heat.setVerticalHeaderLabels([f"turn {t}" for t in turns])
        for row, turn in enumerate(turns):
            for col, tool in enumerate(tools):
                n = report.cells.get((turn, tool), 0)
                item = QTableWidgetItem(str(n) if n else "")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setBackground(QBrush(_heat(n / most if n else 0.0)))
                if n:
                    item.setData(IDS_ROLE, report.cell_examples.get((turn, tool), []))
                    item.setData(Qt.ItemDataRole.UserRole, f"first failure at turn {turn} in {tool}")
                    item.setToolTip(f"{n} failing trajectories first went wrong at turn {turn}, in {tool}")
                self.heat.setItem(row, col, item)
        self.heat.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

    @staticmethod
    def _fill_bars(
        table: QTableWidget,
        counts: Counter[str],
        examples: dict[str, list[int]],
        names: dict[str, str],
        total: int,
        tips: dict[str, str] | None = None,
    ) -> None:
        table.clear()
        table.setColumnCount(2)
        table.horizontalHeader().hide()
        table.verticalHeader().hide()
        rows = counts.most_common()
        table.setRowCount(len(rows))
        for row, (key, n) in enumerate(rows):
            name = QTableWidgetItem(names.get(key, key))
            count = QTableWidgetItem(f"{n:,} ({n / max(total, 1):.0%})")
            count.setBackground(_bar(n / max(total, 1)))
            for item in (name, count):
                item.setToolTip((tips or {}).get(key, names.get(key, key)) + "\nClick to see examples")
                item.setData(IDS_ROLE, examples.get(key, []))
                item.setData(Qt.ItemDataRole.UserRole, names.get(key, key))
                table.setItem(row, 0 if item is name else 1, item)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)

    def _clicked(self, table: QObject, row: int, col: int) -> None:
        assert isinstance(table, QTableWidget)
        item = table.item(row, col)
        ids = item.data(IDS_ROLE) if item is not None else None
        if ids and item is not None:
            self.sig_show_examples.emit(tuple(int(i) for i in ids), str(item.data(Qt.ItemDataRole.UserRole)))


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
