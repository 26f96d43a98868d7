"""The reward-function conventions RL Studio accepts, and how each one is called.

    trl             fn(prompts=..., completions=..., completion_ids=..., **columns) -> list, one per row
    conversational  the same, with completions as [{"role": "assistant", "content": ...}] (open-r1)
    verifiers       fn(prompt, completion, answer, ...) -> number, one call per row, only named params;
                    or a group function naming plural params (completions, answers, ...) -> list
    openai-python   grade(sample, item) -> number, one call per row (OpenAI's python grader)

This module runs inside reward workers: stdlib and engine.rewards.text only. See docs/rewards.md#conventions.
"""

from __future__ import annotations

import ast
import errno
import inspect
import math
import numbers
import os
import textwrap
import traceback
import types
from typing import Any

from engine.contract.reward_signatures import (
    STYLES,
    classify,
    named_group,
    reads_messages,
)
from engine.rewards.text import as_completion_messages, as_prompt_messages, completion_text, parse_json_output

_HERE = os.path.dirname(os.path.abspath(__file__))


class ConventionError(ValueError):
    """A function's signature fits no convention (or not the one the rubric names)."""


class CallGuard:
    """Brackets each call of user code; the worker arms its timeout here. In-process: does nothing."""

    memory_mb: int | None = None

    def enter(self, row: int) -> None:
        pass

    def leave(self) -> None:
        pass


# ---- signature analysis --------------------------------------------------------------------------------


