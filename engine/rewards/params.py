"""Reading one criterion's TOML table through the rubric format (engine/contract/rubric_format.py).

The loader checks the whole table against the format first (`check`): unknown fields, with the
closest known one (`sourse = ...` -> did you mean 'source'?), missing required fields, types, bounds,
allowed values, and rules between fields, with the same messages the studio's editor shows while
typing. The criterion then reads its fields: a field left out reads as the format's default.
"""

from __future__ import annotations

from typing import Any

from engine.contract.rubric_format import KINDS, NAME, Field, Kind, criterion_problems, value_problem
from engine.rewards.errors import RubricError

_MISSING: Any = object()


def check(table: dict[str, Any], index: int) -> Kind:
    """The criterion's kind, once the table fits the format; RubricError with the first problem."""
    problems = criterion_problems(table, index)
    if problems:
        name = table.get("name")
        label = name if isinstance(name, str) and NAME.match(name) else None
        raise RubricError(problems[0], label)
    return KINDS[table["kind"]]


class Params:
    def __init__(self, criterion: str, kind: Kind, table: dict[str, Any]) -> None:
        self.criterion = criterion
        self.kind = kind
        self.table = table

    def error(self, message: str) -> RubricError:
        return RubricError(message, self.criterion)

    def has(self, key: str) -> bool:
        return key in self.table

    def _field(self, key: str) -> Field:
        field = self.kind.field(key)
        if field is None:  # a bug of ours: the criterion reads a field the format does not describe
            raise KeyError(f"the rubric format has no field '{key}' for kind '{self.kind.name}'")
        return field

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        """The field's value; when absent, `default` if given, else the format's default."""
        field = self._field(key)
        if key in self.table:
            value = self.table[key]
            problem = value_problem(field, value)
            if problem:
                raise self.error(problem)
            return value
        if default is not _MISSING:
            return default
        if field.required:
            raise self.error(f"a {self.kind.name} criterion needs '{key}'")
        return field.default

    def text(self, key: str, default: Any = _MISSING) -> Any:
        return self.raw(key, default)

    def number(self, key: str, default: Any = _MISSING, minimum: float | None = None) -> Any:
        value = self.raw(key, default)
        if value is None or key not in self.table:
            return value if value is None else float(value)
        if minimum is not None and value < minimum:
            raise self.error(f"'{key}' must be at least {minimum:g}, not {value!r}")
        return float(value)

    def integer(self, key: str, default: Any = _MISSING, minimum: int | None = None) -> Any:
        value = self.raw(key, default)
        if minimum is not None and key in self.table and value < minimum:
            raise self.error(f"'{key}' must be at least {minimum}, not {value!r}")
        return value

    def flag(self, key: str, default: Any = _MISSING) -> Any:
        return self.raw(key, default)

    def choice(self, key: str, choices: tuple[str, ...] = (), default: Any = _MISSING) -> Any:
        return self.raw(key, default)

    def texts(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        return [value] if isinstance(value, str) else value

    def table_value(self, key: str, default: Any = _MISSING) -> Any:
        return self.raw(key, default)
