"""Frozen dataclasses as wire records: build one from parsed JSON with every field's type checked.

The protocol's events and the JSON that engine commands print are frozen dataclasses whose annotations
are the schema. ``check_fields`` validates (and normalises: an integral number where a float is declared
becomes a float) the fields of a record as it is built, on either side of the pipe; ``from_dict`` builds
one from a JSON object, recursing into nested records. Supported field types: str, int, float, bool,
Literal[...], X | None, list[X], dict[str, X], Any and other such records. Stdlib only.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

R = TypeVar("R")


class RecordError(ValueError):
    """A value that does not fit a record's declared types; the message says which field and why."""


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotations of a record's fields (``from __future__ import annotations`` safe)."""
    found = _FIELD_TYPES.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELD_TYPES[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return found


def describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in get_args(hint))
    if hint is type(None):
        return "null"
    if hint is Any:
        return "any value"
    if origin is not None:
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


def coerce(hint: Any, value: Any, where: str) -> Any:
    """``value`` as the type ``hint`` declares, or RecordError naming ``where``."""
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(option, value, where)
            except RecordError:
                continue
        raise RecordError(f"{where} must be {describe(hint)}, not {value!r:.80}")
    if origin is Literal:
        if value in get_args(hint) and not isinstance(value, bool):
            return value
        raise RecordError(f"{where} must be {describe(hint)}, not {value!r:.80}")
    if hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif hint in (str, bool):
        if isinstance(value, hint):
            return value
    elif origin is list or hint is list:
        if isinstance(value, list | tuple):
            (item,) = get_args(hint) or (Any,)
            return [coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            key, item = get_args(hint) or (Any, Any)
            return {
                coerce(key, k, f"{where} key"): coerce(item, v, f"{where}[{k!r}]") for k, v in value.items()
            }
    elif dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        if isinstance(value, dict):
            return from_dict(hint, value, where)
    else:
        raise TypeError(f"{where}: records cannot declare a field of type {hint!r}")
    raise RecordError(f"{where} must be {describe(hint)}, not {value!r:.80}")


def check_fields(record: Any, what: str) -> None:
    """Validate a frozen record's fields in place (call it from ``__post_init__``)."""
    for name, hint in field_types(type(record)).items():
        value = getattr(record, name)
        normal = coerce(hint, value, f"{what}: field {name!r}")
        if normal is not value:
            object.__setattr__(record, name, normal)


def from_dict(cls: type[R], data: dict[str, Any], what: str) -> R:
    """Build record ``cls`` from a JSON object. Missing required fields and wrong types raise RecordError;
    keys the record does not declare are ignored (a newer writer may add optional fields)."""
    if not isinstance(data, dict):
        raise RecordError(f"{what} must be a JSON object, not {data!r:.80}")
    kwargs = {}
    missing = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        if f.name in data:
            kwargs[f.name] = coerce(field_types(cls)[f.name], data[f.name], f"{what}: field {f.name!r}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            missing.append(f.name)
    if missing:
        raise RecordError(f"{what} lacks the field(s) {', '.join(missing)}")
    return cls(**kwargs)


def to_dict(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict (nested records too)."""
    return dataclasses.asdict(record)
