"""Criteria that run the user's own Python: `kind = "python"` (any convention in docs/rewards.md#conventions)
and the python graders inside an `openai_grader`. The code runs in a RewardWorker, never in the engine:
one worker per python criterion and per python grader, so that no user code shares an interpreter with
another (a function that patches `re.search` breaks only itself)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.contract.reward_signatures import STYLE_ALIASES
from engine.rewards.context import ScoringContext
from engine.rewards.conventions import STYLES
from engine.rewards.criteria import Criterion, CriterionResult
from engine.rewards.errors import RubricError
from engine.rewards.params import Params
from engine.rewards.secret_env import declare
from engine.rewards.worker_protocol import FunctionSpec
from engine.rewards.workers import (
    LOAD_TIMEOUT_S,
    Outcome,
    PendingCall,
    RewardWorker,
    WorkerFailure,
    WorkerStartError,
)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_MB = 4096
"""Each worker's memory limit unless a criterion sets memory_mb (0 = none): a runaway allocation fails
at once with a message, instead of swapping the machine until the timeout."""
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FunctionSource:
    """Where one function comes from: a file beside the rubric (`source = "rewards.py:fn"`) or inline code.

    The text is read once, at load, and the worker runs that text: what `snapshot()` stores is exactly
    what scores, even after a worker is restarted and the file has since changed on disk.
    """

    def __init__(
        self,
        criterion: str,
        rubric_dir: Path,
        source: str | None,
        code: str | None,
        function: str | None,
        where: str = "",
    ):
        self.criterion = criterion
        if (source is None) == (code is None):
            raise RubricError(
                'give either source = "file.py:function" or code = "..." with function', criterion
            )
        if source is not None:
            path_text, sep, fn_name = source.rpartition(":")
            if not sep or not path_text or not fn_name:
                raise RubricError(
                    f'source = {source!r} must be "path/to/file.py:function_name" (relative to the rubric file)',
                    criterion,
                )
            if function is not None:
                raise RubricError(
                    "'function' goes with inline 'code'; with 'source' write \"file.py:function\"", criterion
                )
            path = (rubric_dir / path_text).resolve()
            if not path.is_file():
                raise RubricError(f"source file {path_text} not found (looked for {path})", criterion)
            try:
                self.code = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise RubricError(f"cannot read source file {path}: {exc}", criterion) from None
            self.filename = str(path)
            self.display = path_text
            try:
                self.relative: str | None = path.relative_to(rubric_dir.resolve()).as_posix()
            except ValueError:
                self.relative = path_text
            self.function = fn_name
            self.is_file = True
        else:
            assert code is not None
            if not function:
                raise RubricError(
                    "inline 'code' needs 'function' = the name of the function to call", criterion
                )
            self.code = code
            suffix = f" {where}" if where else ""
            self.filename = f"<rubric criterion {criterion}{suffix}>"
            self.display = f"the inline code of '{criterion}'{suffix}"
            self.relative = None
            self.function = function
            self.is_file = False

    def spec(self, style: str | None) -> FunctionSpec:
        return FunctionSpec(self.filename, self.code, self.display, self.function, style, self.is_file)


def parse_style(params: Params, key: str = "style") -> str | None:
    style = params.text(key, None)
    if style is None:
        return None
    style = STYLE_ALIASES.get(style, style)
    if style not in STYLES:
        raise params.error(f"'{key}' must be one of {', '.join(STYLES)}, not {style!r}")
    return style


def worker_limits(params: Params) -> tuple[int | None, list[str]]:
    """A user-code criterion's memory_mb (None: no limit) and the secret variables its code may see."""
    memory_mb = params.integer("memory_mb", DEFAULT_MEMORY_MB, minimum=0) or None
    env = params.texts("env", [])
    for name in env:
        if not ENV_NAME.match(name):
            raise params.error(f"'env' lists environment variable names (like MY_API_KEY), not {name!r}")
    declare(env)  # listed or not, their values are secrets: scrubbed from every message
    return memory_mb, env


def _failed(n: int, message: str) -> Callable[[], Outcome]:
    return lambda: ([None] * n, [message] * n, {}, {})


