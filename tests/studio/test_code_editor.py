"""The code editor: indentation keys, comments, inline problems, line numbers, highlighting."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QTextCharFormat, QTextCursor

from engine.contract.reward_signatures import Diagnostic
from studio.widgets.code_editor import INDENT, CodeEditor
from studio.widgets.rubric_highlighters import COMMENT, STRING, PythonHighlighter, TomlHighlighter


def make(qtbot, text: str = "") -> CodeEditor:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.resize(500, 300)
    editor.show()
    editor.setPlainText(text)
    return editor


def put_cursor(editor: CodeEditor, line: int, col: int) -> None:
    block = editor.document().findBlockByNumber(line)
    cursor = editor.textCursor()
    cursor.setPosition(block.position() + col)
    editor.setTextCursor(cursor)


def test_enter_keeps_indentation_and_indents_after_a_colon(qtbot) -> None:
    editor = make(qtbot, "def f(completions):")
    editor.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.keyClicks(editor, "x = 1")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.keyClicks(editor, "return x")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.keyClicks(editor, "y")
    assert editor.toPlainText() == "def f(completions):\n    x = 1\n    return x\ny"


def test_tab_inserts_spaces_to_the_next_stop_and_backspace_removes_a_level(qtbot) -> None:
    editor = make(qtbot, "ab")
    put_cursor(editor, 0, 1)
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    assert editor.toPlainText() == "a   b"  # to column 4
    editor.setPlainText("")
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    assert editor.toPlainText() == " " * 2 * INDENT
    qtbot.keyClick(editor, Qt.Key.Key_Backspace)
    assert editor.toPlainText() == " " * INDENT
    qtbot.keyClicks(editor, "x")
    qtbot.keyClick(editor, Qt.Key.Key_Backspace)
    assert editor.toPlainText() == " " * INDENT  # after code, backspace is one character


def test_tab_and_shift_tab_indent_and_dedent_selected_lines(qtbot) -> None:
    editor = make(qtbot, "a\nb\nc")
    editor.selectAll()
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    assert editor.toPlainText() == "    a\n    b\n    c"
    qtbot.keyClick(editor, Qt.Key.Key_Backtab)
    qtbot.keyClick(editor, Qt.Key.Key_Backtab)  # nothing left to remove: unchanged
    assert editor.toPlainText() == "a\nb\nc"


def test_ctrl_slash_toggles_comments_on_selected_lines(qtbot) -> None:
    editor = make(qtbot, "def f():\n    x = 1\n    return x")
    cursor = editor.textCursor()
    cursor.setPosition(editor.document().findBlockByNumber(1).position())
    cursor.setPosition(editor.document().findBlockByNumber(2).position() + 3, QTextCursor.MoveMode.KeepAnchor)
    editor.setTextCursor(cursor)
    qtbot.keyClick(editor, Qt.Key.Key_Slash, Qt.KeyboardModifier.ControlModifier)
    assert editor.toPlainText() == "def f():\n    # x = 1\n    # return x"
    qtbot.keyClick(editor, Qt.Key.Key_Slash, Qt.KeyboardModifier.ControlModifier)
    assert editor.toPlainText() == "def f():\n    x = 1\n    return x"


def test_diagnostics_underline_their_span_and_show_on_hover(qtbot) -> None:
    editor = make(qtbot, "def f(completions, answr):\n    return []\n")
    editor.set_diagnostics(
        [
            Diagnostic(1, 19, "'answr' is not a column", "error", 24),
            Diagnostic(2, 4, "a warning about the whole rest of the line", "warning"),
        ]
    )
    marks = [
        s
        for s in editor.extraSelections()
        if s.format.underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline
    ]
    assert [m.cursor.selectedText() for m in marks] == ["answr", "return []"]
    assert marks[0].format.underlineColor().name() == "#e53e3e"
    assert [d.message for d in editor.diagnostics_at(1, 21)] == ["'answr' is not a column"]
    assert editor.diagnostics_at(1, 2) == []
    editor.set_diagnostics([])
    assert not [
        s
        for s in editor.extraSelections()
        if s.format.underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline
    ]


def test_a_diagnostic_past_the_end_still_shows(qtbot) -> None:
    editor = make(qtbot, "x = (\n")
    editor.set_diagnostics([Diagnostic(9, 40, "syntax error: '(' was never closed")])  # beyond the text
    editor.set_diagnostics([Diagnostic(1, 40, "syntax error at the end of the line")])
    marks = [
        s
        for s in editor.extraSelections()
        if s.format.underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline
    ]
    assert [m.cursor.selectedText() for m in marks] == ["("]


def test_gutter_is_wide_enough_and_go_to_moves_the_cursor(qtbot) -> None:
    editor = make(qtbot, "\n".join(f"line {i}" for i in range(1200)))
    assert editor.gutter_width() > editor.fontMetrics().horizontalAdvance("1200")
    editor.go_to(700, 2)
    assert editor.textCursor().blockNumber() == 699 and editor.textCursor().positionInBlock() == 2
    editor.viewport().update()
    qtbot.wait(10)
    assert editor.cursorForPosition(QPoint(5, 5)).blockNumber() > 0  # scrolled to show it


def _formats(editor: CodeEditor, line: int) -> dict[tuple[int, int], str]:
    """(start, length) -> foreground colour of each highlighted range of a line."""
    block = editor.document().findBlockByNumber(line)
    return {(r.start, r.length): r.format.foreground().color().name() for r in block.layout().formats()}


def test_python_highlighting_knows_strings_comments_and_multiline_strings(qtbot) -> None:
    editor = make(qtbot, 'x = "a # not a comment"  # a comment\n"""doc\nstill doc\n"""\ny = 1\n')
    highlighter = PythonHighlighter(editor.document())
    highlighter.rehighlight()
    colours = _formats(editor, 0)
    assert colours[(4, 19)] == STRING.foreground().color().name()
    assert colours[(25, 11)] == COMMENT.foreground().color().name()
    assert set(_formats(editor, 2).values()) == {STRING.foreground().color().name()}
    assert editor.document().findBlockByNumber(4).userState() in (-1, 0)


def test_toml_highlighting_spans_multiline_strings(qtbot) -> None:
    editor = make(qtbot, "[[criteria]]\ncode = '''\ndef f():\n    return 1\n'''\nweight = 1.0\n")
    highlighter = TomlHighlighter(editor.document())
    highlighter.rehighlight()
    assert set(_formats(editor, 2).values()) == {STRING.foreground().color().name()}
    assert editor.document().findBlockByNumber(5).userState() == 0
