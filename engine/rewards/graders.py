"""OpenAI reinforcement fine-tuning graders, taken as-is: `kind = "openai_grader"` with `grader = {...}`
(or `grader_file = "grader.json"`) holding the grader object.

    string_check     {input, reference, operation: eq | ne | like | ilike}            -> 1 or 0
    text_similarity  {input, reference, evaluation_metric, pass_threshold}           -> the metric, [0, 1]
    python           {source: "def grade(sample, item): ..."}                         -> run in a worker
    score_model      {model, input: [messages], range, sampling_params}               -> an LLM judge
    label_model      {model, input: [messages], labels, passing_labels}               -> 1 if passing, else 0
    multi            {graders: {key: grader}, calculate_output: "expression of keys"} -> the expression
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.rewards.builtins import per_row
from engine.rewards.context import ScoringContext
from engine.rewards.criteria import Criterion, CriterionResult
from engine.rewards.errors import RubricError
from engine.rewards.expr import ExprError, Expression
from engine.rewards.judges import Judge, make_backend
from engine.rewards.params import Params
from engine.rewards.similarity import METRICS
from engine.rewards.templates import Template, TemplateError
from engine.rewards.usercode import DEFAULT_TIMEOUT_S, FunctionSource, UserCode, worker_limits

OPENAI_BASE_URL = "https://api.openai.com/v1"
COMMON_FIELDS = {"type", "name", "id"}
FIELDS = {
    "string_check": {"input", "reference", "operation"},
    "text_similarity": {"input", "reference", "evaluation_metric", "pass_threshold"},
    "python": {"source", "image_tag", "pass_threshold"},
    "score_model": {"model", "input", "range", "sampling_params", "pass_threshold"},
    "label_model": {"model", "input", "labels", "passing_labels"},
    "multi": {"graders", "calculate_output", "range", "pass_threshold"},
}


class Grader:
    columns: frozenset[str] | set[str] = frozenset()
    """Dataset columns the grader's templates read."""

    def start(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Builder:
    """Builds a grader tree, checking each object the way OpenAI's API would, with messages that say
    where in the tree the problem is (`grader.graders.accuracy.operation`)."""

    def __init__(
        self,
        criterion: str,
        params: Params,
        rubric_dir: Path,
        services: Any,
        timeout_s: float,
    ):
        self.criterion = criterion
        self.params = params
        self.rubric_dir = rubric_dir
        self.services = services
        self.timeout_s = timeout_s
        self.memory_mb, self.env = worker_limits(params)
        self.codes: list[UserCode] = []
        """One per python grader: each runs in a worker of its own, as separate criteria do."""

    def error(self, where: str, message: str) -> RubricError:
        return RubricError(f"{where}: {message}", self.criterion)

    def template(self, where: str, value: Any) -> Template:
        if not isinstance(value, str):
            raise self.error(
                where, f'must be a template string like "{{{{sample.output_text}}}}", not {value!r}'
            )
        try:
            return Template(value)
        except TemplateError as exc:
            raise self.error(where, str(exc)) from None

    def build(self, spec: Any, where: str) -> Grader:
        if not isinstance(spec, dict):
            raise self.error(where, f"a grader is an object with a 'type', not {spec!r}")
        kind = spec.get("type")
        if kind == "cosine" or spec.get("evaluation_metric") == "cosine":
            raise self.error(
                where,
                "the cosine metric needs an embedding model, which RL Studio does not run; use "
                "rouge_l, bleu or fuzzy_match, or a score_model judge",
            )
        if kind not in FIELDS:
            raise self.error(where, f"unknown grader type {kind!r}; use one of {', '.join(FIELDS)}")
        unknown = sorted(set(spec) - FIELDS[kind] - COMMON_FIELDS)
        if unknown:
            raise self.error(
                where,
                f"unknown field(s) {', '.join(unknown)} for a {kind} grader "
                f"(its fields: {', '.join(sorted(FIELDS[kind] | COMMON_FIELDS))})",
            )
        missing = sorted(
            f
            for f in FIELDS[kind]
            if f not in spec and f not in ("pass_threshold", "image_tag", "range", "sampling_params")
        )
        if missing:
            raise self.error(where, f"a {kind} grader needs {', '.join(missing)}")
        builder: Callable[[dict[str, Any], str], Grader] = getattr(self, f"_{kind}")
        return builder(spec, where)

    def _string_check(self, spec: dict[str, Any], where: str) -> Grader:
        operation = spec["operation"]
        if operation not in StringCheck.OPERATIONS:
            raise self.error(f"{where}.operation", f"must be one of eq, ne, like, ilike, not {operation!r}")
        return StringCheck(
            self.template(f"{where}.input", spec["input"]),
            self.template(f"{where}.reference", spec["reference"]),
            operation,
        )

    def _text_similarity(self, spec: dict[str, Any], where: str) -> Grader:
        metric = spec["evaluation_metric"]
        if metric not in METRICS:
            raise self.error(
                f"{where}.evaluation_metric", f"must be one of {', '.join(METRICS)}, not {metric!r}"
            )
        return TextSimilarity(
            self.template(f"{where}.input", spec["input"]),
            self.template(f"{where}.reference", spec["reference"]),
            metric,
        )

    def _python(self, spec: dict[str, Any], where: str) -> Grader:
        if not isinstance(spec["source"], str) or "grade" not in spec["source"]:
            raise self.error(f"{where}.source", "must be Python source that defines grade(sample, item)")
        fid = where
        source = FunctionSource(self.criterion, self.rubric_dir, None, spec["source"], "grade", where)
        code = UserCode(self.criterion, self.rubric_dir, self.memory_mb, self.env)
        code.add(fid, source, "openai-python")
        self.codes.append(code)
        return PythonGrader(code, fid, self.timeout_s)

    def _messages(self, spec: dict[str, Any], where: str) -> list[tuple[str, Template]]:
        raw = spec["input"]
        if not isinstance(raw, list) or not raw:
            raise self.error(f"{where}.input", "must be a list of messages [{role, content}]")
        messages = []
        for k, message in enumerate(raw):
            if not isinstance(message, dict) or "content" not in message:
                raise self.error(f"{where}.input[{k}]", "must be a message {role, content}")
            content = message["content"]
            if isinstance(content, list):  # typed parts: [{type: input_text, text: ...}]
                content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
            role = message.get("role", "user")
            role = "system" if role == "developer" else role
            messages.append((role, self.template(f"{where}.input[{k}].content", content)))
        return messages

    def _judge(
        self, spec: dict[str, Any], where: str, score_range: tuple[float, float], labels: Any
    ) -> Judge:
        model = spec["model"]
        if not isinstance(model, str):
            raise self.error(f"{where}.model", f"must be a model name or a local model folder, not {model!r}")
        backend = make_backend(self.params, model, self.rubric_dir, default_base_url=OPENAI_BASE_URL)
        sampling_in = spec.get("sampling_params") or {}
        sampling: dict[str, Any] = {"temperature": float(sampling_in.get("temperature", 0.0))}
        max_tokens = sampling_in.get("max_completions_tokens", sampling_in.get("max_tokens", 256))
        sampling["max_tokens"] = int(max_tokens)
        for key in ("top_p", "seed"):
            if key in sampling_in:
                sampling[key] = sampling_in[key]
        return Judge(
            backend,
            self._messages(spec, where),
            score_range,
            sampling,
            labels=labels,
            cache=self.services.judge_cache,
            concurrency=4,
        )

    def _score_model(self, spec: dict[str, Any], where: str) -> Grader:
        value = spec.get("range", [0, 1])
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, (int, float)) for v in value)
            and value[0] < value[1]
        ):
            raise self.error(f"{where}.range", f"must be [low, high] with low < high, not {value!r}")
        return JudgeGrader(self._judge(spec, where, (float(value[0]), float(value[1])), None))

    def _label_model(self, spec: dict[str, Any], where: str) -> Grader:
        labels, passing = spec["labels"], spec["passing_labels"]
        if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
            raise self.error(f"{where}.labels", "must be a list of label strings")
        if not (isinstance(passing, list) and set(passing) <= set(labels)):
            raise self.error(f"{where}.passing_labels", "must be a list of labels taken from 'labels'")
        return JudgeGrader(self._judge(spec, where, (0.0, 1.0), (labels, passing)))

    def _multi(self, spec: dict[str, Any], where: str) -> Grader:
        graders = spec["graders"]
        if not isinstance(graders, dict) or not graders:
            raise self.error(f"{where}.graders", "must be an object {key: grader, ...}")
        children = {}
        for key, child in graders.items():
            if not key.isidentifier():
                raise self.error(f"{where}.graders", f"key {key!r} must be a word usable in calculate_output")
            children[key] = self.build(child, f"{where}.graders.{key}")
        try:
            expression = Expression(str(spec["calculate_output"]), children)
        except ExprError as exc:
            raise self.error(f"{where}.calculate_output", str(exc)) from None
        return Multi(children, expression)