class UserCode:
    """The user's functions that share one worker: one python criterion's, or one python grader's."""

    def __init__(
        self, criterion: str, rubric_dir: Path, memory_mb: int | None, env: list[str] | None = None
    ) -> None:
        self.criterion = criterion
        self.rubric_dir = rubric_dir
        self.memory_mb = memory_mb
        self.env = list(env or [])
        self.specs: dict[str, FunctionSpec] = {}
        self.sources: list[FunctionSource] = []
        self.worker: RewardWorker | None = None
        self.infos: dict[str, dict[str, Any]] = {}

    def add(self, fid: str, source: FunctionSource, style: str | None) -> str:
        self.specs[fid] = source.spec(style)
        self.sources.append(source)
        return fid

    def start(self) -> None:
        self.worker = RewardWorker(
            self.criterion, self.specs, str(self.rubric_dir.resolve()), self.memory_mb, self.env
        )
        self.worker.start()

    def wait_loaded(self) -> None:
        assert self.worker is not None
        try:
            infos = self.worker.wait_loaded()
        except (WorkerFailure, WorkerStartError) as exc:
            detail = str(exc)
            if detail.startswith("timed out"):
                detail = f"took longer than {LOAD_TIMEOUT_S:g} s{detail[len('timed out') :]}"
            raise RubricError(f"importing its code failed: {detail}", self.criterion) from None
        except OSError as exc:
            raise RubricError(f"cannot start a reward worker: {exc}", self.criterion) from None
        for error in self.worker.load_errors.values():
            raise RubricError(error, self.criterion)
        self.infos = infos

    def snapshot_sources(self) -> dict[str, str]:
        found = {s.relative: s.code for s in self.sources if s.relative is not None}
        if self.worker is not None:  # modules beside the rubric that the user code imported
            for path in self.worker.files:
                p = Path(path)
                try:
                    relative = p.relative_to(self.rubric_dir.resolve()).as_posix()
                    found.setdefault(relative, p.read_text(encoding="utf-8"))
                except (ValueError, OSError, UnicodeDecodeError):
                    continue
        return found

    def call(self, ctx: ScoringContext, fid: str, timeout_s: float) -> Callable[[], Outcome]:
        """Send the batch to the worker; the returned function waits for the outcome. Never raises:
        a worker that cannot even be started is an error on every row, and the run goes on."""
        assert self.worker is not None
        info = self.infos[fid]
        per_sample = (
            info["style"] in ("verifiers", "openai-python") and not info["group"] and not info["is_async"]
        )
        try:
            blob = ctx.worker_blob(with_ids=info["wants_completion_ids"])
            pending = PendingCall(self.worker, fid, blob, ctx.n, per_sample, timeout_s)
        except Exception as exc:
            return _failed(ctx.n, f"could not be sent to its worker: {type(exc).__name__}: {exc}")

        def finish() -> Outcome:
            try:
                return pending.finish()
            except Exception as exc:
                if self.worker is not None:
                    self.worker.kill()
                return _failed(ctx.n, f"the reward worker failed: {type(exc).__name__}: {exc}")()

        return finish

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


class PythonCriterion(Criterion):
    kind = "python"

    def __init__(self, name: str, weight: float, params: Params, rubric_dir: Path) -> None:
        super().__init__(name, weight)
        source = FunctionSource(
            name,
            rubric_dir,
            params.text("source", None),
            params.text("code", None),
            params.text("function", None),
        )
        self.style = parse_style(params)
        self.timeout_s = params.number("timeout_s", DEFAULT_TIMEOUT_S, minimum=0.001)
        memory_mb, env = worker_limits(params)
        self.code = UserCode(name, rubric_dir, memory_mb, env)
        self.fid = self.code.add("fn", source, self.style)

    @property
    def codes(self) -> list[UserCode]:
        return [self.code]

    @property
    def info(self) -> dict[str, Any]:
        return self.code.infos.get(self.fid, {})

    @property
    def needs_completion_ids(self) -> bool:  # type: ignore[override]
        return bool(self.info.get("wants_completion_ids"))

    @property
    def detected_style(self) -> str | None:
        if not self.info:
            return None
        style = self.info["style"]
        return f"{style} (group)" if self.info.get("group") else style

    def submit(self, ctx: ScoringContext) -> Callable[[], CriterionResult]:
        finish = self.code.call(ctx, self.fid, self.timeout_s)

        def collect() -> CriterionResult:
            values, errors, metrics, columns = finish()
            return CriterionResult(values, errors, metrics=metrics, columns=columns)

        return collect

    def files(self) -> dict[str, str]:
        return self.code.snapshot_sources()

    def columns_used(self) -> set[str]:
        params = set(self.info.get("params", []))
        return params - {"prompts", "completions", "completion_ids", "prompt", "completion", "trainer_state"}

    def close(self) -> None:
        self.code.close()


def user_codes(criterion: Criterion) -> list[UserCode]:
    """The worker owners a criterion holds (`codes`): the rubric starts them all side by side."""
    return [c for c in getattr(criterion, "codes", ()) if isinstance(c, UserCode)]