def analyse(fn: Any, style: str | None, source_text: str | None = None) -> dict[str, Any]:
    """Which convention `fn` follows and what it asks for. Raises ConventionError when none fits."""
    if not callable(fn):
        raise ConventionError(f"'{fn!r}' is not a function")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConventionError(f"its signature cannot be read ({exc})") from None
    params: list[str] = []
    required: list[str] = []
    positional_only: list[str] = []
    var_kw = False
    var_pos = False
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is p.VAR_POSITIONAL:
            var_pos = True
        else:
            params.append(p.name)
            if p.default is p.empty:
                required.append(p.name)
            if p.kind is p.POSITIONAL_ONLY:
                positional_only.append(p.name)
    names = set(params)
    shape = f"({', '.join([*params, *(['*args'] if var_pos else []), *(['**kwargs'] if var_kw else [])])})"

    if style is None:
        grade_pair = getattr(fn, "__name__", "") == "grade" and len(params) == 2
        style, group = classify(names, var_kw, grade_pair, lambda: _reads_messages(fn, source_text))
        if style is None:
            raise ConventionError(
                f"the signature {shape} fits no convention: name prompts/completions (TRL batch style), "
                "prompt/completion/answer (verifiers, one sample per call), or take (sample, item) "
                "(OpenAI grade); or set style = trl | conversational | verifiers | openai-python"
            )
    elif style not in STYLES:
        raise ConventionError(f"unknown style '{style}'; use one of {', '.join(STYLES)}")
    else:
        group = named_group(style, names)

    if style == "openai-python":
        positional = [
            p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if (len(positional) < 2 and not var_pos) or len(required) > 2:
            raise ConventionError(f"an OpenAI grader is called as grade(sample, item), but it takes {shape}")
    elif positional_only:
        raise ConventionError(
            f"parameters {', '.join(positional_only)} are positional-only, but {style} functions are called by "
            "keyword; remove the '/' from the signature"
        )
    elif style == "verifiers" and group and names & {"prompt", "completion"}:
        raise ConventionError(
            f"{shape} mixes per-sample names (prompt, completion) with group names (prompts, completions, "
            "answers, ...); a verifiers function scores either one sample or the whole group"
        )
    if not params and not var_kw and style != "openai-python":
        raise ConventionError(
            f"the signature {shape} takes no named parameters, so it cannot see the completion"
        )

    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
    return {
        "style": style,
        "group": group,
        "params": params,
        "required": required,
        "var_kw": var_kw,
        "is_async": is_async,
        "wants_completion_ids": "completion_ids" in names,
        "name": metric_name(fn),
    }


def _reads_messages(fn: Any, source_text: str | None) -> bool:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        source = source_text or ""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return reads_messages(tree)


def metric_name(fn: Any) -> str:
    """TRL's name for a reward function: __name__ through functools.partial, else the class name."""
    inner = fn
    while hasattr(inner, "func") and not hasattr(inner, "__name__"):
        inner = inner.func
    return getattr(inner, "__name__", type(inner).__name__)


# ---- calling -------------------------------------------------------------------------------------------


class _Logs:
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.columns: dict[str, list[Any]] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics[str(name)] = float(value)

    def log_extra(self, column: str, values: list[Any]) -> None:
        self.columns[str(column)] = [
            v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for v in values
        ]


class Parser:
    """A stand-in for verifiers' base Parser (text in, text out) for functions that name `parser`."""

    def parse(self, text: str) -> str:
        return text

    def parse_answer(self, completion: Any) -> str:
        return completion_text(completion)


def call(
    fn: Any, info: dict[str, Any], batch: dict[str, Any], rows: list[int], guard: CallGuard
) -> tuple[list[float | None], list[str | None], dict[str, float], dict[str, list[Any]]]:
    """Score `rows` of `batch` with `fn`. Never raises for the function's own failures: a failed row gets
    None and a message. Returns (values, errors, logged metrics, logged columns), aligned with rows."""
    logs = _Logs()
    style = info["style"]
    if style in ("trl", "conversational") or info["group"]:
        values, errors = _call_batch(fn, info, batch, guard, logs)
        return [values[i] for i in rows], [errors[i] for i in rows], logs.metrics, logs.columns
    values, errors = _call_per_sample(fn, info, batch, rows, guard)
    return values, errors, logs.metrics, logs.columns


def _call_batch(
    fn: Any, info: dict[str, Any], batch: dict[str, Any], guard: CallGuard, logs: _Logs
) -> tuple[list[float | None], list[str | None]]:
    n = len(batch["completions"])
    prompts, completions = batch["prompts"], batch["completions"]
    columns: dict[str, list[Any]] = batch["columns"]
    if info["style"] == "conversational":
        prompts = [as_prompt_messages(p) for p in prompts]
        completions = [as_completion_messages(c) for c in completions]
    if info["group"]:
        available: dict[str, Any] = {
            **columns,
            "prompts": prompts,
            "completions": completions,
            "answers": columns.get("answer", [""] * n),
            "infos": columns.get("info", [{} for _ in range(n)]),
            "states": [{} for _ in range(n)],
            "tasks": columns.get("task", ["default"] * n),
            "parser": Parser(),
        }
    else:
        available = {
            **columns,
            "prompts": prompts,
            "completions": completions,
            "trainer_state": types.SimpleNamespace(global_step=batch.get("step", 0)),
            "log_extra": logs.log_extra,
            "log_metric": logs.log_metric,
        }
        if batch.get("completion_ids") is not None:
            available["completion_ids"] = batch["completion_ids"]
    try:
        kwargs = _select(info, available)
    except ConventionError as exc:
        return [None] * n, [str(exc)] * n
    guard.enter(-1)
    try:
        result = _run(fn(**kwargs))
        # Still under the deadline: reading the result runs the user's __len__, __float__, __repr__.
        return to_scores(result, n)
    except BaseException as exc:
        return [None] * n, [describe_exception(exc, guard)] * n
    finally:
        guard.leave()


def _call_per_sample(
    fn: Any, info: dict[str, Any], batch: dict[str, Any], rows: list[int], guard: CallGuard
) -> tuple[list[float | None], list[str | None]]:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]] | str] = []
    for i in rows:
        try:
            calls.append(_sample_arguments(info, batch, i))
        except ConventionError as exc:
            calls.append(str(exc))
    values: list[float | None] = [None] * len(rows)
    errors: list[str | None] = [None] * len(rows)
    if info["is_async"]:
        # Concurrently, as verifiers does; one deadline covers the gathered calls.
        import asyncio

        async def gather() -> list[Any]:
            coros = [fn(*c[0], **c[1]) for c in calls if not isinstance(c, str)]
            return await asyncio.gather(*coros, return_exceptions=True)

        guard.enter(-1)
        try:
            outcomes = iter(_run(gather()))
        except BaseException as exc:
            message = describe_exception(exc, guard)
            return values, [message] * len(rows)
        finally:
            guard.leave()
        for k, c in enumerate(calls):
            if isinstance(c, str):
                errors[k] = c
                continue
            outcome = next(outcomes)
            if isinstance(outcome, BaseException):
                errors[k] = describe_exception(outcome, guard)
            else:
                values[k], errors[k] = to_score(outcome, rows[k])
        return values, errors
    for k, c in enumerate(calls):
        if isinstance(c, str):
            errors[k] = c
            continue
        guard.enter(rows[k])
        try:
            values[k], errors[k] = to_score(_run(fn(*c[0], **c[1])), rows[k])
        except BaseException as exc:
            errors[k] = describe_exception(exc, guard)
        finally:
            guard.leave()
    return values, errors


