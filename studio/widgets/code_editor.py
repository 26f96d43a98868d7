"""A small code editor: line numbers, current-line highlight, Python-aware indentation, and problems
shown inline (a wavy underline under the exact span, a marker in the gutter, the message on hover).

    editor = CodeEditor()
    editor.set_diagnostics([Diagnostic(line=3, col=4, message="...", end_col=9)])

Keys: Tab / Shift+Tab indent and dedent (the selected lines, or to the next stop of 4 spaces), Enter keeps
the indentation and adds a level after a ':', Backspace in leading whitespace removes one level, Ctrl+/
comments or uncomments the selected lines.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QToolTip, QWidget

from engine.contract.reward_signatures import Diagnostic

INDENT = 4
CURRENT_LINE = QColor("#f1f5fb")
ERROR = QColor("#e53e3e")
WARNING = QColor("#d69e2e")


def monospace_font(point_size: int = 10) -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setPointSize(point_size)
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font


class _Gutter(QWidget):
    def __init__(self, editor: CodeEditor) -> None:
        super().__init__(editor)
        self.editor = editor

    def sizeHint(self) -> QSize:
        return QSize(self.editor.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self.editor.paint_gutter(event)


class CodeEditor(QPlainTextEdit):
    sig_cursor_line = Signal(int)
    """The 1-based line of the cursor."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFont(monospace_font())
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * INDENT)
        self.diagnostics: list[Diagnostic] = []
        self._gutter = _Gutter(self)
        self.blockCountChanged.connect(self._update_gutter_width)
        self.updateRequest.connect(self._update_gutter)
        self.cursorPositionChanged.connect(self._refresh_selections)
        self.cursorPositionChanged.connect(
            lambda: self.sig_cursor_line.emit(self.textCursor().blockNumber() + 1)
        )
        self._update_gutter_width()
        self._refresh_selections()

    # ---- gutter ----------------------------------------------------------------------------------------
    def gutter_width(self) -> int:
        digits = max(3, len(str(max(1, self.blockCount()))))
        return 18 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_gutter_width(self, *_: Any) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())
        if rect.contains(self.viewport().rect()):
            self._update_gutter_width()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        r = self.contentsRect()
        self._gutter.setGeometry(QRect(r.left(), r.top(), self.gutter_width(), r.height()))

    def paint_gutter(self, event: QPaintEvent) -> None:
        painter = QPainter(self._gutter)
        painter.fillRect(event.rect(), QColor("#f7f8fa"))
        severity: dict[int, str] = {}
        for d in self.diagnostics:
            if severity.get(d.line) != "error":
                severity[d.line] = d.severity
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        current = self.textCursor().blockNumber()
        height = self.fontMetrics().height()
        width = self._gutter.width()
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                painter.setPen(QColor("#1a202c") if number == current else QColor("#a0aec0"))
                painter.drawText(0, top, width - 6, height, Qt.AlignmentFlag.AlignRight, str(number + 1))
                kind = severity.get(number + 1)
                if kind:
                    painter.setPen(Qt.PenStyle.NoPen)
                    painter.setBrush(ERROR if kind == "error" else WARNING)
                    size = max(6, height // 2)
                    painter.drawEllipse(3, top + (height - size) // 2, size, size)
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()

    # ---- diagnostics -------------------------------------------------------------------------------------
    def set_diagnostics(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        self._refresh_selections()
        self._gutter.update()

    def _refresh_selections(self) -> None:
        selections = []
        if not self.isReadOnly():
            line = QTextEdit.ExtraSelection()
            line.format.setBackground(CURRENT_LINE)  # type: ignore[attr-defined]
            line.format.setProperty(QTextFormat.Property.FullWidthSelection, True)  # type: ignore[attr-defined]
            line.cursor = self.textCursor()  # type: ignore[misc]
            line.cursor.clearSelection()  # type: ignore[attr-defined]
            selections.append(line)
        for d in self.diagnostics:
            cursor = self._span(d)
            if cursor is None:
                continue
            mark = QTextEdit.ExtraSelection()
            fmt = QTextCharFormat()
            fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
            fmt.setUnderlineColor(ERROR if d.severity == "error" else WARNING)
            mark.format = fmt  # type: ignore[misc]
            mark.cursor = cursor  # type: ignore[misc]
            selections.append(mark)
        self.setExtraSelections(selections)

    def _span(self, d: Diagnostic) -> QTextCursor | None:
        """The text a diagnostic points at: its columns, or the rest of the line (at least one char)."""
        block = self.document().findBlockByNumber(d.line - 1)
        if not block.isValid():
            block = self.document().lastBlock()
        text = block.text()
        start = min(d.col, len(text))
        end = d.end_col if d.end_col is not None and d.end_col > start else len(text)
        if end <= start:  # an empty line or the end of a line: underline what is there
            start = max(0, min(start, len(text) - 1))
            end = start + 1 if text else start
        if end == start:
            return None
        cursor = QTextCursor(block)
        cursor.setPosition(block.position() + start)
        cursor.setPosition(block.position() + min(end, len(text)), QTextCursor.MoveMode.KeepAnchor)
        return cursor

    def diagnostics_at(self, line: int, col: int | None = None) -> list[Diagnostic]:
        found = []
        for d in self.diagnostics:
            if d.line != line:
                continue
            end = d.end_col if d.end_col is not None else 10**9
            if col is None or d.col <= col <= end or d.end_col is None:
                found.append(d)
        return found

    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.Type.ToolTip:
            pos = e.pos()  # type: ignore[attr-defined]
            cursor = self.cursorForPosition(pos - self.viewport().pos())
            found = self.diagnostics_at(cursor.blockNumber() + 1, cursor.positionInBlock())
            if found:
                QToolTip.showText(e.globalPos(), "\n".join(d.message for d in found), self)  # type: ignore[attr-defined]
            else:
                QToolTip.hideText()
            return True
        return super().event(e)

    def go_to(self, line: int, col: int = 0, focus: bool = True) -> None:
        block = self.document().findBlockByNumber(max(0, line - 1))
        cursor = QTextCursor(block)
        cursor.setPosition(block.position() + min(col, len(block.text())))
        self.setTextCursor(cursor)
        if focus:
            self.centerCursor()
            self.setFocus()
        else:  # show the line near the top, as an editor does when it opens a definition
            self.verticalScrollBar().setValue(max(0, line - 3))

    # ---- keys --------------------------------------------------------------------------------------------
    def keyPressEvent(self, e: QKeyEvent) -> None:
        if self.isReadOnly():
            super().keyPressEvent(e)
            return
        key, mods = e.key(), e.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if key == Qt.Key.Key_Tab and not ctrl:
            self.indent()
        elif key == Qt.Key.Key_Backtab:
            self.dedent()
        elif (
            key in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and not ctrl
            and not (mods & Qt.KeyboardModifier.ShiftModifier)
        ):
            self._newline()
        elif key == Qt.Key.Key_Backspace and not self.textCursor().hasSelection() and self._backspace():
            pass
        elif ctrl and key == Qt.Key.Key_Slash:
            self.toggle_comment()
        else:
            super().keyPressEvent(e)

    def _selected_blocks(self) -> tuple[int, int]:
        c = self.textCursor()
        doc = self.document()
        first = doc.findBlock(c.selectionStart()).blockNumber()
        end_block = doc.findBlock(c.selectionEnd())
        last = end_block.blockNumber()
        if c.hasSelection() and c.selectionEnd() == end_block.position() and last > first:
            last -= 1  # a selection ending at a line's start does not include that line
        return first, last

    def _edit_lines(self, edit: Any) -> None:
        first, last = self._selected_blocks()
        cursor = self.textCursor()
        cursor.beginEditBlock()
        for number in range(first, last + 1):
            edit(self.document().findBlockByNumber(number))
        cursor.endEditBlock()
        start = self.document().findBlockByNumber(first)
        end = self.document().findBlockByNumber(last)
        cursor.setPosition(start.position())
        cursor.setPosition(end.position() + len(end.text()), QTextCursor.MoveMode.KeepAnchor)
        self.setTextCursor(cursor)

    def indent(self) -> None:
        """Without a selection, spaces to the next indent stop; with one, indent every selected line."""
        cursor = self.textCursor()
        if not cursor.hasSelection():
            column = cursor.positionInBlock()
            cursor.insertText(" " * (INDENT - column % INDENT))
            return

        def add(block: Any) -> None:
            c = QTextCursor(block)
            c.insertText(" " * INDENT)

        self._edit_lines(add)

    def dedent(self) -> None:
        def remove(block: Any) -> None:
            text = block.text()
            n = min(INDENT, len(text) - len(text.lstrip(" ")))
            if n:
                c = QTextCursor(block)
                c.setPosition(block.position() + n, QTextCursor.MoveMode.KeepAnchor)
                c.removeSelectedText()

        self._edit_lines(remove)

    def toggle_comment(self) -> None:
        first, last = self._selected_blocks()
        blocks = [self.document().findBlockByNumber(n) for n in range(first, last + 1)]
        code = [b for b in blocks if b.text().strip()]
        uncomment = bool(code) and all(b.text().lstrip().startswith("#") for b in code)
        margin = min((len(b.text()) - len(b.text().lstrip()) for b in code), default=0)

        def edit(block: Any) -> None:
            text = block.text()
            if not text.strip():
                return
            c = QTextCursor(block)
            if uncomment:
                at = text.index("#")
                n = 2 if text[at + 1 : at + 2] == " " else 1
                c.setPosition(block.position() + at)
                c.setPosition(block.position() + at + n, QTextCursor.MoveMode.KeepAnchor)
                c.removeSelectedText()
            else:
                c.setPosition(block.position() + margin)
                c.insertText("# ")

        self._edit_lines(edit)

    def _newline(self) -> None:
        cursor = self.textCursor()
        before = cursor.block().text()[: cursor.positionInBlock()]
        indent = before[: len(before) - len(before.lstrip())]
        stripped = before.split("#", 1)[0].rstrip()
        if stripped.endswith(":"):
            indent += " " * INDENT
        elif stripped.split() and stripped.split()[0] in ("return", "pass", "break", "continue", "raise"):
            indent = indent[: max(0, len(indent) - INDENT)]
        cursor.beginEditBlock()
        cursor.insertText("\n" + indent)
        cursor.endEditBlock()
        self.ensureCursorVisible()

    def _backspace(self) -> bool:
        """In leading whitespace, remove back to the previous indent stop. True when handled."""
        cursor = self.textCursor()
        column = cursor.positionInBlock()
        before = cursor.block().text()[:column]
        if column == 0 or before.strip() or not before.endswith(" "):
            return False
        n = (column - 1) % INDENT + 1
        cursor.movePosition(QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor, n)
        cursor.removeSelectedText()
        return True
