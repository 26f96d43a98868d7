"""One completion as a card: reward, advantage, per-criterion bars, errors and judge reasons, the text,
and its label. The group view lays cards side by side."""

from __future__ import annotations

import html
import math

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.state.rollout_query import ZERO_STD, RolloutRow
from studio.widgets.inspector_text import render_html, reward_color

BAR_COLOR, BAR_LOGGED, BAR_TRACK = "#63b3ed", "#cbd5e0", "#edf2f7"
GOOD, BAD, MUTED = "#1f8a4c", "#c53030", "#718096"
CARD_WIDTH = 300


def criterion_ranges(rows: list[RolloutRow], criteria: list[str]) -> dict[str, tuple[float, float]]:
    """The scale of each criterion's bars: [0, 1] when every value fits, else the group's own range."""
    ranges = {}
    for name in criteria:
        values = [v for r in rows if (v := r.scores.get(name)) is not None and math.isfinite(v)]
        lo, hi = min(values, default=0.0), max(values, default=1.0)
        ranges[name] = (0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else (min(lo, 0.0), max(hi, lo + 1e-9))
    return ranges


class CriterionBars(QWidget):
    """Each criterion's score as a bar with its value; a failed criterion shows `error` in red."""

    ROW = 18

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[str, float | None, str | None, tuple[float, float], float | None]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_scores(
        self,
        row: RolloutRow,
        criteria: list[str],
        ranges: dict[str, tuple[float, float]],
        weights: dict[str, float],
    ) -> None:
        self.rows = [
            (
                name,
                row.scores.get(name),
                row.errors.get(name),
                ranges.get(name, (0.0, 1.0)),
                weights.get(name),
            )
            for name in criteria
        ]
        tips = []
        for name, value, error, _, weight in self.rows:
            w = f" (weight {weight:g})" if weight is not None else ""
            tips.append(f"{name}{w}: {error or ('—' if value is None else f'{value:.4g}')}")
        self.setToolTip("\n".join(tips))
        self.setFixedHeight(self.ROW * len(self.rows) + 2)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(CARD_WIDTH - 24, self.ROW * len(self.rows) + 2)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() - 1, 7.0))
        p.setFont(font)
        width = self.width()
        name_w, value_w = 78, 46
        bar_w = max(width - name_w - value_w - 8, 20)
        for i, (name, value, error, (lo, hi), weight) in enumerate(self.rows):
            y = i * self.ROW
            p.setPen(QColor(MUTED))
            p.drawText(QRectF(0, y, name_w - 4, self.ROW), Qt.AlignmentFlag.AlignVCenter, name[:12])
            track = QRectF(name_w, y + 4, bar_w, self.ROW - 8)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(BAR_TRACK))
            p.drawRoundedRect(track, 3, 3)
            if error is not None:
                p.setBrush(QBrush(QColor("#feb2b2"), Qt.BrushStyle.BDiagPattern))
                p.drawRoundedRect(track, 3, 3)
                text, color = "error", BAD
            elif value is None or not math.isfinite(value):
                text, color = "—", MUTED
            else:
                frac = min(max((value - lo) / (hi - lo), 0.0), 1.0) if hi > lo else 0.0
                p.setBrush(QColor(BAR_LOGGED if weight == 0 else BAR_COLOR))
                if frac > 0:
                    p.drawRoundedRect(QRectF(track.x(), track.y(), bar_w * frac, track.height()), 3, 3)
                text, color = f"{value:.3g}", "#2d3748"
            p.setPen(QPen(QColor(color)))
            p.drawText(
                QRectF(name_w + bar_w + 4, y, value_w, self.ROW),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                text,
            )
        p.end()


