"""A reward sparkline in the runs list: a few dozen bucket means drawn with QPainter (no pyqtgraph)."""

from __future__ import annotations

import math

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from studio.models.runs_model import SPARKLINE_ROLE


class SparklineDelegate(QStyledItemDelegate):
    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        values = index.data(SPARKLINE_ROLE) or []
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)  # type: ignore[attr-defined]
        if selected:
            painter.fillRect(option.rect, option.palette.highlight())  # type: ignore[attr-defined]
        rect = QRectF(option.rect).adjusted(3, 4, -3, -4)  # type: ignore[attr-defined]
        text_w = painter.fontMetrics().horizontalAdvance("-0.000") + 4
        spark = QRectF(rect.left(), rect.top(), max(rect.width() - text_w, 10), rect.height())
        finite = [v for v in values if not math.isnan(v)]
        if len(finite) >= 2:
            lo, hi = min(finite), max(finite)
            span = hi - lo or 1.0
            step = spark.width() / (len(values) - 1)
            poly = QPolygonF()
            for i, v in enumerate(values):
                if math.isnan(v):
                    continue
                poly.append(
                    QPointF(spark.left() + i * step, spark.bottom() - (v - lo) / span * spark.height())
                )
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            pen = QPen(QColor("#ffffff" if selected else "#4e79a7"), 1.4)
            painter.setPen(pen)
            painter.drawPolyline(poly)
        painter.setPen(
            option.palette.highlightedText().color() if selected else option.palette.text().color()
        )  # type: ignore[attr-defined]
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), text)
        painter.restore()
