"""Completions as rich text: whitespace and special tokens made visible on demand, search words marked.

A trailing space, a doubled newline or a stray ``<|im_end|>`` is often exactly what a reward function
or the policy gets wrong, and plain text hides it. With ``visible=True`` a space shows as ``·``, a tab
as ``→``, a newline as ``⏎`` (then the line break), a carriage return as ``␍``, and special tokens
(``<|...|>``, ``<s>``, ``</s>``, ``[INST]``) get a highlighted box.
"""

from __future__ import annotations

import html
import re

SPECIAL_TOKEN = re.compile(r"<\|[^|<>\n]{1,60}\|>|</?s>|\[/?INST\]|<(?:bos|eos|pad|unk|eot_id)>")
MARK_COLOR = "#a0aec0"
TOKEN_STYLE = "background-color:#fefcbf; color:#744210;"
HIT_STYLE = "background-color:#faf089;"
_VISIBLE = {" ": "·", "\t": "→\t", "\r": "␍", "\n": "⏎"}


def _words_pattern(words: list[str]) -> re.Pattern[str] | None:
    words = [w for w in words if w]
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)


def _plain(text: str, visible: bool, hits: re.Pattern[str] | None) -> str:
    """Escape one run of ordinary text, marking whitespace and search hits."""
    if hits is not None:
        out, pos = [], 0
        for m in hits.finditer(text):
            out.append(_plain(text[pos : m.start()], visible, None))
            out.append(f'<span style="{HIT_STYLE}">{_plain(m.group(0), visible, None)}</span>')
            pos = m.end()
        out.append(_plain(text[pos:], visible, None))
        return "".join(out)
    if not visible:
        return html.escape(text).replace("\n", "<br>")
    parts = []
    for chunk in re.split(r"([ \t\r\n]+)", text):
        if not chunk:
            continue
        if chunk[0] in _VISIBLE:
            # Each newline shows its mark, then breaks the line (so what follows it starts the next one).
            marks = html.escape("".join(_VISIBLE[c] + ("\n" if c == "\n" else "") for c in chunk))
            parts.append(f'<span style="color:{MARK_COLOR};">{marks.replace(chr(10), "<br>")}</span>')
        else:
            parts.append(html.escape(chunk))
    return "".join(parts)


def render_html(text: str, visible: bool = False, highlight: list[str] | None = None) -> str:
    """``text`` as a Qt rich-text fragment (spaces preserved), for a QLabel or QTextBrowser."""
    hits = _words_pattern(highlight or [])
    body: list[str] = []
    pos = 0
    if visible:
        for m in SPECIAL_TOKEN.finditer(text):
            body.append(_plain(text[pos : m.start()], visible, hits))
            body.append(f'<span style="{TOKEN_STYLE}">{html.escape(m.group(0))}</span>')
            pos = m.end()
    body.append(_plain(text[pos:], visible, hits))
    return '<div style="white-space:pre-wrap;">' + "".join(body) + "</div>"


def search_words(search: str) -> list[str]:
    """The words of a search box to mark in the text (quotes and ``*`` removed)."""
    return [w for w in re.findall(r"[^\W_]+", search)]


def reward_color(value: float | None, lo: float, hi: float) -> str:
    """A background for a reward: red (low) through neutral to green (high) within [lo, hi]."""
    if value is None or hi <= lo:
        return "#edf2f7"
    t = min(max((value - lo) / (hi - lo), 0.0), 1.0)
    # Interpolate #fed7d7 (low) -> #f7fafc (middle) -> #c6f6d5 (high).
    low, mid, high = (0xFE, 0xD7, 0xD7), (0xF7, 0xFA, 0xFC), (0xC6, 0xF6, 0xD5)
    a, b, u = (low, mid, t * 2) if t < 0.5 else (mid, high, (t - 0.5) * 2)
    r, g, bl = (round(a[i] + (b[i] - a[i]) * u) for i in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"
