"""An agent rollout turn by turn, and a group's trajectories side by side (the inspector's agent tabs).

TrajectoryView: the task, then each turn: what the assistant wrote, each tool call with its arguments and
its result, invalid calls and tool errors highlighted, tokens per turn; at the end how the episode ended,
the environment's reward and the rubric's per-criterion scores.

GroupTrajectories: one row per trajectory of a group, one cell per turn (the tools it called), coloured by
outcome; the reward at the end. Clicking a row opens its timeline (sig_open).
"""

from __future__ import annotations

import html
import json
import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.contract.trajectory import ToolCall, Trajectory, call_outcome, first_repeat
from studio.state.trajectories import AgentRollout

# What each outcome looks like: (background, border/text accent, label)
OUTCOME_STYLE = {
    "ok": ("#f0fff4", "#2f855a", "ok"),
    "invalid": ("#fff5f5", "#c53030", "invalid call"),
    "tool_error": ("#fffaf0", "#c05621", "tool error"),
    "not_run": ("#f7fafc", "#718096", "not run (out of turns)"),
    "repeat": ("#fefcbf", "#975a16", "repeats a call"),
    "answer": ("#ebf8ff", "#2b6cb0", "final answer"),
}
ENDED_TEXT = {
    "answered": "answered (the last turn called no tool)",
    "max_turns": "ran out of turns (still calling tools)",
    "length": "ran out of tokens",
    "error": "environment or markup error",
}
MAX_RESULT_CHARS = 1500


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3g}"


