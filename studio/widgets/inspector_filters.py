"""The inspector's filter bar: step and reward ranges, flags, labels and full-text search; for an agent
run, a second row: succeeded / failed, invalid calls, ended at max turns, a tool used, the task's tier.

Typing is debounced (DEBOUNCE_MS) so that a query runs when the user pauses, not on every key.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDoubleValidator, QIntValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.state.rollout_query import LABELS, RolloutFilter
from studio.state.trajectories import AgentFacets

DEBOUNCE_MS = 250
LABEL_TEXT = {
    "any": "Any label",
    "good": "▲ Good",
    "bad": "▼ Bad",
    "labelled": "Labelled",
    "unlabelled": "Unlabelled",
}
OUTCOME_TEXT = {"any": "Any outcome", "succeeded": "Succeeded", "failed": "Failed"}


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _float(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None


class FilterBar(QWidget):
    sig_changed = Signal(object)
    """The RolloutFilter the fields now describe (after the debounce)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._emitted = RolloutFilter()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.apply)

        self.step_min = self._edit("from", 58, QIntValidator(0, 2**31 - 1, self), "First step to show")
        self.step_max = self._edit("to", 58, QIntValidator(0, 2**31 - 1, self), "Last step to show")
        self.reward_min = self._edit("min", 58, QDoubleValidator(self), "Lowest total reward to show")
        self.reward_max = self._edit("max", 58, QDoubleValidator(self), "Highest total reward to show")
        self.errors = self._check("Errors", "Only rollouts where a criterion failed")
        self.truncated = self._check("Truncated", "Only completions cut off at the maximum length")
        self.zero_std = self._check(
            "Zero-std", "Only groups whose completions all scored the same (no learning signal)"
        )
        self.label = QComboBox()
        for key in LABELS:
            self.label.addItem(LABEL_TEXT[key], key)
        self.label.setToolTip("Filter by your labels")
        self.label.currentIndexChanged.connect(self.apply)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search completions  ( / )")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip(
            'Full-text search over completions: every word must appear; "a phrase" in quotes; '
            "word* for a prefix. Text without letters or digits (e.g. ###) is found as a substring."
        )
        self.search.setMinimumWidth(180)
        self.search.textChanged.connect(self._later)
        self.search.returnPressed.connect(self.apply)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Show every rollout of the run")
        self.clear_button.clicked.connect(self.clear)

        self._agent_row()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        layout = QHBoxLayout()
        layout.setSpacing(6)
        outer.addLayout(layout)
        outer.addWidget(self.agent)
        for widget in (
            QLabel("Steps"),
            self.step_min,
            QLabel("–"),
            self.step_max,
            QLabel("Reward"),
            self.reward_min,
            QLabel("–"),
            self.reward_max,
            self.errors,
            self.truncated,
            self.zero_std,
            self.label,
            self.picked,  # made in _agent_row; shown for any run while a pick is active
        ):
            layout.addWidget(widget)
        layout.addWidget(self.search, 1)
        layout.addWidget(self.clear_button)

    def _agent_row(self) -> None:
        """The agent filters, shown for agent runs only (``set_agent``)."""
        self.agent = QWidget()
        self.outcome = self._combo([(OUTCOME_TEXT[k], k) for k in OUTCOME_TEXT], "The environment's verdict")
        self.invalid_calls = self._check("Invalid calls", "Only trajectories with a malformed tool call")
        self.max_turns = self._check(
            "Max turns", "Only trajectories still calling tools when the turns ran out"
        )
        self.tool = self._combo([("Any tool", "")], "Only trajectories that called this tool")
        self.tier = self._combo([("Any tier", "")], "Only tasks of this tier (the dataset's `tier` column)")
        self._ids: tuple[int, ...] = ()
        self.picked = QPushButton()
        self.picked.setToolTip(
            "Only the rollouts picked elsewhere (where agents fail, an alert's examples, a criterion's "
            "disagreements): click to drop the pick"
        )
        self.picked.clicked.connect(self._drop_picked)
        self.picked.hide()
        row = QHBoxLayout(self.agent)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(QLabel("Agent"))
        for widget in (self.outcome, self.invalid_calls, self.max_turns, self.tool, self.tier):
            row.addWidget(widget)
        row.addStretch(1)
        self.agent.hide()

    def _combo(self, items: list[tuple[str, str]], tip: str) -> QComboBox:
        combo = QComboBox()
        for text, key in items:
            combo.addItem(text, key)
        combo.setToolTip(tip)
        combo.currentIndexChanged.connect(self.apply)
        return combo

    def set_agent(self, facets: AgentFacets | None) -> None:
        """Show the agent filters with the run's tools and tiers (None: not an agent run, hide them)."""
        self.agent.setVisible(facets is not None)
        for combo, values, anything in (
            (self.tool, facets.tools if facets else [], "Any tool"),
            (self.tier, facets.tiers if facets else [], "Any tier"),
        ):
            chosen = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(anything, "")
            for value in values:
                combo.addItem(value, value)
            combo.setCurrentIndex(max(combo.findData(chosen), 0))
            combo.setVisible(bool(values))
            combo.blockSignals(False)

    def _drop_picked(self) -> None:
        self._ids = ()
        self.picked.hide()
        self.apply()

    def _edit(self, placeholder: str, width: int, validator: object, tip: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        edit.setFixedWidth(width)
        edit.setValidator(validator)  # type: ignore[arg-type]
        edit.setToolTip(tip)
        edit.setAlignment(Qt.AlignmentFlag.AlignRight)
        edit.textChanged.connect(self._later)
        edit.returnPressed.connect(self.apply)
        return edit

    def _check(self, text: str, tip: str) -> QCheckBox:
        box = QCheckBox(text)
        box.setToolTip(tip)
        box.toggled.connect(self.apply)
        return box

    def _later(self) -> None:
        self._timer.start()

    def current(self) -> RolloutFilter:
        """The filter the fields describe now (without waiting for the debounce)."""
        return RolloutFilter(
            step_min=_int(self.step_min.text()),
            step_max=_int(self.step_max.text()),
            reward_min=_float(self.reward_min.text()),
            reward_max=_float(self.reward_max.text()),
            errors_only=self.errors.isChecked(),
            truncated_only=self.truncated.isChecked(),
            zero_std_only=self.zero_std.isChecked(),
            label=str(self.label.currentData() or "any"),
            search=self.search.text().strip(),
            outcome=str(self.outcome.currentData() or "any"),
            invalid_calls_only=self.invalid_calls.isChecked(),
            max_turns_only=self.max_turns.isChecked(),
            tool=str(self.tool.currentData() or ""),
            tier=str(self.tier.currentData() or ""),
            ids=self._ids,
        )

    def apply(self) -> None:
        self._timer.stop()
        flt = self.current()
        if flt != self._emitted:
            self._emitted = flt
            self.sig_changed.emit(flt)

    def set_filter(self, flt: RolloutFilter) -> None:
        """Show ``flt`` in the fields and apply it at once."""
        widgets = (self.step_min, self.step_max, self.reward_min, self.reward_max, self.search, self.label)
        agent = (self.outcome, self.invalid_calls, self.max_turns, self.tool, self.tier)
        for w in (*widgets, *agent, self.errors, self.truncated, self.zero_std):
            w.blockSignals(True)
        for edit, value in (
            (self.step_min, flt.step_min),
            (self.step_max, flt.step_max),
            (self.reward_min, flt.reward_min),
            (self.reward_max, flt.reward_max),
        ):
            edit.setText("" if value is None else f"{value:g}" if isinstance(value, float) else str(value))
        self.errors.setChecked(flt.errors_only)
        self.truncated.setChecked(flt.truncated_only)
        self.zero_std.setChecked(flt.zero_std_only)
        self.label.setCurrentIndex(max(self.label.findData(flt.label), 0))
        self.search.setText(flt.search)
        self.outcome.setCurrentIndex(max(self.outcome.findData(flt.outcome), 0))
        self.invalid_calls.setChecked(flt.invalid_calls_only)
        self.max_turns.setChecked(flt.max_turns_only)
        for combo, chosen in ((self.tool, flt.tool), (self.tier, flt.tier)):
            if chosen and combo.findData(chosen) < 0:
                combo.addItem(chosen, chosen)
            combo.setCurrentIndex(max(combo.findData(chosen), 0))
        self._ids = flt.ids
        self.picked.setText(f"{len(flt.ids)} picked ✕")
        self.picked.setVisible(bool(flt.ids))
        for w in (*widgets, *agent, self.errors, self.truncated, self.zero_std):
            w.blockSignals(False)
        self.apply()

    def clear(self) -> None:
        self.set_filter(RolloutFilter())
