"""The workspace sidebar: runs (status, step, reward sparkline), datasets, rubrics with versions."""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, QPoint, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QListView,
    QMenu,
    QSplitter,
    QTableView,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from studio.models.datasets_model import DATASET_ID_ROLE, DatasetsModel
from studio.models.rubrics_model import VERSION_ID_ROLE, RubricsModel
from studio.models.runs_model import RunsModel
from studio.plots.sparkline import SparklineDelegate
from studio.state.studio_state import StudioState


def _section(title: str, view: QWidget, hint: str = "") -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 4, 0, 0)
    layout.setSpacing(2)
    label = QLabel(title)
    label.setObjectName("sectionTitle")
    if hint:
        label.setToolTip(hint)
    layout.addWidget(label)
    layout.addWidget(view)
    return box


class Sidebar(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._syncing = False

        self.runs_model = RunsModel(state)
        self.runs = QTableView()
        self.runs.setModel(self.runs_model)
        self.runs.setObjectName("runsTable")
        self.runs.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.runs.verticalHeader().setVisible(False)
        self.runs.verticalHeader().setDefaultSectionSize(26)
        self.runs.setShowGrid(False)
        self.runs.setItemDelegateForColumn(3, SparklineDelegate(self.runs))
        header = self.runs.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col, width in ((1, 64), (2, 64), (3, 104)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            self.runs.setColumnWidth(col, width)
        self.runs.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.runs.customContextMenuRequested.connect(self._run_menu)
        self.runs.selectionModel().selectionChanged.connect(self._runs_selected)
        self.runs.doubleClicked.connect(lambda _i: state.sig_show_view.emit("dashboard"))

        self.datasets_model = DatasetsModel(state)
        self.datasets = QListView()
        self.datasets.setModel(self.datasets_model)
        self.datasets.clicked.connect(self._dataset_clicked)

        self.rubrics_model = RubricsModel(state)
        self.rubrics = QTreeView()
        self.rubrics.setModel(self.rubrics_model)
        self.rubrics.setHeaderHidden(True)
        self.rubrics.clicked.connect(self._rubric_clicked)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(
            _section("RUNS", self.runs, "Ctrl+click or Shift+click several runs to compare")
        )
        self.splitter.addWidget(_section("DATASETS", self.datasets))
        self.splitter.addWidget(_section("RUBRICS", self.rubrics))
        self.splitter.setSizes([520, 150, 150])
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 6)
        layout.addWidget(self.splitter)

        state.sig_compare_changed.connect(self._sync_selection)
        self.runs_model.rowsInserted.connect(lambda *_: self._sync_selection(self.state.compare_runs))
        self.runs_model.modelReset.connect(lambda: self._sync_selection(self.state.compare_runs))

    # ---- runs ------------------------------------------------------------------------------------------
    def selected_run_ids(self) -> list[int]:
        rows = sorted(i.row() for i in self.runs.selectionModel().selectedRows())
        ids = [r.id for row in rows if (r := self.runs_model.run_at(row)) is not None]
        current = self.runs.selectionModel().currentIndex()
        run = self.runs_model.run_at(current.row()) if current.isValid() else None
        if run is not None and run.id in ids:  # the clicked run leads; the others are compared to it
            ids.remove(run.id)
            ids.insert(0, run.id)
        return ids

    def _runs_selected(self, *_: QItemSelection) -> None:
        if self._syncing:
            return
        ids = self.selected_run_ids()
        if ids:
            self.state.select_run(ids[0], compare=ids[1:])
            self.state.sig_show_view.emit("dashboard")

    def _sync_selection(self, ids: list[int]) -> None:
        """Mirror the state's selection (a run chosen elsewhere, for example a launch)."""
        if ids == self.selected_run_ids():
            return
        self._syncing = True
        try:
            model = self.runs.selectionModel()
            model.clearSelection()
            flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
            for i, run_id in enumerate(ids):
                row = self.runs_model.row_of(run_id)
                if row < 0:
                    continue
                index = self.runs_model.index(row, 0)
                model.select(index, flags)
                if i == 0:
                    model.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
                    self.runs.scrollTo(index)
        finally:
            self._syncing = False

    def _run_menu(self, pos: QPoint) -> None:
        index = self.runs.indexAt(pos)
        run = self.runs_model.run_at(index.row()) if index.isValid() else None
        if run is None:
            return
        menu = QMenu(self)
        menu.addAction("Open dashboard", lambda: self._open(run.id, "dashboard"))
        ids = self.selected_run_ids()
        if len(ids) > 1:
            menu.addAction(f"Compare {len(ids)} runs", lambda: self.state.select_run(ids[0], compare=ids[1:]))
        menu.addAction("Inspect rollouts", lambda: self._open(run.id, "inspector"))
        others = [i for i in ids if i != run.id] if run.id in ids else []
        menu.addAction("Open in playground", lambda: self._open(run.id, "playground", others))
        menu.exec(self.runs.viewport().mapToGlobal(pos))

    def _open(self, run_id: int, view: str, compare: list[int] | None = None) -> None:
        self.state.select_run(run_id, compare=compare)
        self.state.sig_show_view.emit(view)

    # ---- datasets and rubrics ----------------------------------------------------------------------------
    def _dataset_clicked(self, index: QModelIndex) -> None:
        dataset_id = index.data(DATASET_ID_ROLE)
        if dataset_id is not None:
            self.state.sig_show_dataset.emit(int(dataset_id))
            self.state.sig_show_view.emit("dataset")

    def _rubric_clicked(self, index: QModelIndex) -> None:
        version_id = index.data(VERSION_ID_ROLE)
        if version_id is not None:
            self.state.sig_show_rubric_version.emit(int(version_id))
            self.state.sig_show_view.emit("rubric")
