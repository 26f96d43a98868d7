"""The export dialog (what to export) and the background job that writes the JSONL file."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
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
from studio.models.rollout_worker import no_collection_in_this_thread
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
        layout.addWidget(buttons)

    def options(self) -> ExportOptions:
        return ExportOptions(
            kind="sft" if self.sft.isChecked() else "pairs",
            source="labels" if self.from_labels.isChecked() else "reward",
            min_reward=self.min_reward.value() if self.min_reward_on.isChecked() else None,
            per_group=self.per_group.value(),
            min_margin=self.min_margin.value(),
            filter=self.flt if self.only_filtered.isChecked() else None,
        )


class ExportJob(QObject):
    """Writes an export in a background thread (a large run takes seconds), then reports back.

    The thread touches no Qt object: a GUI-thread timer notices when it has finished and emits.
    """

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
        self.written: int | None = None
        self.error = ""
        self.worker = threading.Thread(target=self._run, name="rollout-export", daemon=True)
        self._watch = QTimer(self)
        self._watch.setInterval(50)
        self._watch.timeout.connect(self._check)

    def start(self) -> None:
        self.worker.start()
        self._watch.start()

    def _run(self) -> None:
        workspace, run_id, path, options = self.args
        with no_collection_in_this_thread():
            try:
                conn = schema.connect(workspace, readonly=True)
                try:
                    self.written = export_jsonl(conn, run_id, path, options)
                finally:
                    conn.close()
            except (
                Exception
            ) as exc:  # reported in the window: a full disk, a folder without write access, ...
                self.error = f"The export to {path} failed: {exc}"

    def _check(self) -> None:
        if self.worker.is_alive():
            return
        self._watch.stop()
        if self.written is not None:
            self.sig_done.emit(self.args[2], self.written)
        else:
            self.sig_failed.emit(self.error or "The export stopped without a result.")
