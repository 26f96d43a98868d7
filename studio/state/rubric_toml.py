"""Writing a rubric back to TOML (the standard library reads TOML but does not write it).

Covers what a rubric holds: strings (multi-line code as ''' blocks), numbers, booleans, arrays, and
tables. Top-level scalars come first, then one [[criteria]] block per criterion; a table inside a
criterion (an OpenAI grader, a JSON schema) becomes a [criteria.key] section, and tables inside arrays
become inline tables. What it writes, tomllib reads back to equal data (a test checks).
"""

from __future__ import annotations

import math
import re
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def key(name: str) -> str:
    return name if _BARE_KEY.match(name) else basic_string(name)


def basic_string(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif _CONTROL.match(ch):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def string(text: str) -> str:
    """The most readable TOML form of a string: regexes stay unescaped, code stays a block."""
    if "\n" in text:
        if "'''" not in text and not _CONTROL.search(text.replace("\r\n", "\n")) and not text.endswith("'"):
            return "'''\n" + text + "'''"
        escaped = basic_string(text)[1:-1].replace("\\n", "\n")
        escaped = escaped.replace('"""', '""\\"')
        if escaped.endswith('"'):
            escaped = escaped[:-1] + '\\"'
        return '"""\n' + escaped + '"""'
    if "\\" in text and "'" not in text and not _CONTROL.search(text) and "\t" not in text:
        return "'" + text + "'"
    return basic_string(text)


def value(v: Any) -> str:
    """One value, inline."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = repr(v)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(v, str):
        return string(v)
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML: {v!r}")


def _table_body(data: dict[str, Any], prefix: str, lines: list[str]) -> None:
    """Scalars and arrays of `data` as key = value lines, then its sub-tables as [prefix.key] sections."""
    tables = []
    for k, v in data.items():
        if isinstance(v, dict) and v:
            tables.append((k, v))
        else:
            lines.append(f"{key(k)} = {value(v)}")
    for k, v in tables:
        lines.append("")
        lines.append(f"[{prefix}.{key(k)}]")
        _table_body(v, f"{prefix}.{key(k)}", lines)


def dumps(data: dict[str, Any], header: str = "") -> str:
    """A rubric (as tomllib reads it) as TOML text. `header` (comment lines) goes first."""
    lines: list[str] = [header.rstrip("\n")] if header.strip() else []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for k, v in data.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        elif isinstance(v, dict) and v:
            tables.append((k, v))
        else:
            lines.append(f"{key(k)} = {value(v)}")
    for k, v in tables:
        lines += ["", f"[{key(k)}]"]
        _table_body(v, key(k), lines)
    for k, items in arrays:
        for item in items:
            lines += ["", f"[[{key(k)}]]"]
            _table_body(item, key(k), lines)
    return "\n".join(lines).strip("\n") + "\n"