def format_arguments(arguments: str) -> str:
    """`key="value", n=2` from the call's JSON arguments; the raw text when they do not parse."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    if not isinstance(parsed, dict):
        return arguments
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in parsed.items())


def _block(text: str, style: str) -> str:
    shown = text if len(text) <= MAX_RESULT_CHARS else text[:MAX_RESULT_CHARS] + f"… ({len(text):,} chars)"
    return f"<pre style='{style} white-space: pre-wrap; margin: 2px 0 2px 18px;'>{html.escape(shown)}</pre>"


def call_html(call: ToolCall, repeated: bool) -> str:
    outcome = call_outcome(call)
    bg, accent, label = OUTCOME_STYLE[outcome]
    badge = "" if outcome == "ok" else f" <b style='color:{accent}'>[{html.escape(label)}]</b>"
    if repeated:
        badge += " <b style='color:#b7791f'>[repeats an earlier call]</b>"
    head = (
        f"<div style='background:{bg}; border-left: 3px solid {accent}; padding: 3px 6px; margin: 3px 0;'>"
        f"<span style='font-family: monospace;'>→ <b>{html.escape(call.tool)}</b>"
        f"({html.escape(format_arguments(call.arguments))})</span>{badge}"
    )
    if call.error is not None:
        body = _block(f"error: {call.error}", f"color:{accent};")
    elif call.result is not None:
        result = call.result if isinstance(call.result, str) else json.dumps(call.result, ensure_ascii=False)
        body = _block(result, "color:#2d3748;")
    else:
        body = ""
    return head + body + "</div>"


def timeline_html(rollout: AgentRollout, weights: dict[str, float] | None = None) -> str:
    """The whole trajectory as HTML (QTextBrowser's subset)."""
    t: Trajectory = rollout.trajectory
    parts = []
    task = " ".join(str(m.get("content", "")) for m in rollout.prompt if m.get("role") == "user")
    if task or t.task:
        shown = (task + (t.task or "")).strip()
        parts.append(
            f"<p style='color:#4a5568;'><b>Task</b> (rollout {rollout.id}, step {rollout.step}): "
            f"{html.escape(shown)}</p>"
        )
    if t.reset_error:
        parts.append(f"<p style='color:#c53030;'><b>reset failed:</b> {html.escape(t.reset_error)}</p>")
    repeat = first_repeat(t)
    for number, turn in enumerate(t.turns, 1):
        tokens = f" · {turn.tokens} tokens" if turn.tokens is not None else ""
        calls = len(turn.calls)
        what = f"{calls} call{'s' if calls != 1 else ''}" if calls else "final answer"
        parts.append(
            f"<h4 style='margin: 10px 0 2px 0; color:#2d3748;'>Turn {number}"
            f"<span style='color:#718096; font-weight: normal;'> · {what}{tokens}</span></h4>"
        )
        if turn.text.strip() and not (turn.calls and turn.calls[0].arguments == turn.text):
            bg, accent, _ = OUTCOME_STYLE["answer"] if not turn.calls else ("#ffffff", "#a0aec0", "")
            parts.append(
                f"<div style='background:{bg}; border-left: 3px solid {accent}; padding: 3px 6px;'>"
                f"{html.escape(turn.text).replace(chr(10), '<br>')}</div>"
            )
        for index, call in enumerate(turn.calls):
            parts.append(call_html(call, repeat == (number - 1, index)))
    if t.environment_error:
        parts.append(
            f"<p style='color:#c53030;'><b>environment lost:</b> {html.escape(t.environment_error)}</p>"
        )
    parts.append(_outcome_html(rollout, weights or {}))
    return "".join(parts)


def _outcome_html(rollout: AgentRollout, weights: dict[str, float]) -> str:
    t = rollout.trajectory
    success = t.reward is not None and t.reward >= 1.0
    colour = "#2f855a" if success else "#c53030"
    ended = ENDED_TEXT.get(t.ended or "", t.ended or "?")
    reward_error = f" ({html.escape(t.reward_error)})" if t.reward_error else ""
    rows = [
        f"<tr><td><b>Ended</b></td><td>{html.escape(ended)} after {t.num_turns} turns</td></tr>",
        f"<tr><td><b>Environment reward</b></td><td style='color:{colour};'><b>{_num(t.reward)}</b>"
        f"{reward_error}</td></tr>",
        f"<tr><td><b>Total reward</b></td><td><b>{_num(rollout.reward)}</b></td></tr>",
    ]
    for name, value in rollout.scores.items():
        weight = weights.get(name)
        note = " (logged, weight 0)" if weight == 0 else f" (weight {weight:g})" if weight is not None else ""
        error = rollout.errors.get(name)
        shown = f"<span style='color:#c53030;'>error: {html.escape(error)}</span>" if error else _num(value)
        rows.append(f"<tr><td>&nbsp;&nbsp;{html.escape(name)}{note}</td><td>{shown}</td></tr>")
    return "<hr><table cellspacing='0' cellpadding='2' style='margin-top: 4px;'>" + "".join(rows) + "</table>"


class TrajectoryView(QWidget):
    """One agent rollout's timeline."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rollout: AgentRollout | None = None
        self.browser = QTextBrowser()
        self.browser.setObjectName("trajectoryTimeline")
        self.browser.setOpenLinks(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.browser)

    def clear(self, message: str) -> None:
        self.rollout = None
        self.browser.setHtml(f"<p style='color:#4a5568;'>{html.escape(message)}</p>")

    def show_rollout(self, rollout: AgentRollout, weights: dict[str, float] | None = None) -> None:
        self.rollout = rollout
        self.browser.setHtml(timeline_html(rollout, weights))

    def text(self) -> str:
        return self.browser.toPlainText()


def turn_outcome(calls: list[ToolCall]) -> str:
    """A turn's colour: the worst of its calls' outcomes; a turn without calls is the final answer."""
    if not calls:
        return "answer"
    outcomes = {call_outcome(c) for c in calls}
    for worst in ("invalid", "tool_error", "not_run"):
        if worst in outcomes:
            return worst
    return "ok"


def turn_label(calls: list[ToolCall]) -> str:
    if not calls:
        return "answer"
    return calls[0].tool + (f" +{len(calls) - 1}" if len(calls) > 1 else "")


class GroupTrajectories(QWidget):
    """A group's trajectories, one compact row each."""

    sig_open = Signal(int)
    """A rollout id: the user clicked its row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rollouts: list[AgentRollout] = []
        self.summary = QLabel()
        self.summary.setObjectName("muted")
        self.table = QTableWidget()
        self.table.setObjectName("groupTrajectories")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.cellClicked.connect(lambda row, _col: self._open(row))
        self.table.cellActivated.connect(lambda row, _col: self._open(row))
        legend = " ".join(
            f"<span style='background:{bg}; color:{fg}; border: 1px solid {fg};'>&nbsp;{label}&nbsp;</span>"
            for bg, fg, label in OUTCOME_STYLE.values()
        )
        self.legend = QLabel(legend + "&nbsp; Click a row for its timeline.")
        self.legend.setObjectName("muted")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.legend)

    def clear(self, message: str) -> None:
        self.rollouts = []
        self.table.clear()
        self.table.setRowCount(0)
        self.table.setColumnCount(0)
        self.summary.setText(message)

    def show_group(self, rollouts: list[AgentRollout], current: int | None = None) -> None:
        self.rollouts = rollouts
        turns = max((r.trajectory.num_turns for r in rollouts), default=0)
        headers = ["#", *(f"T{n}" for n in range(1, turns + 1)), "Ended", "Env", "Reward"]
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setRowCount(len(rollouts))
        self.table.setHorizontalHeaderLabels(headers)
        for row, r in enumerate(rollouts):
            self.table.setItem(row, 0, self._item(str(row + 1), f"rollout {r.id}"))
            seen: set[tuple[str, str]] = set()
            for n, turn in enumerate(r.trajectory.turns):
                outcome = turn_outcome(turn.calls)
                keys = [(c.tool, c.arguments) for c in turn.calls]
                if outcome == "ok" and any(k in seen for k in keys):
                    outcome = "repeat"  # an identical call came before: a loop
                seen.update(keys)
                bg, fg, label = OUTCOME_STYLE[outcome]
                tip = "\n".join(
                    f"{c.tool}({format_arguments(c.arguments)}): {c.error or 'ok'}" for c in turn.calls
                )
                item = self._item(turn_label(turn.calls), f"turn {n + 1}: {label}\n{tip}".strip())
                item.setBackground(QBrush(QColor(bg)))
                item.setForeground(QBrush(QColor(fg)))
                self.table.setItem(row, n + 1, item)
            t = r.trajectory
            self.table.setItem(row, turns + 1, self._item(t.ended or "?", ENDED_TEXT.get(t.ended or "", "")))
            env = self._item(_num(t.reward), t.reward_error or "the environment's reward")
            if t.reward is not None:
                env.setForeground(QBrush(QColor("#2f855a" if t.reward >= 1.0 else "#c53030")))
            self.table.setItem(row, turns + 2, env)
            self.table.setItem(row, turns + 3, self._item(_num(r.reward), "the rubric's total"))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        solved = sum(1 for r in rollouts if r.trajectory.reward is not None and r.trajectory.reward >= 1.0)
        step = rollouts[0].step if rollouts else "?"
        self.summary.setText(
            f"{len(rollouts)} trajectories of this prompt at step {step}: {solved} succeeded"
        )
        if current is not None:
            self.select(current)

    def select(self, rollout_id: int) -> None:
        ids = [r.id for r in self.rollouts]
        if rollout_id in ids:
            self.table.blockSignals(True)
            self.table.selectRow(ids.index(rollout_id))
            self.table.blockSignals(False)

    @staticmethod
    def _item(text: str, tip: str) -> QTableWidgetItem:
        item = QTableWidgetItem(text)
        item.setToolTip(tip)
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        return item

    def _open(self, row: int) -> None:
        if 0 <= row < len(self.rollouts):
            self.sig_open.emit(self.rollouts[row].id)
