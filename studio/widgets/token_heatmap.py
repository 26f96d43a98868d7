"""A completion as a token heat map: each token a coloured span in a read-only text view, coloured by the
chosen statistic (log-prob, entropy, loss share or advantage, KL, value), a legend of the colour scale,
and the token's exact values in its tooltip. Reads the rollout's token stats (studio/state/token_heat.py).
"""

from __future__ import annotations

import bisect
import sqlite3

from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QHelpEvent,
    QLinearGradient,
    QPainter,
    QPaintEvent,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStackedWidget,
    QTextBrowser,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from engine.contract.token_stats import LABELS, LOGPROB, TokenStats
from studio.state import token_heat
from studio.state.token_heat import Scale

MARKS = {" ": "·", "\t": "→", "\n": "⏎\n", "\r": "␍"}
MARK_COLOR = "#718096"
GAP = "\u200b"  # zero width, widened by letter spacing: a thin gap that is not a space
NO_STATS = (
    "This rollout has no token-level evidence: the run was recorded with [training] record_token_stats = "
    "false, by an RL Studio from before it, or it is an agent rollout."
)


class LegendBar(QWidget):
    """The colour scale of the shown statistic, its low end on the left."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale: Scale | None = None
        self.setMinimumSize(180, 30)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def set_scale(self, scale: Scale | None) -> None:
        self.scale = scale
        self.setToolTip(f"{scale.lo:.4g} … {scale.hi:.4g}" if scale else "")
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        if self.scale is None:
            return
        painter = QPainter(self)
        bar = QRectF(4, 2, self.width() - 8, 12)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        stops = self.scale.stops()
        for i, (_value, color) in enumerate(stops):
            gradient.setColorAt(i / (len(stops) - 1), QColor(color))
        painter.fillRect(bar, gradient)
        painter.setPen(QColor("#a0aec0"))
        painter.drawRect(bar)
        painter.setPen(QColor("#4a5568"))
        text_y = int(bar.bottom()) + 13
        painter.drawText(QPoint(4, text_y), f"{self.scale.lo:.3g}")
        high = f"{self.scale.hi:.3g}"
        painter.drawText(
            QPoint(self.width() - 4 - painter.fontMetrics().horizontalAdvance(high), text_y), high
        )
        painter.end()


class TokenText(QTextBrowser):
    """The tokens, each a span with its own background; hovering one shows its exact values."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setOpenLinks(False)
        self.setObjectName("tokenHeatmap")
        family = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()
        self.setStyleSheet(f"QTextBrowser#tokenHeatmap {{ font-family: '{family}'; font-size: 12pt; }}")
        self.tokens: TokenStats | None = None
        self.starts: list[int] = []
        """The document position of each token's first character."""
        self.ends: list[int] = []
        """The document position just after each token's last character."""

    def set_tokens(self, tokens: TokenStats, scale: Scale) -> None:
        self.tokens = tokens
        self.starts, self.ends = [], []
        self.clear()
        cursor = QTextCursor(self.document())
        block = QTextBlockFormat()
        block.setLineHeight(160, QTextBlockFormat.LineHeightTypes.ProportionalHeight.value)
        cursor.setBlockFormat(block)
        gap = QTextCharFormat()
        gap.setFontLetterSpacingType(QFont.SpacingType.AbsoluteSpacing)
        gap.setFontLetterSpacing(2.0)
        values = tokens.stats[scale.stat]
        for i, (text, value) in enumerate(zip(tokens.texts, values, strict=True)):
            if i:  # a 2-pixel gap between tokens: where one ends and the next begins stays visible
                cursor.insertText(GAP, gap)
            self.starts.append(cursor.position())
            fmt = QTextCharFormat()
            fmt.setBackground(QColor(scale.color(value)))
            if not text:  # a token that completes a character split over several (see token_stats.py)
                cursor.insertText("\u2009", fmt)
            elif text.strip():
                cursor.insertText(text, fmt)
            else:  # whitespace alone: show it, or its colour would be invisible
                fmt.setForeground(QColor(MARK_COLOR))
                cursor.insertText("".join(MARKS.get(c, c) for c in text), fmt)
            self.ends.append(cursor.position())
        self.moveCursor(QTextCursor.MoveOperation.Start)

    def token_at_position(self, position: int) -> int | None:
        """The token drawn with the document's character at `position` (None for a gap between tokens)."""
        if self.tokens is None or not self.starts or position < 0:
            return None
        index = bisect.bisect_right(self.starts, position) - 1
        return index if index >= 0 and position < self.ends[index] else None

    def token_at(self, point: QPoint) -> int | None:
        """The token under a point of the viewport (None over blank space)."""
        offset = QPointF(self.horizontalScrollBar().value(), self.verticalScrollBar().value())
        layout = self.document().documentLayout()
        position = layout.hitTest(QPointF(point) + offset, Qt.HitTestAccuracy.ExactHit)
        if position < 0:
            return None
        cursor = QTextCursor(self.document())
        cursor.setPosition(position)
        if point.x() < self.cursorRect(cursor).left():  # the hit is the right half of the character before
            position -= 1
        return self.token_at_position(position)

    def tooltip_at(self, point: QPoint) -> str | None:
        index = self.token_at(point)
        if index is None or self.tokens is None:
            return None
        return token_heat.token_tooltip(self.tokens, index)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            text = self.tooltip_at(event.pos())
            if text:
                QToolTip.showText(event.globalPos(), text, self.viewport())
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().viewportEvent(event)


