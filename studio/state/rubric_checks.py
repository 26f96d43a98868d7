"""Validation as you type: everything about a rubric that can be checked without running its code.

The TOML's shape (names, kinds, fields, required and one-of fields, choices, the total expression), and
for Python criteria the code itself through engine.contract.reward_signatures: syntax errors with their
line, a signature that fits no convention, a parameter that is no column of the chosen dataset. The
engine's loader has the last word when a test runs; these checks mirror it so most mistakes show while
typing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.contract.reward_signatures import STYLE_ALIASES, Analysis, Diagnostic, analyse
from studio.state.rubric_doc import NAME, RESERVED_NAMES, TOP_LEVEL, CodeTarget, RubricDocument
from studio.state.rubric_kinds import COMMON_FIELDS, KINDS, Field

EXPRESSION_FUNCTIONS = {"min", "max", "abs", "floor", "ceil", "exp", "sqrt", "log"}
_ITEM_COLUMN = re.compile(r"\{\{\s*item\.([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Problem:
    message: str
    severity: str = "error"  # "error" | "warning"
    criterion: int | None = None  # index in the criteria; None = the rubric as a whole
    line: int | None = None  # a line of the TOML text (parse errors)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    code: dict[CodeTarget, Analysis] = field(default_factory=dict)

    def for_criterion(self, index: int) -> list[Problem]:
        return [p for p in self.problems if p.criterion == index]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


def check_code(
    doc: RubricDocument, target: CodeTarget, columns: set[str] | None, dataset: str = "the dataset"
) -> Analysis:
    code = doc.code(target)
    if target.where == "file" and target.path not in doc.sources:
        result = Analysis()
        result.diagnostics.append(
            Diagnostic(1, 0, f"the file {target.path} is not part of this rubric yet; type its code here")
        )
        return result
    if not target.function:
        result = Analysis()
        result.diagnostics.append(
            Diagnostic(1, 0, "inline code needs function = the name of the function to call")
        )
        return result
    return analyse(code, target.function, target.style, columns, dataset)


def check(doc: RubricDocument, columns: set[str] | None = None, dataset: str = "the dataset") -> Report:
    report = Report()
    add = report.problems.append
    if doc.parse_error:
        add(Problem(doc.parse_error, line=_line_of(doc.parse_error)))
        return report
    unknown = sorted(set(doc.data) - set(TOP_LEVEL))
    if unknown:
        add(Problem(f"unknown top-level key(s) {', '.join(unknown)}; allowed: {', '.join(TOP_LEVEL)}"))
    if not doc.name:
        add(Problem('the rubric needs name = "..." at the top'))
    if not doc.criteria:
        add(Problem("the rubric needs at least one criterion: add one with +"))
    seen: set[str] = set()
    for index, criterion in enumerate(doc.criteria):
        for message, severity in _check_criterion(criterion, columns, dataset):
            add(Problem(message, severity, index))
        name = criterion.get("name")
        if isinstance(name, str) and name:
            if name in seen:
                add(Problem(f"'{name}' is used by two criteria; names must be unique", criterion=index))
            seen.add(name)
        target = doc.code_target(index)
        if target is not None:
            analysis = check_code(doc, target, columns, dataset)
            report.code[target] = analysis
            for d in analysis.diagnostics:
                where = f"{target.path}:{d.line}" if target.where == "file" else f"line {d.line}"
                add(Problem(f"{where}: {d.message}", d.severity, index))
    total = doc.data.get("total")
    if total is not None:
        if not isinstance(total, str):
            add(
                Problem(
                    f'total must be an expression in quotes, like "correct + 0.2 * format", not {total!r}'
                )
            )
        else:
            for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", total):
                if word not in seen and word not in EXPRESSION_FUNCTIONS:
                    add(
                        Problem(f"total: '{word}' is not a criterion name (names: {', '.join(sorted(seen))})")
                    )
    return report


def _line_of(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _check_criterion(c: dict[str, Any], columns: set[str] | None, dataset: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    name = c.get("name")
    if not isinstance(name, str) or not name:
        out.append(('needs a name = "..." (a word: letters, digits, _)', "error"))
    elif not NAME.match(name):
        out.append((f"the name '{name}' must be a word of letters, digits and _", "error"))
    elif name in RESERVED_NAMES:
        out.append(
            (f"'{name}' is reserved (it names the rubric's total reward); choose another name", "error")
        )
    kind = KINDS.get(str(c.get("kind")))
    if kind is None:
        out.append((f"unknown kind {c.get('kind')!r}; use one of {', '.join(KINDS)}", "error"))
        return out
    weight = c.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        out.append((f"weight must be a number, not {weight!r}", "error"))
    extra = sorted(set(c) - set(COMMON_FIELDS) - kind.field_names)
    if extra:
        out.append(
            (
                f"unknown field(s) {', '.join(extra)} for kind '{kind.name}' "
                f"(its fields: {', '.join(sorted(kind.field_names))})",
                "error",
            )
        )
    for f in kind.fields:
        if f.required and f.name not in c:
            out.append((f"a {kind.name} criterion needs '{f.name}'", "error"))
        elif f.name in c:
            problem = _check_value(f, c[f.name])
            if problem:
                out.append((f"'{f.name}' {problem}", "error"))
    for group in kind.one_of:
        given = [k for k in group if k in c]
        if len(given) != 1:
            out.append((f"give exactly one of {' or '.join(group)}", "error"))
    for group in kind.at_most_one:
        given = [k for k in group if k in c]
        if len(given) > 1:
            out.append((f"give either {' or '.join(group)}, not both", "error"))
    if kind.name == "python" and "code" in c and "function" not in c:
        out.append(("inline 'code' needs 'function' = the name of the function to call", "error"))
    if kind.name == "python" and isinstance(c.get("source"), str) and ":" not in c["source"]:
        out.append((f'source = {c["source"]!r} must be "path/to/file.py:function_name"', "error"))
    if columns is not None:
        used = {m for v in _strings(c) for m in _ITEM_COLUMN.findall(v)}
        for column in sorted(used - columns):
            out.append((f"{{{{item.{column}}}}}: {dataset} has no column '{column}'", "warning"))
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _check_value(f: Field, value: Any) -> str | None:
    if f.type in ("str",) and not isinstance(value, str):
        return f"must be a string (in quotes), not {value!r}"
    if f.type == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"must be a number, not {value!r}"
    if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"must be a whole number, not {value!r}"
    if f.type == "bool" and not isinstance(value, bool):
        return f"must be true or false, not {value!r}"
    if f.type == "choice" and value not in f.choices and not (f.name == "style" and value in STYLE_ALIASES):
        return f"must be one of {', '.join(f.choices)}, not {value!r}"
    if f.type == "table" and not isinstance(value, dict):
        return f"must be a table, not {value!r}"
    if f.type == "list" and not (
        isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    ):
        return f"must be a string or a list of strings, not {value!r}"
    if f.type == "range" and not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
        and value[0] < value[1]
    ):
        return f"must be [low, high] with low < high, not {value!r}"
    return None
