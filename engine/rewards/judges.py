"""LLM judges: a prompt template, a score range, a parser that finds the score in free text, and a
backend: a local transformers model directory, or any OpenAI-compatible chat completions endpoint.

The judge's whole answer is kept as the explanation of its score. Results are cached by
(rendered prompt, judge), in memory or in the workspace's `judge_cache` table, so scoring the same
completion twice (a re-run, `rubric test` after an edit elsewhere) asks the model once. API keys are read
from the environment variable `api_key_env` names, at call time, and are never written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.rewards.context import ScoringContext
from engine.rewards.criteria import Criterion, CriterionResult
from engine.rewards.judge_backends import HttpBackend, JudgeBackend, LocalBackend
from engine.rewards.params import Params
from engine.rewards.secret_env import declare, scrub
from engine.rewards.templates import Template, TemplateError

DEFAULT_PROMPT = """You are an impartial judge. Grade the response to the prompt below.{{instructions}}

[Prompt]
{{prompt}}

[Response]
{{completion}}

Explain your judgement in one or two sentences. Then, on the last line, give your score as a number \
from {{min_score}} to {{max_score}} in the form "Score: N"."""

EXPLANATION_CHARS = 2000
_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_SCORE_LINE = re.compile(
    rf"(?:score|rating|grade|result)\s*(?:is|of)?\s*[:=]?\s*\**\s*({_NUMBER})", re.IGNORECASE
)
_FRACTION = re.compile(rf"({_NUMBER})\s*(?:/|out of)\s*{_NUMBER}", re.IGNORECASE)


class JudgeCache:
    """(key -> score, explanation): in memory, or in the workspace's judge_cache table."""

    def __init__(self, cache_db: str | Path | None) -> None:
        self.memory: dict[str, tuple[float | None, str | None]] = {}
        self.conn: sqlite3.Connection | None = None
        self.lock = threading.Lock()
        if cache_db is not None:
            from engine.contract.schema import connect, migrate

            self.conn = connect(str(cache_db))
            has_table = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='judge_cache'"
            ).fetchone()
            if not has_table:
                migrate(self.conn)

    def get(self, key: str) -> tuple[float | None, str | None] | None:
        with self.lock:
            if key in self.memory:
                return self.memory[key]
            if self.conn is None:
                return None
            row = self.conn.execute(
                "SELECT score, explanation FROM judge_cache WHERE key = ?", (key,)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def put(self, key: str, score: float, explanation: str | None) -> None:
        with self.lock:
            self.memory[key] = (score, explanation)
            if self.conn is not None:
                with self.conn:
                    self.conn.execute(
                        "INSERT OR REPLACE INTO judge_cache(key, score, explanation, created_at) VALUES (?, ?, ?, ?)",
                        (key, score, explanation, time.time()),
                    )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def parse_score(text: str) -> float | None:
    """Find the score in a judge's free-text answer: a JSON {"score": N}, a "Score: N" line (the last one
    wins), "N/10" or "N out of 10", or an answer that is just a number."""
    for match in reversed(list(re.finditer(r"\{[^{}]*\}", text))):
        try:
            data = json.loads(match.group(0))
        except ValueError:
            continue
        for key in ("score", "result", "rating", "grade"):
            if (
                isinstance(data, dict)
                and isinstance(data.get(key), (int, float))
                and not isinstance(data[key], bool)
            ):
                return float(data[key])
    for pattern in (_SCORE_LINE, _FRACTION):
        found = pattern.findall(text)
        if found:
            return float(found[-1])
    stripped = text.strip().rstrip(".")
    if re.fullmatch(_NUMBER, stripped):
        return float(stripped)
    return None


class Judge:
    """A backend plus how to ask it and read its answers; shared by `judge` criteria and score_model graders."""

    def __init__(
        self,
        backend: JudgeBackend,
        messages: list[tuple[str, Template]],
        score_range: tuple[float, float],
        sampling: dict[str, Any],
        labels: tuple[list[str], list[str]] | None = None,
        score_pattern: re.Pattern[str] | None = None,
        cache: JudgeCache | None = None,
        concurrency: int = 4,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.messages = messages
        self.lo, self.hi = score_range
        self.sampling = sampling
        self.labels = labels
        self.score_pattern = score_pattern
        self.cache = cache
        self.extra = {"min_score": _fmt(self.lo), "max_score": _fmt(self.hi), **(extra or {})}
        self.identity = json.dumps(
            {
                "backend": backend.identity(),
                "sampling": sampling,
                "range": [self.lo, self.hi],
                "labels": labels,
            },
            sort_keys=True,
        )
        self.executor = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="judge")
        self.columns: set[str] = set().union(*(t.columns for _, t in messages))

    def render(self, ctx: ScoringContext, i: int) -> list[dict[str, str]]:
        return [{"role": role, "content": t.render(ctx, i, self.extra)} for role, t in self.messages]

    def start(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        n = ctx.n
        values: list[float | None] = [None] * n
        errors: list[str | None] = [None] * n
        explanations: list[str | None] = [None] * n
        todo: list[tuple[int, str, list[dict[str, str]]]] = []
        for i in range(n):
            try:
                messages = self.render(ctx, i)
            except TemplateError as exc:
                errors[i] = str(exc)
                continue
            key = hashlib.sha256(json.dumps([self.identity, messages]).encode()).hexdigest()
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                values[i], explanations[i] = cached
            else:
                todo.append((i, key, messages))
        futures: list[tuple[int, str, Future[str]]] = []
        if todo and self.backend.batched:
            batch_future = self.executor.submit(
                self.backend.complete_many, [m for _, _, m in todo], self.sampling
            )
        else:
            batch_future = None
            futures = [
                (i, key, self.executor.submit(self.backend.complete, m, self.sampling)) for i, key, m in todo
            ]

        def collect() -> CriterionResult:
            answers: list[tuple[int, str, str | BaseException]] = []
            if batch_future is not None:
                try:
                    texts: list[str | BaseException] = list(batch_future.result())
                except Exception as exc:
                    texts = [exc] * len(todo)
                answers = [(i, key, text) for (i, key, _), text in zip(todo, texts, strict=True)]
            for i, key, future in futures:
                try:
                    answers.append((i, key, future.result()))
                except Exception as exc:
                    answers.append((i, key, exc))
            for i, key, answer in answers:
                if isinstance(answer, BaseException):
                    errors[i] = scrub(f"the judge could not be asked: {answer}")
                    continue
                # Scrubbed before the cache stores it: a judge may quote a key that reached its prompt.
                answer = scrub(answer)
                explanations[i] = answer.strip()[:EXPLANATION_CHARS]
                values[i], errors[i] = self.read(answer)
                if values[i] is not None and self.cache is not None:
                    self.cache.put(key, values[i], explanations[i])  # type: ignore[arg-type]
            return CriterionResult(values, errors, explanations)

        return collect

    def read(self, answer: str) -> tuple[float | None, str | None]:
        shown = " ".join(answer.split())
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        if self.labels is not None:
            labels, passing = self.labels
            # Whole words only ("correct" is not found in "incorrect"); the last label named wins.
            found = [
                (m.end(), len(label), label)
                for label in labels
                for m in re.finditer(rf"(?<!\w){re.escape(label)}(?!\w)", answer, re.IGNORECASE)
            ]
            if not found:
                return None, f"no label ({', '.join(labels)}) found in the judge's answer: '{shown}'"
            label = max(found)[2]
            return (1.0 if label in passing else 0.0), None
        if self.score_pattern is not None:
            matches: list[str] = self.score_pattern.findall(answer)
            score = _to_float(matches[-1]) if matches else None
        else:
            score = parse_score(answer)
        if score is None or not math.isfinite(score):
            return None, f"could not find a score in the judge's answer: '{shown}'"
        if not self.lo <= score <= self.hi:
            return (
                None,
                f"the judge answered {_fmt(score)}, outside the range [{_fmt(self.lo)}, {_fmt(self.hi)}]",
            )
        return score, None

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.backend.close()


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def make_backend(
    params: Params, model: str, rubric_dir: Path, default_base_url: str | None = None
) -> JudgeBackend:
    base_url = params.text("base_url", default_base_url)
    api_key_env = params.text(
        "api_key_env", "OPENAI_API_KEY" if default_base_url and base_url == default_base_url else None
    )
    request_timeout = params.number("request_timeout_s", 60.0, minimum=0.1)
    local = (rubric_dir / model).expanduser()
    if base_url is None or (default_base_url and local.is_dir() and not params.has("base_url")):
        if not local.is_dir():
            raise params.error(
                f"model '{model}' is not a local model folder (looked for {local.resolve()}); give a folder with "
                'config.json, or base_url = "http://host:port/v1" for an OpenAI-compatible endpoint'
            )
        if not (local / "config.json").is_file():
            raise params.error(f"the model folder {local.resolve()} has no config.json")
        device = params.text("device", "cpu")
        return LocalBackend(str(local.resolve()), device)
    if not re.match(r"https?://", base_url):
        raise params.error(f"base_url must start with http:// or https://, not {base_url!r}")
    if api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        raise params.error(
            f"api_key_env names an environment variable (like OPENAI_API_KEY), not {api_key_env!r}; never put the key itself in the rubric"
        )
    declare(api_key_env)  # kept from reward workers, scrubbed from every message, whatever its name
    backend = HttpBackend(base_url, model, api_key_env, request_timeout)
    if backend.key_missing():
        raise params.error(
            f"the environment variable {api_key_env} (api_key_env) is not set; export it with the endpoint's key "
            "(or remove api_key_env for an endpoint that needs none)"
        )
    return backend


def score_range(
    params: Params, key: str = "range", default: tuple[float, float] = (0.0, 10.0)
) -> tuple[float, float]:
    value = params.raw(key, list(default))
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not value[0] < value[1]
    ):
        raise params.error(f"'{key}' must be [low, high] with low < high, like [0, 10], not {value!r}")
    return float(value[0]), float(value[1])


class JudgeCriterion(Criterion):
    kind = "judge"

    def __init__(self, name: str, weight: float, params: Params, services: Any) -> None:
        super().__init__(name, weight)
        model = params.text("model")
        backend = make_backend(params, model, services.rubric_dir)
        lo, hi = score_range(params)
        instructions = params.text("instructions", "").strip()
        # The instructions go into the prompt before it is parsed, so they may use placeholders too.
        prompt_text = params.text("prompt", DEFAULT_PROMPT).replace(
            "{{instructions}}", f" {instructions}" if instructions else ""
        )
        try:
            prompt = Template(prompt_text, extra_names=("min_score", "max_score"))
            system = params.text("system", None)
            messages = ([("system", Template(system))] if system else []) + [("user", prompt)]
        except TemplateError as exc:
            raise params.error(f"prompt: {exc}") from None
        sampling = {
            "temperature": params.number("temperature", 0.0, minimum=0.0),
            "max_tokens": params.integer("max_tokens", 256, minimum=1),
        }
        self.normalize = params.flag("normalize", False)
        score_regex = params.text("score_regex", None)
        score_pattern = None
        if score_regex is not None:
            try:
                score_pattern = re.compile(score_regex)
            except re.error as exc:
                raise params.error(f"'score_regex' is not a valid regular expression: {exc}") from None
            if score_pattern.groups != 1:
                raise params.error("'score_regex' needs exactly one (group) around the number")
        use_cache = params.flag("cache", True)
        self.judge = Judge(
            backend,
            messages,
            (lo, hi),
            sampling,
            cache=services.judge_cache if use_cache else None,
            concurrency=params.integer("concurrency", 4, minimum=1),
            score_pattern=score_pattern,
        )

    def submit(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        collect = self.judge.start(ctx)
        if not self.normalize:
            return collect

        def normalized() -> CriterionResult:
            result = collect()
            span = self.judge.hi - self.judge.lo
            result.values = [None if v is None else (v - self.judge.lo) / span for v in result.values]
            return result

        return normalized

    def columns_used(self) -> set[str]:
        return self.judge.columns

    def close(self) -> None:
        self.judge.close()
