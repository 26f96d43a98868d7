"""The group view (one prompt's completions side by side, best reward first) and "this prompt over
training" (the completions to one prompt at each step it was sampled, to watch behaviour change)."""

from __future__ import annotations

import html
import math

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QKeyEvent, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from studio.state.rollout_groups import GroupDetail
from studio.state.rollout_query import ZERO_STD, RolloutRow
from studio.widgets.inspector_cards import CARD_STYLE, RolloutCard, criterion_ranges
from studio.widgets.inspector_text import render_html, reward_color

PREVIEW = 90
INLINE_PROMPT = 60


def _rewards_range(rows: list[RolloutRow]) -> tuple[float, float]:
    values = [r.reward for r in rows if r.reward is not None and math.isfinite(r.reward)]
    return (min(values), max(values)) if values else (0.0, 1.0)


def _stats(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "no reward"
    spread = f" ± {std:.3f}" if std is not None else ""
    flat = " (zero std: no learning signal)" if std is not None and std <= ZERO_STD else ""
    return f"mean reward {mean:.3f}{spread}{flat}"


class GroupView(QWidget):
    """A group's completions as cards, side by side, best first. ←/→ (h/l) move between cards."""

    sig_label = Signal(int, int)
    sig_note = Signal(int)
    sig_current = Signal(int)
    sig_back = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setStyleSheet(CARD_STYLE)
        self.detail: GroupDetail | None = None
        self.cards: list[RolloutCard] = []
        self.current = -1
        self._shown: tuple[list[str], dict[str, float], bool, list[str]] = ([], {}, False, [])

        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.rendered_prompts: bool | None = None
        """Whether the run records prompts as the model saw them (chat template applied); set per run."""
        self.prompt = QTextBrowser()
        self.prompt.setObjectName("promptText")
        self.prompt.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.prompt.setFixedHeight(30)
        self.prompt.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.strip = QWidget()
        self.strip_layout = QHBoxLayout(self.strip)
        self.strip_layout.setContentsMargins(0, 0, 0, 0)
        self.strip_layout.setSpacing(8)
        self.strip_layout.addStretch(1)
        self.scroller = QScrollArea()
        self.scroller.setWidgetResizable(True)
        self.scroller.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.scroller.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroller.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroller.setWidget(self.strip)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.prompt)
        layout.addWidget(self.scroller, 1)
        self.clear("Select a rollout to see its group: every completion to the same prompt at that step.")

    def clear(self, message: str) -> None:
        self.detail = None
        self.title.setText(f'<span style="color:#4a5568">{html.escape(message)}</span>')
        self.prompt.hide()
        for card in self.cards:
            card.hide()
        self.current = -1

    def show_group(
        self,
        detail: GroupDetail,
        criteria: list[str],
        weights: dict[str, float],
        selected: int | None,
        visible: bool,
        highlight: list[str],
    ) -> None:
        self.detail = detail
        self._shown = (criteria, weights, visible, highlight)
        n = len(detail.rollouts)
        # A short one-line prompt goes in the title; a longer one gets its own box.
        inline = len(detail.prompt) <= INLINE_PROMPT and "\n" not in detail.prompt
        shown = detail.prompt.replace(" ", "·") if visible else detail.prompt
        prompt = f"“{html.escape(shown)}” " if inline else ""
        seen = ""
        if self.rendered_prompts is not None:
            seen = "as the model saw it " if self.rendered_prompts else "(the dataset's text) "
        self.title.setText(
            f"<b>Group</b> · step {detail.step} · prompt {seen}{prompt}"
            f"{'#' + str(detail.prompt_index) if detail.prompt_index is not None else '(no dataset row)'}"
            f" · {n} completion{'s' if n != 1 else ''} · {_stats(detail.reward_mean, detail.reward_std)}"
            ' · <span style="color:#718096">←/→ move · +/- label · N note · P over training</span>'
        )
        self.prompt.setHtml(render_html(detail.prompt, visible))
        self.prompt.setToolTip(
            "The exact text the model was given: the dataset's prompt with the chat template (and system "
            "prompt) applied, special tokens included"
            if self.rendered_prompts
            else "The dataset's prompt: this run was recorded before RL Studio kept the rendered prompt"
            if self.rendered_prompts is False
            else ""
        )
        self.prompt.setVisible(not inline)
        self._fit_prompt()
        while len(self.cards) < n:
            card = RolloutCard()
            card.sig_label.connect(self.sig_label)
            card.sig_note.connect(self.sig_note)
            card.sig_clicked.connect(self._clicked)
            self.strip_layout.insertWidget(len(self.cards), card)
            self.cards.append(card)
        ranges = criterion_ranges(detail.rollouts, criteria)
        span = _rewards_range(detail.rollouts)
        for i, card in enumerate(self.cards):
            if i < n:
                card.show_rollout(
                    detail.rollouts[i], i + 1, criteria, ranges, weights, span, visible, highlight
                )
                card.show()
            else:
                card.hide()
        ids = [r.id for r in detail.rollouts]
        self.set_current(ids.index(selected) if selected in ids else 0, scroll=True, announce=False)

    def _fit_prompt(self) -> None:
        """As tall as the prompt, up to four lines, or eight for a rendered one (a chat template's turns and
        special tokens take lines of their own); then it scrolls."""
        doc = self.prompt.document()
        doc.setTextWidth(max(self.prompt.viewport().width(), 200))
        line = self.prompt.fontMetrics().lineSpacing()
        lines = 8 if self.rendered_prompts else 4
        height = min(int(doc.size().height()), lines * line + 8) + 2 * self.prompt.frameWidth() + 2
        self.prompt.setFixedHeight(max(height, line + 12))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.detail is not None:
            self._fit_prompt()

    def rerender(self, visible: bool, highlight: list[str]) -> None:
        if self.detail is not None:
            criteria, weights, _, _ = self._shown
            current = self.current_id()
            self.show_group(self.detail, criteria, weights, current, visible, highlight)

    def current_id(self) -> int | None:
        if self.detail is None or not 0 <= self.current < len(self.detail.rollouts):
            return None
        return self.detail.rollouts[self.current].id

    def set_current(self, i: int, scroll: bool = True, announce: bool = True) -> None:
        if self.detail is None or not self.detail.rollouts:
            return
        i = max(0, min(i, len(self.detail.rollouts) - 1))
        self.current = i
        for j, card in enumerate(self.cards):
            card.set_current(j == i)
        if scroll:
            self._scroll_to(self.cards[i])
        if announce:
            self.sig_current.emit(self.detail.rollouts[i].id)

    def _scroll_to(self, card: RolloutCard) -> None:
        """Bring a card into view sideways (ensureWidgetVisible would also scroll up and down)."""
        bar = self.scroller.horizontalScrollBar()
        left, width = card.x(), self.scroller.viewport().width()
        if left < bar.value():
            bar.setValue(left - 8)
        elif left + card.width() > bar.value() + width:
            bar.setValue(left + card.width() - width + 8)

    def update_label(self, rollout_id: int, label: int, note: str) -> None:
        for card in self.cards:
            if card.isVisible() and card.rollout is not None and card.rollout.id == rollout_id:
                card.show_label(label, note)

    def _clicked(self, rollout_id: int) -> None:
        if self.detail is not None:
            ids = [r.id for r in self.detail.rollouts]
            if rollout_id in ids:
                self.set_current(ids.index(rollout_id))
                self.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Left, Qt.Key.Key_H):
            self.set_current(self.current - 1)
        elif key in (Qt.Key.Key_Right, Qt.Key.Key_L):
            self.set_current(self.current + 1)
        elif key == Qt.Key.Key_Home:
            self.set_current(0)
        elif key == Qt.Key.Key_End:
            self.set_current(len(self.detail.rollouts) - 1 if self.detail else 0)
        elif key == Qt.Key.Key_Escape:
            self.sig_back.emit()
        else:
            super().keyPressEvent(event)