class TokenHeatmap(QWidget):
    sig_stat_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rollout_id: int | None = None
        self.tokens: TokenStats | None = None
        self.stat = LOGPROB
        self.stat_box = QComboBox()
        self.stat_box.setToolTip("The statistic that colours the tokens")
        self.stat_box.currentIndexChanged.connect(self._stat_picked)
        self.legend = LegendBar()
        self.caption = QLabel()
        self.caption.setObjectName("muted")
        self.caption.setWordWrap(True)
        self.text = TokenText()
        self.message = QLabel()
        self.message.setObjectName("emptyState")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        self.stack.addWidget(self.text)

        head = QHBoxLayout()
        head.addWidget(QLabel("Colour by"))
        head.addWidget(self.stat_box)
        head.addSpacing(12)
        head.addWidget(self.legend)
        head.addWidget(self.caption, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(head)
        layout.addWidget(self.stack, 1)
        self.clear("Select a rollout to see its tokens.")

    def clear(self, message: str) -> None:
        self.rollout_id, self.tokens = None, None
        self.text.tokens = None
        self.message.setText(message)
        self.stack.setCurrentWidget(self.message)
        self.legend.set_scale(None)
        self.caption.clear()
        self.stat_box.setEnabled(False)

    def show_rollout(self, conn: sqlite3.Connection, rollout_id: int) -> None:
        if rollout_id == self.rollout_id:
            return
        tokens = token_heat.read_token_stats(conn, rollout_id)
        if tokens is None:
            self.clear(NO_STATS)
        else:
            self.show_tokens(tokens)
        self.rollout_id = rollout_id

    def show_tokens(self, tokens: TokenStats) -> None:
        self.tokens = tokens
        names = token_heat.available(tokens)
        self.stat_box.blockSignals(True)
        self.stat_box.clear()
        for name in names:
            self.stat_box.addItem(LABELS.get(name, name), name)
        self.stat_box.setEnabled(bool(names))
        self.stat_box.blockSignals(False)
        if self.stat not in names and names:
            self.stat = names[0]  # the chosen one stays across rollouts that have it
        if not len(tokens) or not names:
            self.message.setText("The completion has no tokens.")
            self.stack.setCurrentWidget(self.message)
            return
        self.stat_box.setCurrentIndex(names.index(self.stat))
        self._render()

    def set_stat(self, name: str) -> None:
        index = self.stat_box.findData(name)
        if index >= 0:
            self.stat_box.setCurrentIndex(index)

    def available(self) -> list[str]:
        return [self.stat_box.itemData(i) for i in range(self.stat_box.count())]

    def _stat_picked(self, index: int) -> None:
        name = self.stat_box.itemData(index)
        if name is None or self.tokens is None:
            return
        self.stat = name
        self._render()
        self.sig_stat_changed.emit(name)

    def _render(self) -> None:
        assert self.tokens is not None
        scale = token_heat.scale_for(self.stat, self.tokens.stats[self.stat])
        self.text.set_tokens(self.tokens, scale)
        self.legend.set_scale(scale)
        self.caption.setText(token_heat.CAPTIONS.get(self.stat, ""))
        self.stack.setCurrentWidget(self.text)
