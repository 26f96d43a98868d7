"""Built-in checks: deterministic, in-process, fast. Each reads its parameters from the criterion's table
(`{{item.FIELD}}` placeholders read dataset columns) and scores every row of a batch.

exact_match, numeric_match, regex, contains, json_valid, json_schema, length, think_answer_format,
repetition_penalty. docs/rewards.md describes each one's parameters.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import Draft202012Validator, validator_for
from referencing.exceptions import Unresolvable

from engine.envs.criteria import TRAJECTORY_KINDS
from engine.rewards.context import ScoringContext
from engine.rewards.criteria import Criterion, CriterionResult
from engine.rewards.params import Params
from engine.rewards.templates import Template, TemplateError

NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
REGEX_FLAGS = {
    "ignorecase": re.IGNORECASE,
    "i": re.IGNORECASE,
    "multiline": re.MULTILINE,
    "m": re.MULTILINE,
    "dotall": re.DOTALL,
    "s": re.DOTALL,
    "verbose": re.VERBOSE,
    "x": re.VERBOSE,
    "ascii": re.ASCII,
}


def template(params: Params, key: str) -> Template | None:
    """The field as a template (None when it is absent and has no default)."""
    text = params.text(key)
    if text is None:
        return None
    try:
        return Template(text)
    except TemplateError as exc:
        raise params.error(f"'{key}': {exc}") from None


def compile_regex(params: Params, pattern: str, flags: int, key: str = "pattern") -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise params.error(f"'{key}' is not a valid regular expression: {exc}") from None


def parse_flags(params: Params) -> int:
    flags = 0
    for name in params.texts("flags"):
        key = name.lower().removeprefix("re.")
        if key not in REGEX_FLAGS:
            raise params.error(
                f"unknown regex flag '{name}'; use IGNORECASE, MULTILINE, DOTALL, VERBOSE or ASCII"
            )
        flags |= REGEX_FLAGS[key]
    return flags


def parse_number(text: str) -> float | None:
    """The last number in a text (1,234.5 and -3e2 included), or None."""
    matches = NUMBER.findall(text)
    if not matches:
        return None
    try:
        return float(matches[-1].replace(",", ""))
    except ValueError:
        return None


def per_row(
    ctx: ScoringContext,
    score_one: Callable[[int, str], float | None],
    failures: tuple[type[Exception], ...] = (TemplateError,),
) -> CriterionResult:
    """Score each row with ``score_one(row, text)``. A row whose placeholders cannot be filled (a
    missing or empty column: TemplateError) scores null with the reason, and the other rows go on."""
    values: list[float | None] = []
    errors: list[str | None] = []
    for i, text in enumerate(ctx.texts):
        try:
            values.append(score_one(i, text))
            errors.append(None)
        except failures as exc:
            values.append(None)
            errors.append(str(exc))
    return CriterionResult(values, errors)


class _Extractor:
    """Where a check finds the answer: inside the last <tag>...</tag>, in a regex's group, or everywhere."""

    def __init__(self, params: Params) -> None:
        self.tag = params.text("tag")  # the format allows at most one of tag and extract
        extract = params.text("extract")
        self.tag_re = None
        if self.tag is not None:
            if not re.fullmatch(r"[A-Za-z_][\w.-]*", self.tag):
                raise params.error(f"'tag' must be a tag name like answer, not {self.tag!r}")
            self.tag_re = re.compile(rf"<{re.escape(self.tag)}>(.*?)</{re.escape(self.tag)}>", re.DOTALL)
        self.extract_re = compile_regex(params, extract, re.DOTALL, "extract") if extract else None

    def __call__(self, text: str) -> str | None:
        if self.tag_re is not None:
            found = self.tag_re.findall(text)
            return found[-1] if found else None
        if self.extract_re is not None:
            matches = list(self.extract_re.finditer(text))
            if not matches:
                return None
            last = matches[-1]
            return last.group(1) if last.re.groups else last.group(0)
        return text