def _sample_arguments(
    info: dict[str, Any], batch: dict[str, Any], i: int
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    columns: dict[str, list[Any]] = batch["columns"]
    row = {name: values[i] for name, values in columns.items()}
    completion = batch["completions"][i]
    if info["style"] == "openai-python":
        text = completion_text(completion)
        sample = {
            "output_text": text,
            "output_json": parse_json_output(text),
            "output_tools": [],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        }
        item = {"prompt": batch["prompts"][i], **row}
        return (sample, item), {}
    available = {
        **row,
        "prompt": batch["prompts"][i],
        "completion": completion,
        "answer": row.get("answer", ""),
        "info": row.get("info", {}),
        "state": {},
        "task": row.get("task", "default"),
        "parser": Parser(),
    }
    return (), _select(info, available)


def _select(info: dict[str, Any], available: dict[str, Any]) -> dict[str, Any]:
    missing = [p for p in info["required"] if p not in available]
    if missing:
        have = ", ".join(
            sorted(k for k in available if k not in ("log_extra", "log_metric", "trainer_state", "parser"))
        )
        raise ConventionError(
            f"the function asks for {', '.join(repr(m) for m in missing)}, which the batch does not have "
            f"(available: {have}); add the column to the dataset or give the parameter a default"
        )
    if info["var_kw"]:
        return available
    return {p: available[p] for p in info["params"] if p in available}


_loop: Any = None  # asyncio's loop, made on the first async call (asyncio costs 25 ms to import)


def _run(result: Any) -> Any:
    """Await a coroutine (async reward functions) on this process's loop; pass anything else through."""
    global _loop
    if not inspect.isawaitable(result):
        return result
    import asyncio

    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()

    async def wrap() -> Any:
        return await result

    return _loop.run_until_complete(wrap())


# ---- results -------------------------------------------------------------------------------------------


def to_score(value: Any, row: int) -> tuple[float | None, str | None]:
    """One returned value as a reward: numbers (bools too) pass, None and NaN mean not applicable.
    Never raises: a value that cannot be a reward is an error that says what it was and why."""
    if value is None:
        return None, None
    if isinstance(value, (str, bytes, list, tuple, dict, set)) or not (
        isinstance(value, numbers.Real) or hasattr(value, "__float__")
    ):
        return None, (
            f"returned {_shown(value)} ({type(value).__name__}) for row {row}; a reward must be a number or None"
        )
    try:
        number = float(value)
    except Exception as exc:
        why = (
            str(exc)
            if isinstance(exc, OverflowError) and str(exc)
            else f"its __float__ raised {_one_line(exc)}"
        )
        return None, f"returned {_shown(value)} ({why}) for row {row}; return a finite float or None"
    if math.isnan(number):
        return None, None
    if math.isinf(number):
        return None, f"returned {number} for row {row}; a reward must be finite"
    return number, None


def _shown(value: Any) -> str:
    """A returned value as a message shows it: short, and never failing (10**400 for a huge int)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        sign, magnitude = ("-" if value < 0 else ""), abs(value)
        digits = int((magnitude.bit_length() - 1) * math.log10(2))
        for k in (digits, digits + 1):
            if magnitude == 10**k:
                return f"{sign}10**{k}"
        return f"an int of about {digits + 1} digits"
    try:
        shown = repr(value)
    except Exception:
        return f"a {type(value).__name__} object"
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _one_line(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def to_scores(result: Any, n: int) -> tuple[list[float | None], list[str | None]]:
    if hasattr(result, "tolist") and not isinstance(result, (list, tuple)):
        result = result.tolist()
    if not isinstance(result, (list, tuple)):
        message = f"returned {type(result).__name__} instead of a list of {n} rewards (one per completion)"
        return [None] * n, [message] * n
    if len(result) != n:
        message = (
            f"returned {len(result)} values for {n} completions; return exactly one reward per completion"
        )
        return [None] * n, [message] * n
    scored = [to_score(v, i) for i, v in enumerate(result)]
    return [s[0] for s in scored], [s[1] for s in scored]


def describe_exception(exc: BaseException, guard: CallGuard) -> str:
    """One line that says what happened and where in the user's code."""
    if isinstance(exc, SystemExit):
        return f"the function tried to exit the process (exit code {exc.code!r}); reward code must return a value"
    text = _one_line(exc)
    out_of_memory = isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
    if out_of_memory:
        limit = f" (memory_mb = {guard.memory_mb})" if guard.memory_mb else ""
        text = f"ran out of memory{limit}: {text}"
    else:
        text = f"raised {text}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_HERE)]
    if frames:
        where = frames[-1]
        text += f" (at {os.path.basename(where.filename)}:{where.lineno}, in {where.name})"
    if out_of_memory and guard.memory_mb:
        text += "; raise memory_mb for this criterion if it needs more (0 = no limit)"
    return text
