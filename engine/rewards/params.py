"""Reading one criterion's TOML table: typed fields, defaults, and an error for every unknown key.

Unknown keys are rejected (`wieght = 1` is a typo, not a wish), and every message names the criterion,
the field and how to fix it.
"""

from __future__ import annotations

import math
from typing import Any

from engine.rewards.errors import RubricError

_MISSING: Any = object()


class Params:
    def __init__(self, criterion: str, kind: str, table: dict[str, Any], consumed: set[str]) -> None:
        self.criterion = criterion
        self.kind = kind
        self.table = table
        self.used = set(consumed)

    def error(self, message: str) -> RubricError:
        return RubricError(message, self.criterion)

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is _MISSING:
                raise self.error(f"a {self.kind} criterion needs '{key}'")
            return default
        return self.table[key]

    def text(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is not default and not isinstance(value, str):
            raise self.error(f"'{key}' must be a string (in quotes), not {value!r}")
        return value

    def number(self, key: str, default: Any = _MISSING, minimum: float | None = None) -> Any:
        value = self.raw(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(f"'{key}' must be a number, not {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(f"'{key}' must be at least {minimum:g}, not {value!r}")
        return float(value)

    def integer(self, key: str, default: Any = _MISSING, minimum: int | None = None) -> Any:
        value = self.raw(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"'{key}' must be a whole number, not {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(f"'{key}' must be at least {minimum}, not {value!r}")
        return value

    def flag(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is not default and not isinstance(value, bool):
            raise self.error(f"'{key}' must be true or false, not {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is not default and value not in choices:
            raise self.error(f"'{key}' must be one of {', '.join(choices)}, not {value!r}")
        return value

    def texts(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default:
            return value
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"'{key}' must be a string or a list of strings, not {value!r}")
        return value

    def table_value(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is not default and not isinstance(value, dict):
            raise self.error(f"'{key}' must be a table (key = value pairs), not {value!r}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise self.error(
                f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)} "
                f"for kind '{self.kind}' (its fields: {known})"
            )
