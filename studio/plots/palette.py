"""Colours the plots and the runs list share (Tableau 10: distinct, and readable on white)."""

from __future__ import annotations

from PySide6.QtCore import Qt

COLORS = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
DASHES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def dash(i: int) -> Qt.PenStyle:
    return DASHES[i % len(DASHES)]
