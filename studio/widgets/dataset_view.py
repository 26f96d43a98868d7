"""A dataset's rows, previewed from its JSONL file a page at a time."""

from __future__ import annotations

from PySide6.QtWidgets import QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from studio.models.datasets_model import JsonlPreviewModel
from studio.state.studio_state import StudioState


class DatasetView(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.title = QLabel("<h3>Datasets</h3>Select a dataset in the sidebar to preview its rows.")
        self.title.setWordWrap(True)
        self.model = JsonlPreviewModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setDefaultSectionSize(22)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        state.sig_show_dataset.connect(self.show_dataset)

    def show_dataset(self, dataset_id: int) -> None:
        ds = next(
            (d for d in (self.state.db.datasets() if self.state.db else []) if d.id == dataset_id), None
        )
        if ds is None:
            return
        rows = f"{ds.rows:,} rows" if ds.rows is not None else "unknown size"
        self.model.open(ds.path)
        error = f"<br><span style='color:#c53030'>{self.model.error}</span>" if self.model.error else ""
        self.title.setText(
            f"<h3>{ds.name}</h3><span style='color:#718096'>{ds.path} · {rows} · columns: "
            f"{', '.join(ds.columns) or '?'}</span>{error}"
        )
        self.table.resizeColumnsToContents()
        for col in range(self.model.columnCount()):
            self.table.setColumnWidth(col, min(self.table.columnWidth(col), 420))