class ExactMatch(Criterion):
    kind = "exact_match"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        self.reference = template(params, "reference")
        self.case_sensitive = params.flag("case_sensitive")
        self.strip = params.flag("strip")
        self.extract = _Extractor(params)

    def _norm(self, text: str) -> str:
        text = " ".join(text.split()) if self.strip else text
        return text if self.case_sensitive else text.casefold()

    def score(self, ctx: ScoringContext) -> CriterionResult:
        reference = self.reference
        assert reference is not None

        def one(i: int, text: str) -> float:
            expected = reference.render(ctx, i)
            answer = self.extract(text)
            return float(answer is not None and self._norm(answer) == self._norm(expected))

        return per_row(ctx, one)

    def columns_used(self) -> set[str]:
        return self.reference.columns if self.reference else set()


class NumericMatch(Criterion):
    kind = "numeric_match"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        self.reference = template(params, "reference")
        self.tolerance = params.number("tolerance")
        self.relative_tolerance = params.number("relative_tolerance")
        self.extract = _Extractor(params)

    def score(self, ctx: ScoringContext) -> CriterionResult:
        reference = self.reference
        assert reference is not None

        def one(i: int, text: str) -> float | None:
            raw = reference.value(ctx, i)
            gold = (
                float(raw)
                if isinstance(raw, (int, float)) and not isinstance(raw, bool)
                else parse_number(str(raw))
            )
            if gold is None:  # the gold answer does not parse: not applicable, as open-r1 does
                return None
            answer = self.extract(text)
            got = parse_number(answer) if answer is not None else None
            ok = got is not None and math.isclose(
                got, gold, abs_tol=self.tolerance, rel_tol=self.relative_tolerance
            )
            return float(ok)

        return per_row(ctx, one)

    def columns_used(self) -> set[str]:
        return self.reference.columns if self.reference else set()


class RegexMatch(Criterion):
    kind = "regex"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        flags = parse_flags(params)
        self.mode = params.choice("mode")
        self.pattern_template = template(params, "pattern")
        assert self.pattern_template is not None
        self.flags = flags
        self.compiled: re.Pattern[str] | None = None
        if self.pattern_template.is_constant:
            self.compiled = compile_regex(params, self.pattern_template.text, flags)
        else:  # a pattern with placeholders is compiled per row, with the values escaped
            compile_regex(params, _probe(self.pattern_template), flags)
        self.pattern = self.pattern_template.text

    def score(self, ctx: ScoringContext) -> CriterionResult:
        n = ctx.n
        if self.compiled is not None:
            test = getattr(self.compiled, self.mode)
            return CriterionResult([1.0 if test(t) else 0.0 for t in ctx.texts], [None] * n)
        pattern_template = self.pattern_template
        assert pattern_template is not None

        def one(i: int, text: str) -> float:
            pattern = re.compile(pattern_template.render(ctx, i, escape=re.escape), self.flags)
            return 1.0 if getattr(pattern, self.mode)(text) else 0.0

        return per_row(ctx, one, (TemplateError, re.error))

    def columns_used(self) -> set[str]:
        return self.pattern_template.columns if self.pattern_template else set()


def _probe(t: Template) -> str:
    """The pattern with each placeholder replaced by a literal, to check the regex compiles at load."""
    return "".join(p if isinstance(p, str) else "x" for p in t.parts)


class Contains(Criterion):
    kind = "contains"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        texts = params.texts("text")
        if not texts:
            raise params.error("'text' must name at least one string to look for")
        self.match = params.choice("match")
        self.case_sensitive = params.flag("case_sensitive")
        try:
            self.needles = [Template(t) for t in texts]
        except TemplateError as exc:
            raise params.error(f"'text': {exc}") from None

    def score(self, ctx: ScoringContext) -> CriterionResult:
        combine = any if self.match == "any" else all

        def one(i: int, text: str) -> float:
            needles = [t.render(ctx, i) for t in self.needles]
            if not self.case_sensitive:
                text = text.casefold()
                needles = [s.casefold() for s in needles]
            return float(combine(s in text for s in needles))

        return per_row(ctx, one)

    def columns_used(self) -> set[str]:
        return set().union(*(t.columns for t in self.needles))


