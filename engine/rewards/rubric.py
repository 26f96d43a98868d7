"""The rubric: a TOML file of weighted criteria, loaded and validated once, scoring batches on one path
for training, `rubric test` and `rubric redteam`.

    name = "arith-v1"
    total = "correct + 0.2 * format"     # optional; default: sum of weight x score

    [[criteria]]
    name = "correct"
    kind = "python"
    source = "rewards.py:correct"
    weight = 1.0
"""

from __future__ import annotations

import contextlib
import math
import sys
import tomllib
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.contract.rubric_format import top_level_problems
from engine.rewards.api import RewardBatch, ScoredBatch
from engine.rewards.builtins import BUILTIN_KINDS, JsonSchema
from engine.rewards.context import ScoringContext
from engine.rewards.criteria import Criterion, CriterionResult
from engine.rewards.errors import RubricError
from engine.rewards.expr import ExprError, Expression
from engine.rewards.params import Params, check
from engine.rewards.secret_env import scrub_scored
from engine.rewards.usercode import PythonCriterion, user_codes


class Services:
    """What criteria share: the rubric's folder, the judge cache, the judges' HTTP pool."""

    def __init__(self, rubric_dir: Path, cache_db: str | Path | None) -> None:
        self.rubric_dir = rubric_dir
        self.cache_db = cache_db
        self._judge_cache: Any = None

    @property
    def judge_cache(self) -> Any:
        if self._judge_cache is None:
            from engine.rewards.judges import JudgeCache

            self._judge_cache = JudgeCache(self.cache_db)
        return self._judge_cache

    def close(self) -> None:
        if self._judge_cache is not None:
            self._judge_cache.close()


def build_criterion(table: dict[str, Any], index: int, services: Services) -> Criterion:
    kind = check(table, index)  # the rubric format: fields, types, bounds, rules, with the editor's messages
    name = table["name"]
    params = Params(name, kind, table)
    weight = params.number("weight")
    criterion: Criterion
    if kind.name == "python":
        criterion = PythonCriterion(name, weight, params, services.rubric_dir)
    elif kind.name == "openai_grader":
        from engine.rewards.graders import GraderCriterion

        criterion = GraderCriterion(name, weight, params, services)
    elif kind.name == "judge":
        from engine.rewards.judges import JudgeCriterion

        criterion = JudgeCriterion(name, weight, params, services)
    elif kind.name == JsonSchema.kind:
        criterion = JsonSchema(name, weight, params, services.rubric_dir)
    elif kind.name in BUILTIN_KINDS:
        criterion = BUILTIN_KINDS[kind.name](name, weight, params)  # type: ignore[call-arg]
    else:  # described in the format but not implemented here: a bug of ours, said plainly
        raise RubricError(f"this engine has no implementation of kind '{kind.name}'; update RL Studio", name)
    return criterion


