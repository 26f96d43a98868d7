"""Writing the editor's changes into a rubric's TOML with tomlkit, so a user's comments, key order and
layout survive: an edit through the table changes the lines it changes and nothing else.

`update(text, data, previous)` applies `data` (the rubric as tomllib reads it, after the edit) to `text`:
a value that did not change keeps its exact text and its trailing comment, a changed value is
replaced in place, new keys and criteria are added, removed ones dropped. Criteria are matched to
their [[criteria]] tables by identity with `previous` (the criterion dicts `text` was parsed into), so
a criterion renamed or moved keeps its comments. New values are written readably: code as ''' blocks,
regexes as literal strings, tables inside a criterion as [criteria.key] sections.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import ParseError
from tomlkit.items import AoT, Array, InlineTable, Item, String, StringType, Table, Trivia

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
Mapping = Container | Table | InlineTable


def update(text: str, data: dict[str, Any], previous: list[dict[str, Any]]) -> str:
    """`text` with `data` applied (see the module's docstring). Text that does not parse is rewritten."""
    try:
        doc = tomlkit.parse(text)
    except ParseError:
        return dumps(data)
    _merge(doc, data, previous)
    out = tomlkit.dumps(doc)
    # The merge keeps what it can; should it ever write something that reads back differently, the
    # data wins over the layout.
    return out if _same(tomllib.loads(out), data) else dumps(data)


def dumps(data: dict[str, Any]) -> str:
    """A new TOML text for `data`: top-level keys, then one [[criteria]] table per criterion."""
    doc = tomlkit.document()
    _merge(doc, data, [])
    return tomlkit.dumps(doc).strip("\n") + "\n"


def inline(value: Any) -> str:
    """One value as inline TOML on one line (multi-line strings escaped)."""
    if isinstance(value, str):
        return (
            tomlkit.string(value).as_string() if "\n" in value or "'" in value else _string(value).as_string()
        )
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key(k)} = {inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    return tomlkit.item(value).as_string()


def key(name: str) -> str:
    return tomlkit.key(name).as_string()


# ---- the merge ----------------------------------------------------------------------------------------


def _merge(target: Mapping, data: dict[str, Any], previous: list[dict[str, Any]]) -> None:
    for k in [k for k in target if k not in data]:
        del target[k]
    last_plain: str | None = None  # the last key that is not a table: new plain keys go after it
    for k, value in data.items():
        if k not in target:
            _add(target, k, value, last_plain)
        else:
            old = target[k]
            if isinstance(old, AoT) and _is_tables(value):
                _merge_tables(target, k, old, value, previous)
            elif isinstance(old, Table | InlineTable) and isinstance(value, dict):
                _merge(old, value, [])
            elif not _same(_plain(old), value):
                target[k] = _item(value, inline_tables=isinstance(target, InlineTable))
        if not (isinstance(target.get(k), Table | AoT)):
            last_plain = k


def _add(target: Mapping, k: str, value: Any, after: str | None) -> None:
    if isinstance(target, Container) and _is_tables(value):
        aot = tomlkit.aot()
        for table in value:
            aot.append(_new_table(table))
        target.append(k, aot)
        return
    item = _item(value, inline_tables=isinstance(target, InlineTable))
    if after is not None and isinstance(target, Container) and not isinstance(item, Table):
        target._insert_after(after, k, item)  # beside the other top-level keys, not after a comment block
    else:
        target.append(k, item)


def _merge_tables(
    target: Mapping, k: str, old: AoT, tables: list[dict[str, Any]], previous: list[dict[str, Any]]
) -> None:
    """Criteria: each keeps its table (and comments) when it was one of `previous`, wherever it moved."""
    old_tables = list(old.body)
    kept: list[Table] = []
    for table in tables:
        j = next((i for i, p in enumerate(previous) if p is table and i < len(old_tables)), None)
        if j is None:
            kept.append(_new_table(table))
        else:
            _merge(old_tables[j], table, [])
            kept.append(old_tables[j])
    if [id(t) for t in kept] == [id(t) for t in old_tables]:
        return
    aot = tomlkit.aot()
    for table in kept:
        aot.append(table)
    target[k] = aot


def _new_table(data: dict[str, Any]) -> Table:
    table = tomlkit.table()
    first = [k for k in ("name", "kind") if k in data]
    for k in [*first, *(k for k in data if k not in first)]:
        table.append(k, _item(data[k], inline_tables=False))
    return table


def _item(value: Any, inline_tables: bool) -> Item:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        table: Table | InlineTable = tomlkit.inline_table() if inline_tables else tomlkit.table()
        for k, v in value.items():
            table.append(k, _item(v, inline_tables))
        return table
    if isinstance(value, list | tuple):
        array: Array = tomlkit.array()
        for v in value:
            array.append(_item(v, inline_tables=True))
        return array
    return tomlkit.item(value)


def _string(text: str) -> String:
    """The most readable TOML form of a string: code stays a block, regexes stay unescaped."""
    if "\n" in text:
        if "'''" not in text and not _CONTROL.search(text.replace("\r\n", "\n")) and not text.endswith("'"):
            # the newline after the opening ''' is not part of the value (TOML trims it)
            return String(StringType.MLL, text, "\n" + text, Trivia())
        return tomlkit.string(text, multiline=True)
    if "\\" in text and "'" not in text and not _CONTROL.search(text) and "\t" not in text:
        return tomlkit.string(text, literal=True)
    return tomlkit.string(text)


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1, 1.0 and true are three different TOML values)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
