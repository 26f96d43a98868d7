"""How the rollouts table shows a rollout: its columns, each cell's text, colour and tooltip.

The table model (studio/models/rollouts_model.py) calls ``RolloutCells.row`` in its worker thread and
stores the result in C++ items, so this is plain Python over module constants: nothing here may touch
a widget.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor

from studio.state.rollout_query import PREVIEW_CHARS, ZERO_STD, RolloutRow

GOOD_COLOR, BAD_COLOR, MUTED_COLOR, WARN_COLOR = "#1f8a4c", "#c53030", "#718096", "#b7791f"
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_DISPLAY, _TIP = int(Qt.ItemDataRole.DisplayRole), int(Qt.ItemDataRole.ToolTipRole)
_FOREGROUND, _ALIGN = int(Qt.ItemDataRole.ForegroundRole), int(Qt.ItemDataRole.TextAlignmentRole)


class RolloutCells:
    """The inspector table's columns and cells (what the model's ``cells`` argument expects)."""

    head = ("Step", "Prompt", "Completion", "Reward")
    tail = ("Adv.", "Tokens", "Trunc.", "Errors", "Label")
    label_column = "Label"

    def columns(self, criteria: list[str]) -> list[str]:
        return [*self.head, *criteria, *self.tail]

    def header_tip(self, name: str, criteria: list[str], weights: dict[str, float]) -> str:
        if name in criteria:
            w = weights.get(name)
            weight = "" if w is None else f" (weight {w:g}{': logged, not optimised' if w == 0 else ''})"
            return f"Criterion “{name}”{weight}"
        return HEADER_TIPS.get(name, "")

    def row(self, r: RolloutRow, criteria: list[str]) -> list[dict[int, Any]]:
        """A rollout as the table's cells, {role: value} each."""
        crit = set(criteria)
        return [self.cell(r, name, name in crit) for name in self.columns(criteria)]

    @staticmethod
    def cell(r: RolloutRow, name: str, criterion: bool) -> dict[int, Any]:
        # Every role is set (None clears it), so a cell stored again forgets what it showed before.
        return {
            _DISPLAY: _display(r, name, criterion),
            _ALIGN: None if name in ("Prompt", "Completion", "Errors") else _RIGHT,
            _FOREGROUND: _foreground(r, name, criterion),
            _TIP: _tooltip(r, name, criterion),
        }


HEADER_TIPS = {
    "Step": "Training step that sampled the rollout",
    "Prompt": "The prompt (the group's shared input)",
    "Completion": "The start of the completion; the group view below shows it whole",
    "Reward": "Total reward: the weighted sum of the criteria, as optimised",
    "Adv.": "Advantage: GRPO's reward relative to its group, or PPO's GAE advantage at the first token "
    "(what the policy learns from)",
    "Tokens": "Completion length in tokens",
    "Trunc.": "Cut off at the maximum completion length",
    "Errors": "Criteria that failed on this rollout",
    "Label": "Your label: ▲ good (+), ▼ bad (-); ✎ has a note (N)",
}


def _one_line(text: str, limit: int = 110) -> str:
    # Cut to about what a wide column shows: Qt lays out the whole string to elide it, on every paint.
    flat = text.replace("\r", "").replace("\n", " ⏎ ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _number(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _display(r: RolloutRow, name: str, criterion: bool) -> str:
    if criterion:
        if name in r.errors:
            return "error"
        return _number(r.scores.get(name)) if name in r.scores else ""
    if name == "Step":
        return str(r.step)
    if name == "Prompt":
        return _one_line(r.prompt, 60)
    if name == "Completion":
        return _one_line(r.completion)
    if name == "Reward":
        return _number(r.reward)
    if name == "Adv.":
        return _number(r.advantage, signed=True)
    if name == "Tokens":
        return "" if r.tokens is None else str(r.tokens)
    if name == "Trunc.":
        return "✂" if r.truncated else ""
    if name == "Errors":
        return ", ".join(r.errors) if r.errors else ("" if not r.error_count else str(r.error_count))
    if name == "Label":
        mark = {1: "▲", -1: "▼"}.get(r.label, "")
        return mark + (" ✎" if r.note else "")
    return ""


def _tooltip(r: RolloutRow, name: str, criterion: bool) -> str | None:
    if criterion and name in r.errors:
        return f"{name}: {r.errors[name]}"
    if name == "Prompt":
        return r.prompt[:2000]
    if name == "Completion":
        return r.completion[:2000] + ("…" if len(r.completion) >= PREVIEW_CHARS else "")
    if name == "Errors" and r.errors:
        return "\n".join(f"{k}: {v}" for k, v in r.errors.items())
    if name == "Label" and (r.label or r.note):
        return ({1: "Good", -1: "Bad"}.get(r.label, "No label")) + (f"\nNote: {r.note}" if r.note else "")
    if name == "Adv." and r.group_std is not None and r.group_std <= ZERO_STD:
        return "Zero-std group: every completion scored the same, so GRPO learns nothing from it"
    return None


_GOOD, _BAD, _MUTED, _WARN = (QBrush(QColor(c)) for c in (GOOD_COLOR, BAD_COLOR, MUTED_COLOR, WARN_COLOR))


def _foreground(r: RolloutRow, name: str, criterion: bool) -> QBrush | None:
    if (criterion and name in r.errors) or name == "Errors":
        return _BAD
    if name == "Adv.":
        if r.group_std is not None and r.group_std <= ZERO_STD:
            return _MUTED
        if r.advantage is not None:
            return _GOOD if r.advantage > 0 else _BAD if r.advantage < 0 else _MUTED
    if name == "Trunc.":
        return _WARN
    if name == "Label":
        return _GOOD if r.label == 1 else _BAD if r.label == -1 else _MUTED
    if name in ("Step", "Tokens"):
        return _MUTED
    return None