def load_rubric(path: str | Path, tokenizer: Any = None, cache_db: str | Path | None = None) -> Rubric:
    """Load and validate a rubric file, and start the workers its user code runs in.

    Raises RubricError, naming the criterion and the problem, for anything wrong with the file: unknown
    kind, missing or unknown field, duplicate name, bad expression, missing source file or function,
    a function whose signature fits no convention.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RubricError(f"rubric file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(f"cannot read rubric file {path}: {exc}") from None
    return rubric_from_text(text, path.resolve().parent, path=path, tokenizer=tokenizer, cache_db=cache_db)


def rubric_from_text(
    text: str,
    rubric_dir: Path,
    path: Path | None = None,
    tokenizer: Any = None,
    cache_db: str | Path | None = None,
) -> Rubric:
    where = str(path) if path else "the rubric"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(f"{where} is not valid TOML: {exc}") from None
    problems = top_level_problems(data)
    if problems:
        raise RubricError(f"{where}: {problems[0]}")
    name = data["name"]
    tables = data["criteria"]
    services = Services(rubric_dir, cache_db)
    criteria: list[Criterion] = []
    try:
        seen: set[str] = set()
        for index, table in enumerate(tables):
            criterion = build_criterion(table, index, services)
            if criterion.name in seen:
                raise RubricError("the name is used by two criteria; names must be unique", criterion.name)
            seen.add(criterion.name)
            criteria.append(criterion)
        total = data.get("total")
        expression = None
        if total is not None:
            if not isinstance(total, str):
                raise RubricError(
                    f'total must be an expression in quotes, like "correct + 0.2 * format", not {total!r}'
                )
            try:
                expression = Expression(total, seen)
            except ExprError as exc:
                raise RubricError(f"total: bad expression {exc}") from None
        # Start every worker first, then wait: they import side by side.
        codes = [code for criterion in criteria for code in user_codes(criterion)]
        for code in codes:
            code.start()
        for code in codes:
            code.wait_loaded()
    except BaseException:
        for criterion in criteria:
            criterion.close()
        services.close()
        raise
    return Rubric(name, criteria, expression, text, path, tokenizer, services)


class Rubric:
    """A loaded rubric. `score` never raises for the user's code; `close` stops its workers."""

    def __init__(
        self,
        name: str,
        criteria: list[Criterion],
        total: Expression | None,
        toml_text: str,
        path: Path | None,
        tokenizer: Any,
        services: Services,
    ) -> None:
        self.name = name
        self.criteria = criteria
        self.total = total
        self.path = path
        self.tokenizer = tokenizer
        self._toml_text = toml_text
        self._services = services
        self._finalizer = weakref.finalize(self, _close_all, list(criteria), services)

    @property
    def needs_completion_ids(self) -> bool:
        """Whether some criterion reads token ids: without them in the batch, `tokenizer` is needed."""
        return any(c.needs_completion_ids for c in self.criteria)

    def criterion(self, name: str) -> Criterion:
        for c in self.criteria:
            if c.name == name:
                return c
        raise KeyError(name)

    def score(self, batch: RewardBatch) -> ScoredBatch:
        ctx = ScoringContext(batch, self.tokenizer)
        # Submit every criterion first (workers and judges start on it), then collect in order.
        collectors: list[tuple[Criterion, Callable[[], CriterionResult]]] = []
        for criterion in self.criteria:
            try:
                collectors.append((criterion, criterion.submit(ctx)))
            except Exception as exc:
                collectors.append((criterion, _constant(_our_failure(criterion, ctx.n, exc))))
        results: dict[str, CriterionResult] = {}
        for criterion, collect in collectors:
            try:
                results[criterion.name] = collect()
            except Exception as exc:
                results[criterion.name] = _our_failure(criterion, ctx.n, exc)
        totals, total_errors = self._totals(results, ctx.n)
        scored = ScoredBatch(
            totals=totals,
            scores={name: r.values for name, r in results.items()},
            errors={name: r.errors for name, r in results.items()},
            explanations={name: r.explanations for name, r in results.items() if r.explanations is not None},
        )
        scored.total_errors = total_errors
        for r in results.values():
            scored.logged_metrics.update(r.metrics)
            scored.logged_columns.update(r.columns)
        return scrub_scored(scored)  # no secret value is stored or printed

    def _totals(self, results: dict[str, CriterionResult], n: int) -> tuple[list[float], list[str | None]]:
        errors: list[str | None] = [None] * n
        if self.total is None:
            weighted = [(c.weight, results[c.name].values) for c in self.criteria if c.weight != 0]
            totals = [math.fsum(w * x for w, v in weighted if (x := v[i]) is not None) for i in range(n)]
            return totals, errors
        totals = []
        for i in range(n):
            row = {name: (r.values[i] or 0.0) for name, r in results.items()}
            try:
                totals.append(self.total(row))
            except ExprError as exc:
                totals.append(0.0)
                errors[i] = f"total: {exc}; scored 0.0"
        return totals, errors

    def snapshot(self) -> tuple[str, dict[str, str]]:
        """The rubric's TOML text and {path relative to the rubric: text} of every file it read (user code
        and the modules it imports from beside the rubric, schema and grader files), as loaded: what the
        engine stores as an immutable rubric version."""
        sources: dict[str, str] = {}
        for criterion in self.criteria:
            sources.update(criterion.files())
        return self._toml_text, dict(sorted(sources.items()))

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Rubric:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Rubric {self.name!r}: {', '.join(c.name for c in self.criteria)}>"


def _constant(result: CriterionResult) -> Callable[[], CriterionResult]:
    return lambda: result


def _our_failure(criterion: Criterion, n: int, exc: Exception) -> CriterionResult:
    """A bug of ours (the user's code is contained by the criteria themselves) must not stop a run
    either: its traceback goes to the log, and the criterion's rows get the error."""
    traceback.print_exception(exc, file=sys.stderr)
    return CriterionResult.failed(n, f"the {criterion.kind} criterion failed: {type(exc).__name__}: {exc}")


def _close_all(criteria: list[Criterion], services: Services) -> None:
    for criterion in criteria:
        with contextlib.suppress(Exception):
            criterion.close()
    services.close()