class JsonValid(Criterion):
    kind = "json_valid"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        self.allow_fence = params.flag("allow_fence")

    def _parse(self, ctx: ScoringContext) -> list[tuple[bool, Any]]:
        out: list[tuple[bool, Any]] = []
        for text in ctx.texts:
            if self.allow_fence:
                value = ctx.output_json[len(out)]
                ok = value is not None or text.strip() == "null"
            else:
                try:
                    value, ok = json.loads(text), True
                except (ValueError, RecursionError):
                    value, ok = None, False
            out.append((ok, value))
        return out

    def score(self, ctx: ScoringContext) -> CriterionResult:
        return CriterionResult([float(ok) for ok, _ in self._parse(ctx)], [None] * ctx.n)


class JsonSchema(JsonValid):
    """Validation by the `jsonschema` library: Draft 2020-12, or the draft the schema's $schema names.
    `format` is an annotation, as the specification says, and only local $refs resolve (nothing is
    fetched while training)."""

    kind = "json_schema"

    def __init__(self, name: str, weight: float, params: Params, rubric_dir: Path) -> None:
        super().__init__(name, weight, params)
        schema = params.table_value("schema")  # the format asks for exactly one of schema, schema_file
        schema_file = params.text("schema_file")
        if schema_file is not None:
            path = (rubric_dir / schema_file).resolve()
            try:
                self.schema_text = path.read_text(encoding="utf-8")
                schema = json.loads(self.schema_text)
            except OSError as exc:
                raise params.error(f"cannot read schema_file {path}: {exc.strerror}") from None
            except ValueError as exc:
                raise params.error(f"schema_file {path} is not valid JSON: {exc}") from None
        self.validator = schema_validator(schema, params)
        self.schema = schema
        self.schema_file = schema_file

    def files(self) -> dict[str, str]:
        return {self.schema_file: self.schema_text} if self.schema_file else {}

    def score(self, ctx: ScoringContext) -> CriterionResult:
        values: list[float | None] = []
        errors: list[str | None] = []
        for ok, value in self._parse(ctx):
            try:
                values.append(float(ok and self.validator.is_valid(value)))
                errors.append(None)
            except Unresolvable as exc:
                values.append(None)
                errors.append(
                    f"the schema's $ref {exc.ref!r} cannot be resolved; put its definition in the schema's "
                    "$defs and refer to it as #/$defs/NAME"
                )
        return CriterionResult(values, errors)


def schema_validator(schema: Any, params: Params) -> Any:
    """A validator for `schema`, after checking the schema itself against its draft's meta-schema."""
    if not isinstance(schema, dict | bool):
        raise params.error(f"the JSON schema must be an object (or true/false), not {type(schema).__name__}")
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top"
        raise params.error(
            f"bad JSON schema at {where}: {exc.message}; fix the schema (JSON Schema Draft 2020-12)"
        ) from None
    return cls(schema)


