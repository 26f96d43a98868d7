"""Static checks of reward code: syntax, and whether a function's signature fits a reward convention.

The studio validates reward code as the user types, without importing it (user code only ever runs in
engine processes). This module reads the source with ``ast`` and mirrors, rule for rule, what
engine/rewards/conventions.py decides at load time from the live function; a test keeps the two in step.
Stdlib only, like the rest of engine.contract.

    analyse(code, function="correct", style=None, columns={"answer"}) -> Analysis (style, diagnostics)

Conventions (see docs/rewards.md#conventions):
    trl             fn(prompts=..., completions=..., completion_ids=..., **columns) -> one value per row
    conversational  the same, completions as message lists (open-r1)
    verifiers       fn(prompt, completion, answer, ...) per sample, or plural names for a group
    openai-python   grade(sample, item)
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Set
from dataclasses import dataclass, field

STYLES = ("trl", "conversational", "verifiers", "openai-python")
STYLE_ALIASES = {"openai": "openai-python", "openai_python": "openai-python", "open-r1": "conversational"}

TRL_NAMES = frozenset(
    {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric"}
)
TRL_EXTRA_NAMES = frozenset({"environments"})
"""Passed by TRL when an environment is used; never a dataset column."""
VERIFIERS_SAMPLE_NAMES = frozenset({"prompt", "completion", "answer", "info", "state", "task", "parser"})
VERIFIERS_GROUP_ONLY = frozenset({"answers", "infos", "states", "tasks"})
VERIFIERS_GROUP_NAMES = frozenset({"prompts", "completions", *VERIFIERS_GROUP_ONLY, "parser"})
RESERVED_COLUMNS = frozenset({"prompt", "completion", "completion_ids"})
"""Dataset keys that are the sample itself, not columns passed by name."""


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a source text. Lines are 1-based, columns 0-based; end_col None = to line end."""

    line: int
    col: int
    message: str
    severity: str = "error"  # "error" | "warning"
    end_col: int | None = None
    end_line: int | None = None


@dataclass
class Signature:
    """What a function's parameters say, read from its ``def``."""

    name: str
    line: int
    params: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    positional_only: list[str] = field(default_factory=list)
    positional: int = 0
    var_pos: bool = False
    var_kw: bool = False
    is_async: bool = False
    nodes: dict[str, ast.arg] = field(default_factory=dict)

    @property
    def shape(self) -> str:
        extra = (["*args"] if self.var_pos else []) + (["**kwargs"] if self.var_kw else [])
        return f"({', '.join([*self.params, *extra])})"


@dataclass
class Analysis:
    """The result of checking one function: its convention (None when none fits) and the problems."""

    style: str | None = None
    group: bool = False
    signature: Signature | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def label(self) -> str:
        if self.style is None:
            return ""
        return f"{self.style} (group)" if self.group else self.style


def parse(code: str, filename: str = "<reward code>") -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parse and compile the code; a syntax error comes back as a Diagnostic at its line and column."""
    try:
        tree = ast.parse(code, filename)
        compile(tree, filename, "exec", dont_inherit=True)  # errors ast accepts: return outside def, ...
    except SyntaxError as exc:
        line = exc.lineno or 1
        col = max(0, (exc.offset or 1) - 1)
        end_col = None
        if exc.end_lineno == exc.lineno and exc.end_offset and exc.end_offset - 1 > col:
            end_col = exc.end_offset - 1
        return None, [Diagnostic(line, col, f"syntax error: {exc.msg}", "error", end_col)]
    except ValueError as exc:  # null bytes in the source
        return None, [Diagnostic(1, 0, f"cannot compile: {exc}")]
    return tree, []


def find_function(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The last top-level ``def name`` (a later definition wins at import, as Python does)."""
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            found = node
    return found


