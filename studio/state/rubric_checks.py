"""Validation as you type: everything about a rubric that can be checked without running its code.

The TOML's shape comes from the rubric format the engine's loader enforces (engine.contract.
rubric_format: names, kinds, unknown fields with the closest known one, required fields, types,
choices, bounds, rules between fields), with the loader's own messages. The studio adds what needs the
whole rubric or the chosen dataset: duplicate names, the total expression's names, {{item.COLUMN}}
columns the dataset lacks, and for Python criteria the code itself through engine.contract.
reward_signatures (syntax errors with their line, a signature that fits no convention). The engine
has the last word when a test runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.contract.reward_signatures import Analysis, Diagnostic, analyse
from engine.contract.rubric_format import criterion_problems, top_level_problems
from studio.state.rubric_doc import CodeTarget, RubricDocument

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
    for message in top_level_problems(doc.data):
        add(Problem(message))
    seen: set[str] = set()
    for index, criterion in enumerate(doc.criteria):
        for message, severity in _check_criterion(criterion, index, columns, dataset):
            add(Problem(message, severity, index))
        name = criterion.get("name")
        if isinstance(name, str) and name:
            if name in seen:
                add(Problem(f"'{name}' is used by two criteria; names must be unique", criterion=index))
            seen.add(name)
        target = doc.code_target(index)
        if target is not None and (target.where != "inline" or "code" in criterion):
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


def _check_criterion(
    c: dict[str, Any], index: int, columns: set[str] | None, dataset: str
) -> list[tuple[str, str]]:
    out = [(message, "error") for message in criterion_problems(c, index)]
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