class PromptHistoryView(QWidget):
    """One prompt at every step it was sampled: the mean reward, then its completions, best first."""

    sig_open_group = Signal(int, int)
    """(group id, rollout id): open this group in the group view."""
    sig_back = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.groups: list[GroupDetail] = []
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setFixedWidth(300)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "reward")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.scatter = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(99, 179, 237, 140))
        self.mean_curve = pg.PlotDataItem(pen=pg.mkPen("#2b6cb0", width=2), symbol="o", symbolSize=5)
        self.plot.addItem(self.scatter)
        self.plot.addItem(self.mean_curve)
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.cellDoubleClicked.connect(self._open)
        self.table.installEventFilter(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.title)
        body = QHBoxLayout()
        body.addWidget(self.table, 1)
        body.addWidget(self.plot)
        layout.addLayout(body, 1)
        self.clear("Select a rollout, then press P to see its prompt at every step it was sampled.")

    def clear(self, message: str) -> None:
        self.groups = []
        self.title.setText(f'<span style="color:#4a5568">{html.escape(message)}</span>')
        self.table.setRowCount(0)
        self.scatter.clear()
        self.mean_curve.setData([], [])

    def show_history(self, groups: list[GroupDetail], total: int, visible: bool) -> None:
        self.groups = groups
        if not groups:
            self.clear("This prompt has no recorded groups.")
            return
        first, last = groups[0], groups[-1]
        label = f"#{first.prompt_index}" if first.prompt_index is not None else "(no dataset row)"
        shown = f" (the last {len(groups)})" if total > len(groups) else ""
        trend = ""
        if first.reward_mean is not None and last.reward_mean is not None:
            trend = (
                f" · mean reward {first.reward_mean:.3f} at step {first.step}"
                f" → {last.reward_mean:.3f} at step {last.step}"
            )
        preview = html.escape(first.prompt.replace("\n", " ⏎ ")[:200])
        self.title.setText(
            f"<b>Prompt {label} over training</b> · sampled at {total} step{'s' if total != 1 else ''}{shown}"
            f"{trend}<br><span style='color:#4a5568'>{preview}</span>"
        )
        xs = [g.step for g in groups for r in g.rollouts if r.reward is not None]
        ys = [r.reward for g in groups for r in g.rollouts if r.reward is not None]
        self.scatter.setData(xs, ys)
        means = [(g.step, g.reward_mean) for g in groups if g.reward_mean is not None]
        self.mean_curve.setData([m[0] for m in means], [m[1] for m in means])
        width = max(len(g.rollouts) for g in groups)
        self.table.clear()
        self.table.setColumnCount(2 + width)
        self.table.setHorizontalHeaderLabels(["Step", "Mean ± std", *[f"#{i + 1}" for i in range(width)]])
        self.table.setRowCount(len(groups))
        span = _rewards_range([r for g in groups for r in g.rollouts])
        for row, g in enumerate(groups):
            self.table.setItem(row, 0, self._item(str(g.step), g.id, None))
            std = f" ± {g.reward_std:.2f}" if g.reward_std is not None else ""
            mean = "—" if g.reward_mean is None else f"{g.reward_mean:.3f}{std}"
            self.table.setItem(row, 1, self._item(mean, g.id, None))
            for col, r in enumerate(g.rollouts):
                text = r.completion.replace(" ", "·") if visible else r.completion
                text = text.replace("\n", "⏎" if visible else " ⏎ ")
                item = self._item(text[:PREVIEW], g.id, r.id)
                item.setBackground(QBrush(QColor(reward_color(r.reward, *span))))
                reward = "—" if r.reward is None else f"{r.reward:.3f}"
                item.setToolTip(f"reward {reward} · step {g.step}\n\n{r.completion[:1500]}")
                self.table.setItem(row, 2 + col, item)
        self.table.setColumnWidth(0, 52)
        self.table.setColumnWidth(1, 96)
        for col in range(width):
            self.table.setColumnWidth(2 + col, 150)
        self.table.scrollToBottom()

    @staticmethod
    def _item(text: str, group_id: int, rollout_id: int | None) -> QTableWidgetItem:
        item = QTableWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, (group_id, rollout_id))
        return item

    def _open(self, row: int, col: int) -> None:
        item = self.table.item(row, col)
        if item is None:
            return
        group_id, rollout_id = item.data(Qt.ItemDataRole.UserRole)
        if rollout_id is None and 0 <= row < len(self.groups) and self.groups[row].rollouts:
            rollout_id = self.groups[row].rollouts[0].id
        if rollout_id is not None:
            self.sig_open_group.emit(group_id, rollout_id)

    def eventFilter(self, obj: object, event: object) -> bool:
        if obj is self.table and isinstance(event, QKeyEvent) and event.type() == QKeyEvent.Type.KeyPress:
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._open(self.table.currentRow(), max(self.table.currentColumn(), 0))
                return True
            if event.key() == Qt.Key.Key_Escape:
                self.sig_back.emit()
                return True
        return False