def defines_name(tree: ast.Module, name: str) -> bool:
    """Whether the module binds `name` some other way (assignment, import, class): checked at run time."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
            (a.asname or a.name.split(".")[0]) == name for a in node.names
        ):
            return True
    return False


def read_signature(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Signature:
    a = fn.args
    sig = Signature(fn.name, fn.lineno, is_async=isinstance(fn, ast.AsyncFunctionDef))
    positional = [*a.posonlyargs, *a.args]
    n_defaults = len(a.defaults)
    for i, arg in enumerate(positional):
        sig.params.append(arg.arg)
        sig.nodes[arg.arg] = arg
        if i < len(positional) - n_defaults:
            sig.required.append(arg.arg)
        if i < len(a.posonlyargs):
            sig.positional_only.append(arg.arg)
    sig.positional = len(positional)
    for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        sig.params.append(arg.arg)
        sig.nodes[arg.arg] = arg
        if default is None:
            sig.required.append(arg.arg)
    sig.var_pos = a.vararg is not None
    sig.var_kw = a.kwarg is not None
    return sig


def reads_messages(fn: ast.AST) -> bool:
    """open-r1 functions index completions as messages (`completion[0]["content"]`); such a function gets
    conversational completions even when the dataset is standard."""
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and node.slice.value == "content"
            and isinstance(node.value, ast.Subscript)
        ):
            return True
    return False


def classify(
    names: Set[str], var_kw: bool, grade_pair: bool, messages: Callable[[], bool]
) -> tuple[str | None, bool]:
    """The convention (style, group) of a function with these parameter names, when the rubric names
    none; None when it fits no convention. ``grade_pair``: a function named grade with two parameters.
    ``messages`` says whether its body reads completions as messages (asked only when it matters).
    The one rule set for both the engine (live functions) and the studio (source text)."""
    if {"sample", "item"} <= names or grade_pair:
        return "openai-python", False
    if names & {"prompt", "completion", "info", "state", "task", "parser"}:
        return "verifiers", False
    if names & VERIFIERS_GROUP_ONLY:
        return "verifiers", True
    if names & {"prompts", "completions", "completion_ids"} or var_kw:
        return ("conversational" if messages() else "trl"), False
    return None, False


def named_group(style: str, names: Set[str]) -> bool:
    """Whether a function of a style the rubric names is called once per group (verifiers only)."""
    return style == "verifiers" and bool(names & (VERIFIERS_GROUP_ONLY | {"prompts", "completions"}))


def detect_style(sig: Signature, fn: ast.AST) -> tuple[str | None, bool]:
    """The convention a signature follows when the rubric names none."""
    grade_pair = sig.name == "grade" and len(sig.params) == 2
    return classify(set(sig.params), sig.var_kw, grade_pair, lambda: reads_messages(fn))


def convention_names(style: str, group: bool) -> frozenset[str]:
    """Parameter names a convention passes itself; any other named parameter must be a dataset column."""
    if style in ("trl", "conversational"):
        return TRL_NAMES | TRL_EXTRA_NAMES
    if style == "verifiers":
        return VERIFIERS_GROUP_NAMES if group else VERIFIERS_SAMPLE_NAMES
    return frozenset()


def analyse(
    code: str,
    function: str,
    style: str | None = None,
    columns: set[str] | frozenset[str] | None = None,
    dataset: str = "the dataset",
) -> Analysis:
    """Check that `function` exists in `code` and fits a convention; with `columns`, that each named
    parameter is something the call will have. `style` is the rubric's ``style`` (None = detect)."""
    result = Analysis()
    tree, problems = parse(code)
    if tree is None:
        result.diagnostics = problems
        return result
    fn = find_function(tree, function)
    if fn is None:
        if defines_name(tree, function):
            result.diagnostics.append(
                Diagnostic(
                    1,
                    0,
                    f"'{function}' is not a plain def, so its signature is checked when the rubric loads",
                    "warning",
                )
            )
        else:
            result.diagnostics.append(
                Diagnostic(
                    1, 0, f"no function named '{function}' here; define def {function}(...) or fix the name"
                )
            )
        return result
    sig = read_signature(fn)
    result.signature = sig
    name_col = _name_col(fn, code)
    at_def = (fn.lineno, name_col, name_col + len(fn.name))

    def fail(message: str, where: tuple[int, int, int] = at_def) -> Analysis:
        result.diagnostics.append(Diagnostic(where[0], where[1], message, "error", where[2]))
        return result

    names = set(sig.params)
    if style is not None:
        style = STYLE_ALIASES.get(style, style)
        if style not in STYLES:
            return fail(f"unknown style '{style}'; use one of {', '.join(STYLES)}")
        group = named_group(style, names)
    else:
        style, group = detect_style(sig, fn)
        if style is None:
            return fail(
                f"the signature {sig.shape} fits no convention: name prompts/completions (TRL batch style), "
                "prompt/completion/answer (verifiers, one sample per call), or take (sample, item) "
                "(OpenAI grade); or set style = trl | conversational | verifiers | openai-python"
            )
    result.style, result.group = style, group

    if style == "openai-python":
        if (sig.positional < 2 and not sig.var_pos) or len(sig.required) > 2:
            return fail(f"an OpenAI grader is called as grade(sample, item), but it takes {sig.shape}")
    elif sig.positional_only:
        return fail(
            f"parameters {', '.join(sig.positional_only)} are positional-only, but {style} functions are "
            "called by keyword; remove the '/' from the signature"
        )
    elif style == "verifiers" and group and names & {"prompt", "completion"}:
        return fail(
            f"{sig.shape} mixes per-sample names (prompt, completion) with group names (prompts, completions, "
            "answers, ...); a verifiers function scores either one sample or the whole group"
        )
    if not sig.params and not sig.var_kw and style != "openai-python":
        return fail(f"the signature {sig.shape} takes no named parameters, so it cannot see the completion")

    if columns is not None and style != "openai-python":
        known = convention_names(style, group)
        available = set(columns) - RESERVED_COLUMNS
        for param in sig.params:
            if param in known or param in available:
                continue
            node = sig.nodes[param]
            where = (node.lineno, node.col_offset, node.col_offset + len(param))
            if param in sig.required:
                fail(
                    f"'{param}' is not a column of {dataset} (columns: {', '.join(sorted(available)) or 'none'}) "
                    f"nor a name the {style} convention passes; every call would fail. Rename it, add the "
                    "column, or give it a default",
                    where,
                )
            else:
                result.diagnostics.append(
                    Diagnostic(
                        where[0],
                        where[1],
                        f"'{param}' is not a column of {dataset}; it always keeps its default",
                        "warning",
                        where[2],
                    )
                )
    return result


def _name_col(fn: ast.FunctionDef | ast.AsyncFunctionDef, code: str) -> int:
    """Column of the function's name on its def line (ast gives the column of `def`/decorators)."""
    lines = code.splitlines()
    if 0 < fn.lineno <= len(lines):
        match = re.compile(rf"def\s+({re.escape(fn.name)})\b").search(lines[fn.lineno - 1], fn.col_offset)
        if match:
            return match.start(1)
    return fn.col_offset


def imported_modules(code: str) -> set[str]:
    """Top-level module names a source imports (to find sibling modules a rubric's code needs)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level <= 1:
            found.add(node.module.split(".")[0])
    return found