class Length(Criterion):
    """1.0 at the target length, falling off by `shape`; soft_overlong is DAPO's overlong punishment."""

    kind = "length"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        self.target = params.integer("target")
        self.unit = params.choice("unit")
        self.shape = params.choice("shape")
        self.tolerance = params.number("tolerance", float(self.target))
        self.buffer = params.number("buffer", max(1.0, self.target / 4))
        self.needs_completion_ids = self.unit == "tokens"

    def lengths(self, ctx: ScoringContext) -> list[int] | None:
        if self.unit == "chars":
            return [len(t) for t in ctx.texts]
        if self.unit == "words":
            return [len(t.split()) for t in ctx.texts]
        ids = ctx.completion_ids
        return None if ids is None else [len(x) for x in ids]

    def value(self, length: int) -> float:
        d = length - self.target
        if self.shape == "soft_overlong":
            if length <= self.target - self.buffer:
                return 0.0
            if length <= self.target:
                return (self.target - self.buffer - length) / self.buffer
            return -1.0
        if self.shape == "gaussian":
            return math.exp(-0.5 * (d / self.tolerance) ** 2)
        if (self.shape == "over" and d <= 0) or (self.shape == "under" and d >= 0):
            return 1.0
        return max(0.0, 1.0 - abs(d) / self.tolerance)

    def score(self, ctx: ScoringContext) -> CriterionResult:
        lengths = self.lengths(ctx)
        if lengths is None:
            return CriterionResult.failed(
                ctx.n,
                'length in tokens needs completion_ids or a tokenizer; pass one, or set unit = "chars"',
            )
        return CriterionResult([self.value(n) for n in lengths], [None] * ctx.n)


class ThinkAnswerFormat(Criterion):
    """<think>...</think><answer>...</answer>: 1.0/0.0, or with `partial` 0.25 per tag seen exactly once."""

    kind = "think_answer_format"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        self.think = params.text("think_tag")
        self.answer = params.text("answer_tag")
        self.strict = params.flag("strict")
        self.partial = params.flag("partial")
        t, a = re.escape(self.think), re.escape(self.answer)
        if self.strict:  # open-r1's format_reward
            self.regex = re.compile(rf"^<{t}>\n.*?\n</{t}>\n<{a}>\n.*?\n</{a}>$", re.DOTALL | re.MULTILINE)
        else:
            self.regex = re.compile(rf"^\s*<{t}>.*?</{t}>\s*<{a}>.*?</{a}>\s*$", re.DOTALL)
        self.tags = [f"<{self.think}>", f"</{self.think}>", f"<{self.answer}>", f"</{self.answer}>"]

    def example(self) -> str:
        return f"<{self.think}>\n\n</{self.think}>\n<{self.answer}>\n\n</{self.answer}>"

    def score(self, ctx: ScoringContext) -> CriterionResult:
        if self.partial:
            values: list[float | None] = [
                sum(0.25 for tag in self.tags if t.count(tag) == 1) for t in ctx.texts
            ]
        else:
            values = [1.0 if self.regex.match(t) else 0.0 for t in ctx.texts]
        return CriterionResult(values, [None] * ctx.n)


class RepetitionPenalty(Criterion):
    """open-r1's n-gram repetition penalty: (1 - unique n-grams / n-grams) x max_penalty, in [max_penalty, 0]."""

    kind = "repetition_penalty"

    def __init__(self, name: str, weight: float, params: Params) -> None:
        super().__init__(name, weight)
        self.n = params.integer("ngram_size")
        self.max_penalty = params.number("max_penalty")

    def value(self, text: str) -> float:
        words = text.lower().split()
        if len(words) < self.n:
            return 0.0
        grams = list(zip(*(words[k:] for k in range(self.n)), strict=False))
        return (1.0 - len(set(grams)) / len(grams)) * self.max_penalty

    def score(self, ctx: ScoringContext) -> CriterionResult:
        return CriterionResult([self.value(t) for t in ctx.texts], [None] * ctx.n)


BUILTIN_KINDS: dict[str, type[Criterion]] = {
    cls.kind: cls
    for cls in (
        ExactMatch,
        NumericMatch,
        RegexMatch,
        Contains,
        JsonValid,
        JsonSchema,
        Length,
        ThinkAnswerFormat,
        RepetitionPenalty,
    )
}
BUILTIN_KINDS.update(TRAJECTORY_KINDS)  # agent runs' trajectory checks: engine/envs/criteria.py
