"""The export dialog (what to export) and the background job that writes the JSONL file."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.contract import schema
from studio.jobs import Jobs, Task
from studio.state.rollout_export import ExportOptions, export_jsonl
from studio.state.rollout_query import RolloutFilter


class ExportDialog(QDialog):
    """Choose SFT rows or preference pairs, from labels or from rewards."""

    def __init__(self, flt: RolloutFilter, good: int, bad: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export rollouts as JSONL")
        self.flt = flt
        self.sft = QRadioButton('SFT rows  {"prompt", "completion"}')
        self.pairs = QRadioButton('Preference pairs  {"prompt", "chosen", "rejected"}  (same group)')
        self.sft.setChecked(True)
        kinds = QButtonGroup(self)
        kinds.addButton(self.sft)
        kinds.addButton(self.pairs)
        self.from_labels = QRadioButton(f"My labels  (▲ {good}, ▼ {bad} in this run)")
        self.from_reward = QRadioButton("Rewards: the best (and for pairs, the worst) of each group")
        (self.from_labels if good else self.from_reward).setChecked(True)
        sources = QButtonGroup(self)
        sources.addButton(self.from_labels)
        sources.addButton(self.from_reward)
        self.min_reward_on = QCheckBox("Only rewards of at least")
        self.min_reward = QDoubleSpinBox()
        self.min_reward.setRange(-1e6, 1e6)
        self.min_reward.setDecimals(3)
        self.min_reward.setValue(1.0)
        self.per_group = QSpinBox()
        self.per_group.setRange(1, 1024)
        self.min_margin = QDoubleSpinBox()
        self.min_margin.setRange(0, 1e6)
        self.min_margin.setDecimals(3)
        self.only_filtered = QCheckBox(f"Only rollouts matching the current filters ({flt.describe()})")
        self.only_filtered.setVisible(not flt.is_default)
        self.only_filtered.setChecked(not flt.is_default)
        self.with_source = QCheckBox(
            "Add ids and dataset columns (run, step, group, prompt_index, answer, ...) to join rows back"
        )
        self.with_source.setChecked(True)

        threshold = QHBoxLayout()
        threshold.addWidget(self.min_reward_on)
        threshold.addWidget(self.min_reward)
        threshold.addStretch(1)
        form = QFormLayout()
        form.addRow("SFT from rewards:", threshold)
        form.addRow("Best rollouts per group:", self.per_group)
        form.addRow("Pairs from rewards: margin >", self.min_margin)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Choose file…")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Format</b>"))
        layout.addWidget(self.sft)
        layout.addWidget(self.pairs)
        layout.addWidget(QLabel("<b>From</b>"))
        layout.addWidget(self.from_labels)
        layout.addWidget(self.from_reward)
        layout.addLayout(form)
        layout.addWidget(self.only_filtered)
        layout.addWidget(self.with_source)
        layout.addWidget(buttons)

    def options(self) -> ExportOptions:
        return ExportOptions(
            kind="sft" if self.sft.isChecked() else "pairs",
            source="labels" if self.from_labels.isChecked() else "reward",
            min_reward=self.min_reward.value() if self.min_reward_on.isChecked() else None,
            per_group=self.per_group.value(),
            min_margin=self.min_margin.value(),
            filter=self.flt if self.only_filtered.isChecked() else None,
            with_source=self.with_source.isChecked(),
        )


class ExportJob(QObject):
    """Writes an export in the background (a large run takes seconds), then reports back."""

    sig_done = Signal(str, int)
    """(path, rows written)"""
    sig_failed = Signal(str)

    def __init__(
        self,
        workspace: str,
        run_id: int,
        path: str | Path,
        options: ExportOptions,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.args = (workspace, run_id, str(path), options)
        self._jobs = Jobs("rollout-export", self, poll_ms=50)

    @property
    def running(self) -> bool:
        return self._jobs.busy

    def start(self) -> None:
        workspace, run_id, path, options = self.args

        def export(task: Task) -> int:
            conn = schema.connect(workspace, readonly=True)
            try:
                return export_jsonl(conn, run_id, path, options)
            finally:
                conn.close()

        self._jobs.submit(
            export,
            on_done=lambda written: self.sig_done.emit(path, written),
            # a full disk, a folder without write access, ...: reported in the window
            on_failed=lambda exc: self.sig_failed.emit(f"The export to {path} failed: {exc}"),
        )
