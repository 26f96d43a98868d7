"""`{{item.answer}}`-style templates: how rubric parameters, OpenAI graders and judge prompts read a row.

Placeholders:
    {{item.FIELD}}                 a dataset column of the row (`item.prompt` is the prompt)
    {{sample.output_text}}         the completion's text
    {{sample.output_json.A.B}}     a field of the completion parsed as JSON
    {{prompt}} / {{completion}}    the prompt and completion as text
    {{NAME}}                       a value the caller supplies (a judge's {{min_score}}, {{max_score}})
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from engine.rewards.context import ScoringContext

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class TemplateError(ValueError):
    """A placeholder names something that does not exist (at load, or for one row)."""


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class Template:
    """A parsed template; `render(ctx, i)` fills it for row i."""

    def __init__(self, text: str, extra_names: Iterable[str] = ()) -> None:
        self.text = text
        self.parts: list[str | tuple[str, ...]] = []
        self.columns: set[str] = set()
        extra = set(extra_names)
        pos = 0
        for match in PLACEHOLDER.finditer(text):
            self.parts.append(text[pos : match.start()])
            path = tuple(match.group(1).split("."))
            head = path[0]
            if head == "item" and len(path) >= 2:
                self.columns.add(path[1])
            elif head == "sample" and len(path) >= 2 and path[1] in ("output_text", "output_json"):
                if path[1] == "output_text" and len(path) > 2:
                    raise TemplateError(f"'{{{{{match.group(1)}}}}}': sample.output_text has no fields")
            elif len(path) == 1 and (head in ("prompt", "completion") or head in extra):
                pass
            else:
                known = [
                    "item.FIELD",
                    "sample.output_text",
                    "sample.output_json.FIELD",
                    "prompt",
                    "completion",
                ]
                known += sorted(extra)
                raise TemplateError(
                    f"unknown placeholder '{{{{{match.group(1)}}}}}'; use one of {', '.join(known)}"
                )
            self.parts.append(path)
            pos = match.end()
        self.parts.append(text[pos:])
        self.is_constant = len(self.parts) == 1

    def render(
        self,
        ctx: ScoringContext,
        i: int,
        extra: dict[str, Any] | None = None,
        escape: Callable[[str], str] | None = None,
    ) -> str:
        if self.is_constant:
            return self.text
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = _as_text(self.lookup(ctx, i, part, extra))
            out.append(escape(value) if escape else value)
        return "".join(out)

    def value(self, ctx: ScoringContext, i: int) -> Any:
        """A template that is exactly one placeholder keeps the value's type (a number stays a number)."""
        if len(self.parts) == 3 and self.parts[0] == "" and self.parts[2] == "":
            placeholder = self.parts[1]
            assert isinstance(placeholder, tuple)
            return self.lookup(ctx, i, placeholder, None)
        return self.render(ctx, i)

    @staticmethod
    def lookup(ctx: ScoringContext, i: int, path: tuple[str, ...], extra: dict[str, Any] | None) -> Any:
        head = path[0]
        if head == "item":
            column = path[1]
            if column == "prompt" and "prompt" not in ctx.batch.columns:
                value: Any = ctx.batch.prompts[i]
            elif column in ctx.batch.columns:
                value = ctx.batch.columns[column][i]
            else:
                have = ", ".join(sorted(ctx.batch.columns)) or "none"
                raise TemplateError(f"the row has no column '{column}' (columns: {have})")
            return _dig(value, path[2:], f"item.{column}")
        if head == "sample":
            if path[1] == "output_text":
                return ctx.texts[i]
            try:
                return _dig(ctx.output_json[i], path[2:], "sample.output_json")
            except TemplateError:
                return ""  # the completion is not that JSON: the model's failure, so it scores, as text ""
        if head == "prompt":
            return ctx.prompt_texts[i]
        if head == "completion":
            return ctx.texts[i]
        if extra is not None and head in extra:
            return extra[head]
        raise TemplateError(f"nothing to fill '{{{{{'.'.join(path)}}}}}' with")


def _dig(value: Any, fields: tuple[str, ...], where: str) -> Any:
    for name in fields:
        if isinstance(value, dict) and name in value:
            value = value[name]
        elif isinstance(value, list) and name.isdigit() and int(name) < len(value):
            value = value[int(name)]
        else:
            raise TemplateError(f"{where} has no field '{name}'")
        where = f"{where}.{name}"
    return value


def templates_in(value: Any) -> list[str]:
    """Every string inside a (nested) TOML value, for checking placeholders at load."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in templates_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in templates_in(v)]
    return []
