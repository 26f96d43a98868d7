"""Syntax highlighting for the rubric editor: Python (reward code) and TOML (the rubric file).

Regex rules per line, plus block states for what spans lines (Python's triple-quoted strings, TOML's
multi-line strings). Colours follow a light theme that matches the studio's palette.
"""

from __future__ import annotations

import keyword
import re
from typing import ClassVar

from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat


def _format(color: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(color))
    if bold:
        fmt.setFontWeight(QFont.Weight.Bold)
    if italic:
        fmt.setFontItalic(True)
    return fmt


KEYWORD = _format("#7c3aed", bold=True)
BUILTIN = _format("#0e7490")
STRING = _format("#15803d")
NUMBER = _format("#b45309")
COMMENT = _format("#718096", italic=True)
DEFINITION = _format("#1d4ed8", bold=True)
DECORATOR = _format("#9d174d")
SELF = _format("#9a3412", italic=True)
SECTION = _format("#1d4ed8", bold=True)
TOML_KEY = _format("#7c3aed")

_BUILTINS = [
    *("abs", "all", "any", "bool", "dict", "enumerate", "filter", "float", "int", "isinstance", "len"),
    *("list", "map", "max", "min", "print", "range", "repr", "round", "set", "sorted", "str", "sum"),
    *("tuple", "zip", "None", "True", "False"),
]

# States carried from one block (line) to the next.
_NONE, _TRIPLE_DOUBLE, _TRIPLE_SINGLE = 0, 1, 2


class _LineHighlighter(QSyntaxHighlighter):
    """Regex rules per line (colouring group ``group`` of each match), then strings and comments left to
    right so that '#' inside a string is text; a triple-quoted string may go on over lines."""

    RULES: ClassVar[list[tuple[re.Pattern[str], QTextCharFormat, int]]] = []
    STRING_OR_COMMENT: ClassVar[re.Pattern[str]]
    """Groups: ``triple`` (an opening triple quote, maybe prefixed), ``str``, ``comment``."""

    def highlightBlock(self, text: str) -> None:
        for pattern, fmt, group in self.RULES:
            for rule in pattern.finditer(text):
                self.setFormat(rule.start(group), rule.end(group) - rule.start(group), fmt)
        self.setCurrentBlockState(_NONE)
        start = 0
        previous = self.previousBlockState()
        if previous in (_TRIPLE_DOUBLE, _TRIPLE_SINGLE):
            start = self._continue_triple(text, 0, '"""' if previous == _TRIPLE_DOUBLE else "'''")
            if start < 0:
                return
        while start < len(text):
            m = self.STRING_OR_COMMENT.search(text, start)
            if m is None:
                return
            if m.group("comment"):
                self.setFormat(m.start(), len(text) - m.start(), COMMENT)
                return
            self.setFormat(m.start(), m.end() - m.start(), STRING)
            start = m.end()
            if m.group("triple"):
                start = self._continue_triple(text, start, m.group("triple")[-3:])
                if start < 0:
                    return

    def _continue_triple(self, text: str, start: int, quote: str) -> int:
        """Colour from `start` to the closing quote; returns where to go on, or -1 if the string goes on."""
        end = text.find(quote, start)
        if end < 0:
            self.setFormat(start, len(text) - start, STRING)
            self.setCurrentBlockState(_TRIPLE_DOUBLE if quote == '"""' else _TRIPLE_SINGLE)
            return -1
        self.setFormat(start, end + 3 - start, STRING)
        return end + 3


class PythonHighlighter(_LineHighlighter):
    RULES: ClassVar[list[tuple[re.Pattern[str], QTextCharFormat, int]]] = [
        (re.compile(r"\b(?:" + "|".join([*keyword.kwlist, "match", "case"]) + r")\b"), KEYWORD, 0),
        (re.compile(r"\b(?:" + "|".join(_BUILTINS) + r")\b"), BUILTIN, 0),
        (re.compile(r"\bself\b"), SELF, 0),
        (
            re.compile(r"\b[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?j?\b|\b0[xob][0-9a-fA-F_]+\b"),
            NUMBER,
            0,
        ),
        (re.compile(r"^\s*(@[\w.]+)"), DECORATOR, 1),
        (re.compile(r"\b(?:def|class)\s+(\w+)"), DEFINITION, 1),
    ]
    # One-line strings (with prefixes) and comments.
    STRING_OR_COMMENT = re.compile(
        r"""(?P<triple>[rRbBuUfF]{0,2}(?:\"\"\"|'''))|(?P<str>[rRbBuUfF]{0,2}(?:"(?:\\.|[^"\\])*"?|'(?:\\.|[^'\\])*'?))|(?P<comment>\#.*)"""
    )


class TomlHighlighter(_LineHighlighter):
    RULES: ClassVar[list[tuple[re.Pattern[str], QTextCharFormat, int]]] = [
        (re.compile(r"^\s*\[\[?[^\]]*\]\]?"), SECTION, 0),
        (re.compile(r"^\s*[A-Za-z0-9_.\"'-]+(?=\s*=)"), TOML_KEY, 0),
        (
            re.compile(r"(?<=[=\[,\s])(?:true|false|[-+]?\d[\d_]*(?:\.\d+)?(?:[eE][-+]?\d+)?|inf|nan)\b"),
            NUMBER,
            0,
        ),
    ]
    STRING_OR_COMMENT = re.compile(
        r"""(?P<triple>\"\"\"|''')|(?P<str>"(?:\\.|[^"\\])*"?|'[^']*'?)|(?P<comment>\#.*)"""
    )