class StringCheck(Grader):
    OPERATIONS = ("eq", "ne", "like", "ilike")

    def __init__(self, input_: Template, reference: Template, operation: str) -> None:
        self.input, self.reference, self.operation = input_, reference, operation
        self.columns = input_.columns | reference.columns

    def test(self, text: str, reference: str) -> bool:
        if self.operation == "eq":
            return text == reference
        if self.operation == "ne":
            return text != reference
        if self.operation == "like":
            return reference in text
        return reference.lower() in text.lower()

    def compare(self, text: str, reference: str) -> float:
        return float(self.test(text, reference))

    def start(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        result = per_row(
            ctx, lambda i, _: self.compare(self.input.render(ctx, i), self.reference.render(ctx, i))
        )
        return lambda: result


class TextSimilarity(StringCheck):
    def __init__(self, input_: Template, reference: Template, metric: str) -> None:
        super().__init__(input_, reference, "eq")
        self.metric = METRICS[metric]

    def compare(self, text: str, reference: str) -> float:
        return self.metric(text, reference)


class PythonGrader(Grader):
    def __init__(self, code: UserCode, fid: str, timeout_s: float) -> None:
        self.code, self.fid, self.timeout_s = code, fid, timeout_s
        self.columns = set()

    def start(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        finish = self.code.call(ctx, self.fid, self.timeout_s)

        def collect() -> CriterionResult:
            values, errors, _, _ = finish()
            return CriterionResult(values, errors)

        return collect


class JudgeGrader(Grader):
    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.columns = judge.columns

    def start(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        return self.judge.start(ctx)

    def close(self) -> None:
        self.judge.close()


class Multi(Grader):
    def __init__(self, graders: dict[str, Grader], expression: Expression) -> None:
        self.graders, self.expression = graders, expression
        self.columns = set().union(*(g.columns for g in graders.values()))

    def start(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        started = {key: g.start(ctx) for key, g in self.graders.items()}

        def collect() -> CriterionResult:
            results = {key: fn() for key, fn in started.items()}
            values: list[float | None] = []
            errors: list[str | None] = []
            explanations: list[str | None] = []
            for i in range(ctx.n):
                failed = [
                    f"{key}: {r.errors[i] or 'no value'}" for key, r in results.items() if r.values[i] is None
                ]
                notes = [
                    f"{key}: {r.explanations[i]}"
                    for key, r in results.items()
                    if r.explanations and r.explanations[i]
                ]
                explanations.append("\n".join(notes) or None)
                if failed:
                    values.append(None)
                    errors.append("; ".join(failed))
                    continue
                row = {key: r.values[i] for key, r in results.items()}
                try:
                    values.append(self.expression(row))  # type: ignore[arg-type]
                    errors.append(None)
                except ExprError as exc:
                    values.append(None)
                    errors.append(f"calculate_output: {exc}")
            has_notes = any(e is not None for e in explanations)
            return CriterionResult(values, errors, explanations if has_notes else None)

        return collect

    def close(self) -> None:
        for grader in self.graders.values():
            grader.close()


class GraderCriterion(Criterion):
    kind = "openai_grader"

    def __init__(self, name: str, weight: float, params: Params, services: Any) -> None:
        super().__init__(name, weight)
        spec = params.table_value("grader", None)
        grader_file = params.text("grader_file", None)
        if (spec is None) == (grader_file is None):
            raise params.error(
                'give the grader object as grader = {...} or grader_file = "grader.json", one of them'
            )
        if grader_file is not None:
            path = (services.rubric_dir / grader_file).resolve()
            try:
                self.grader_text = path.read_text(encoding="utf-8")
                spec = json.loads(self.grader_text)
            except OSError as exc:
                raise params.error(f"cannot read grader_file {path}: {exc.strerror}") from None
            except ValueError as exc:
                raise params.error(f"grader_file {path} is not valid JSON: {exc}") from None
        timeout_s = params.number("timeout_s", DEFAULT_TIMEOUT_S, minimum=0.001)
        builder = _Builder(name, params, services.rubric_dir, services, timeout_s)
        self.grader = builder.build(spec, "grader")
        self.spec = spec
        self.codes = builder.codes
        self.grader_file = grader_file

    def files(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for code in self.codes:
            found.update(code.snapshot_sources())
        if self.grader_file:
            found[self.grader_file] = self.grader_text
        return found

    def submit(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        return self.grader.start(ctx)

    def columns_used(self) -> set[str]:
        return set(self.grader.columns)

    def close(self) -> None:
        self.grader.close()
        for code in self.codes:
            code.close()