class RolloutCard(QFrame):
    sig_label = Signal(int, int)
    """(rollout id, label): a label button was pressed (it toggles)."""
    sig_note = Signal(int)
    sig_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("rolloutCard")
        self.rollout: RolloutRow | None = None
        self.setFixedWidth(CARD_WIDTH)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        self.rank = QLabel()
        self.reward = QLabel()
        self.reward.setObjectName("cardReward")
        self.advantage = QLabel()
        self.advantage.setToolTip(
            "the completion's advantage (PPO: at its first token); PPO runs add the critic's value there "
            "and the return, the value head's training target"
        )
        self.meta = QLabel()
        self.meta.setObjectName("muted")
        self.bars = CriterionBars()
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text = QTextBrowser()
        self.text.setObjectName("completionText")
        self.text.setOpenLinks(False)
        self.text.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.text.setMinimumHeight(48)
        self.good = self._button("▲", "Good completion (+)", 1)
        self.bad = self._button("▼", "Bad completion (-)", -1)
        self.note_button = QToolButton()
        self.note_button.setText("✎")
        self.note_button.setToolTip("Write a note (N)")
        self.note_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.note_button.clicked.connect(self._note_clicked)
        self.note = QLabel()
        self.note.setObjectName("muted")
        self.note.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.rank)
        top.addWidget(self.reward)
        top.addStretch(1)
        top.addWidget(self.advantage)
        labels = QHBoxLayout()
        labels.addWidget(self.good)
        labels.addWidget(self.bad)
        labels.addWidget(self.note_button)
        labels.addWidget(self.note, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.meta)
        layout.addWidget(self.bars)
        layout.addWidget(self.problems)
        layout.addWidget(self.text, 1)
        layout.addLayout(labels)

    def _note_clicked(self) -> None:
        if self.rollout is not None:
            self.sig_note.emit(self.rollout.id)

    def _button(self, text: str, tip: str, label: int) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setCheckable(True)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        b.clicked.connect(lambda: self._label_clicked(label))
        return b

    def _label_clicked(self, label: int) -> None:
        if self.rollout is not None:
            self.sig_label.emit(self.rollout.id, label)
            self.show_label(self.rollout.label, self.rollout.note)  # the view sets the saved state

    def show_rollout(
        self,
        row: RolloutRow,
        rank: int,
        criteria: list[str],
        ranges: dict[str, tuple[float, float]],
        weights: dict[str, float],
        reward_range: tuple[float, float],
        visible: bool,
        highlight: list[str],
    ) -> None:
        self.rollout = row
        self.rank.setText(f"<b>#{rank}</b>")
        reward = "—" if row.reward is None else f"{row.reward:.3f}"
        self.reward.setText(f"reward <b>{reward}</b>")
        self.reward.setStyleSheet(
            f"background:{reward_color(row.reward, *reward_range)}; border-radius:4px; padding:1px 6px;"
        )
        if row.advantage is None:
            adv = "adv —"
        else:
            color = GOOD if row.advantage > 0 else BAD if row.advantage < 0 else MUTED
            adv = f'adv <b style="color:{color}">{row.advantage:+.3f}</b>'
        if row.value is not None:  # PPO: the critic's estimate and the return it is trained toward
            ret = "—" if row.value_target is None else f"{row.value_target:+.3f}"
            adv += f" · value {row.value:+.3f} · return {ret}"
        self.advantage.setText(adv)
        meta = [f"{row.tokens} tokens" if row.tokens is not None else "", f"id {row.id}"]
        if row.truncated:
            meta.insert(0, '<span style="color:#b7791f">✂ truncated</span>')
        if row.group_std is not None and row.group_std <= ZERO_STD:
            meta.append("zero-std group")
        self.meta.setText(" · ".join(m for m in meta if m))
        self.bars.set_scores(row, criteria, ranges, weights)
        problems = [
            f'<span style="color:{BAD}"><b>{html.escape(k)}</b>: {html.escape(v)}</span>'
            for k, v in row.errors.items()
        ]
        problems += [
            f'<span style="color:{MUTED}"><i>{html.escape(k)}: {html.escape(v)}</i></span>'
            for k, v in row.explanations.items()
        ]
        self.problems.setText("<br>".join(problems))
        self.problems.setVisible(bool(problems))
        self.text.setHtml(render_html(row.completion, visible, highlight))
        self.show_label(row.label, row.note)

    def show_label(self, label: int, note: str) -> None:
        if self.rollout is not None:
            self.rollout.label, self.rollout.note = label, note
        self.good.setChecked(label == 1)
        self.bad.setChecked(label == -1)
        self.good.setStyleSheet(f"color:{GOOD};" if label == 1 else "")
        self.bad.setStyleSheet(f"color:{BAD};" if label == -1 else "")
        self.note.setText(html.escape(note) if note else "")
        self.note.setToolTip(note)

    def set_current(self, current: bool) -> None:
        self.setProperty("current", current)
        self.style().unpolish(self)
        self.style().polish(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.rollout is not None:
            self.sig_clicked.emit(self.rollout.id)
        super().mousePressEvent(event)


CARD_STYLE = """
QFrame#rolloutCard { background: white; border: 1px solid #e2e8f0; border-radius: 8px; }
QFrame#rolloutCard[current="true"] { border: 2px solid #2b6cb0; }
QTextBrowser#completionText { border: 1px solid #edf2f7; border-radius: 4px; background: #fcfcfd;
    font-family: "DejaVu Sans Mono", monospace; }
"""
