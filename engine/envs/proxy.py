"""Environments in TRL's `environment_factory` convention, with the user's code kept in worker processes.

    factory = load_environment("envs/file_manager.py:FileManagerEnv", tool_timeout=5.0)
    env = factory()                  # a proxy: same tool names, signatures, type hints and docstrings
    env.reset(**row)                 # -> the task text, or None
    env.move_file(source="a", destination="b")

`load_environment` starts one worker to import the class and describe its tools, then builds a proxy class
whose public functions are exactly the environment's tools, so TRL's GRPOTrainer renders the same tool
schemas from it as from the class itself. Each proxy instance owns one worker process holding one
instance of the environment.

Containment: a tool that raises, returns something odd, hangs past `tool_timeout` (its worker is killed
and replaced) or is called with arguments that do not fit its signature never raises anything but
`ToolError`, whose message the model sees (TRL turns a raising tool into {"error": message} and counts it
in tools/failure_frequency). `reset` never raises: its error becomes the task text the model sees.
Every call is recorded: tool, arguments as JSON, result, valid or not, error, seconds.
"""

from __future__ import annotations

import inspect
import json
import math
import pickle
import types
import typing
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.envs.process import WorkerLost, WorkerProcess
from engine.envs.trajectory import EnvironmentSnapshot, ToolCall

LOAD_TIMEOUT_S = 60.0
BUILTINS: dict[str, tuple[str, str]] = {
    "file_manager": ("file_manager.py", "FileManagerEnv"),
}
"""builtin:<name> environments shipped with the engine: (file beside this module, class)."""


class EnvironmentLoadError(ValueError):
    """The environment cannot be loaded; the message says what is wrong and how to fix it."""


class ToolError(Exception):
    """A tool call failed; the message is what the model sees."""


@dataclass
class EnvironmentSpec:
    filename: str
    class_name: str
    display: str


def resolve_spec(path: str, base_dir: str | Path = "") -> EnvironmentSpec:
    """`builtin:file_manager` or `FILE.py:ClassName` (relative to base_dir) -> where the class is."""
    if path.startswith("builtin:"):
        name = path.removeprefix("builtin:")
        if name not in BUILTINS:
            raise EnvironmentLoadError(
                f"unknown built-in environment '{name}'; built-ins: {', '.join(f'builtin:{b}' for b in BUILTINS)}"
            )
        filename, class_name = BUILTINS[name]
        return EnvironmentSpec(str(Path(__file__).resolve().parent / filename), class_name, path)
    file_part, sep, class_name = path.rpartition(":")
    if not sep or not file_part.endswith(".py") or not class_name.isidentifier():
        raise EnvironmentLoadError(
            f"environment '{path}' must be FILE.py:ClassName (for example envs/file_manager.py:FileManagerEnv) "
            f"or builtin:NAME ({', '.join(BUILTINS)})"
        )
    file = Path(file_part).expanduser()
    if not file.is_absolute() and base_dir:
        file = Path(base_dir) / file
    if not file.is_file():
        raise EnvironmentLoadError(f"environment file {file} does not exist; check the path in '{path}'")
    return EnvironmentSpec(str(file.resolve()), class_name, path)


@dataclass
class ToolInfo:
    name: str
    signature: inspect.Signature
    doc: str
    problems: list[str]

    def hints(self) -> dict[str, Any]:
        return {
            p.name: p.annotation for p in self.signature.parameters.values() if p.annotation is not p.empty
        }

    def text(self) -> str:
        return f"{self.name}{self.signature}"


# ---- argument checking ----------------------------------------------------------------------------------


def type_problem(value: Any, hint: Any) -> str | None:
    """Why `value` (from a model's JSON) does not fit the type hint, or None when it fits. Types the
    check does not know pass: the tool itself is the judge of those."""
    if hint is Any or hint is inspect.Parameter.empty or hint is object:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        problems = [type_problem(value, a) for a in args]
        return None if any(p is None for p in problems) else f"{value!r} is not {_name(hint)}"
    if origin is typing.Literal:
        return None if value in args else f"{value!r} is not one of {', '.join(map(repr, args))}"
    if hint is None or hint is type(None):
        return None if value is None else f"{value!r} is not null"
    base = origin or hint
    if not isinstance(base, type):
        return None
    if base is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base in (list, tuple, set, frozenset):
        ok = isinstance(value, list | tuple)
        if ok and args and args[-1] is not Ellipsis and base is not tuple:
            for item in value:
                problem = type_problem(item, args[0])
                if problem:
                    return f"an item of the list: {problem}"
    elif base is dict:
        ok = isinstance(value, dict)
        if ok and len(args) == 2:
            for item in value.values():
                problem = type_problem(item, args[1])
                if problem:
                    return f"a value of the object: {problem}"
    elif base in (str, bool):
        ok = isinstance(value, base)
    else:
        return None
    return None if ok else f"{value!r} is not {_name(hint)}"


def _name(hint: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        hint, getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    )


def check_arguments(tool: ToolInfo, kwargs: dict[str, Any]) -> str | None:
    """Why these arguments cannot be passed to the tool, or None."""
    try:
        bound = tool.signature.bind(**kwargs)
    except TypeError as exc:
        expected = ", ".join(
            p.name
            for p in tool.signature.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
        return f"wrong arguments for {tool.name}: {exc} (it takes: {expected or 'nothing'})"
    for name, value in bound.arguments.items():
        parameter = tool.signature.parameters[name]
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        problem = type_problem(value, parameter.annotation)
        if problem:
            return f"wrong type for argument '{name}' of {tool.name}: {problem}"
    return None


def arguments_json(kwargs: dict[str, Any]) -> str:
    return json.dumps(kwargs, ensure_ascii=False, default=repr, sort_keys=True)


# ---- the proxy ------------------------------------------------------------------------------------------


class EnvironmentProxy:
    """One environment instance, in its worker. Subclassed per environment with one function per tool.

    Only `reset` (and, when exposed, `get_reward`) is public besides the tools: TRL takes every other
    public function of the class for a tool."""

    _rl_factory: EnvironmentFactory

    def __init__(self) -> None:
        self._rl_box: list[WorkerProcess | None] = [None]
        """The current worker, in a box the finalizer shares, so a replaced worker is closed too."""
        self._rl_loading = False
        self._rl_calls: list[ToolCall] = []
        self._rl_task: str | None = None
        self._rl_reset_error: str | None = None
        self._rl_lost: str | None = None
        self._rl_resets = 0
        self._rl_start()

    def _rl_start(self) -> None:
        factory = self._rl_factory
        spec = factory.spec
        worker = WorkerProcess(
            spec.class_name, str(Path(spec.filename).parent), str(Path(spec.filename).parent)
        )
        worker.send(
            "load",
            {"filename": spec.filename, "class_name": spec.class_name, "timeout_s": factory.load_timeout},
        )
        self._rl_box[0] = worker
        self._rl_loading = True

    @property
    def _rl_worker(self) -> WorkerProcess | None:
        return self._rl_box[0]

    def _rl_request(self, op: str, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send a request to the worker (a fresh one if the last died). Raises WorkerLost."""
        if self._rl_worker is None or not self._rl_worker.alive():
            if self._rl_worker is not None:
                self._rl_worker.kill()
            self._rl_start()
        worker = self._rl_worker
        assert worker is not None
        if self._rl_loading:
            loaded = worker.receive(self._rl_factory.load_timeout)
            self._rl_loading = False
            if "error" in loaded:
                worker.kill()
                raise WorkerLost(f"the environment failed to load: {loaded['error']}")
        return worker.request(op, payload, timeout_s)

    # ---- the convention's methods --------------------------------------------------------------------

    def reset(self, **row: Any) -> str | None:
        """Reset the environment for the dataset row; returns the task text (or None)."""
        self._rl_calls = []
        self._rl_reset_error = None
        self._rl_task = None
        self._rl_lost = None
        self._rl_resets += 1
        try:
            reply = self._rl_request("reset", {"row": row}, self._rl_factory.reset_timeout)
        except WorkerLost as exc:
            self._rl_reset_error = f"reset {exc}; the environment process was replaced"
        else:
            if reply.get("ok"):
                self._rl_task = reply.get("result")
                return self._rl_task
            self._rl_reset_error = f"reset raised {reply.get('error')}"
        # The model sees the failure in its prompt, as it would see a tool's error.
        return f"\n[environment error: {self._rl_reset_error}]"

    def _rl_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tool = self._rl_factory.tools[name]
        if args:  # TRL calls tools with keywords only; positional calls come from Python callers
            try:
                kwargs = tool.signature.bind(*args, **kwargs).arguments
            except TypeError as exc:
                return self._rl_fail(ToolCall(name, repr(args), valid=False, error=f"wrong arguments: {exc}"))
        record = ToolCall(name, arguments_json(kwargs))
        problem = check_arguments(tool, kwargs)
        if problem:
            record.valid, record.error = False, problem
            return self._rl_fail(record)
        if self._rl_lost:
            record.error = self._rl_lost
            return self._rl_fail(record)
        timeout = self._rl_factory.tool_timeout
        try:
            reply = self._rl_request("call", {"name": name, "arguments": kwargs}, timeout)
        except WorkerLost as exc:
            self._rl_lost = (
                f"the environment was restarted after a call {exc}; this episode's state is lost, "
                "so later calls fail until the next task"
            )
            record.error, record.seconds = f"{name} {exc}; the environment process was replaced", timeout
            return self._rl_fail(record)
        record.seconds = float(reply.get("seconds", 0.0))
        if not reply.get("ok"):
            record.error = str(reply.get("error"))
            return self._rl_fail(record)
        record.result = reply.get("result")
        self._rl_calls.append(record)
        return record.result

    def _rl_fail(self, record: ToolCall) -> Any:
        self._rl_calls.append(record)
        raise ToolError(record.error)

    def _rl_reward(self) -> tuple[float | None, str | None]:
        """(the environment's get_reward(), None) or (None, why not)."""
        if not self._rl_factory.has_reward:
            return None, None
        if self._rl_lost:
            return None, self._rl_lost
        try:
            reply = self._rl_request("reward", {}, self._rl_factory.tool_timeout)
        except WorkerLost as exc:
            self._rl_lost = f"get_reward {exc}; the environment process was replaced"
            return None, self._rl_lost
        if reply.get("ok"):
            return float(reply["result"]), None
        return None, str(reply.get("error"))

    def _rl_snapshot(self) -> EnvironmentSnapshot:
        """The end state as plain data plus the reward, for reward functions in other processes."""
        reward, error = self._rl_reward()
        state: dict[str, Any] = {}
        omitted: list[str] = []
        if not self._rl_lost:
            try:
                reply = self._rl_request("snapshot", {}, self._rl_factory.tool_timeout)
                if reply.get("ok"):
                    state, omitted = reply["result"]["state"], reply["result"]["omitted"]
            except WorkerLost:
                pass
        return EnvironmentSnapshot(self._rl_factory.class_name, state, reward, error, omitted)

    def _rl_close(self) -> None:
        _close_worker(self._rl_box)


def _reward_method(self: EnvironmentProxy) -> float | None:
    """The environment's reward for the episode; None when get_reward failed (TRL ignores None)."""
    return self._rl_reward()[0]


def _make_tool(name: str, info: ToolInfo, class_name: str) -> Callable[..., Any]:
    def tool(self: EnvironmentProxy, *args: Any, **kwargs: Any) -> Any:
        return self._rl_call(name, args, kwargs)

    tool.__name__ = name
    tool.__qualname__ = f"{class_name}.{name}"
    tool.__doc__ = info.doc
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    tool.__signature__ = info.signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *info.signature.parameters.values()]
    )
    annotations = info.hints()
    if info.signature.return_annotation is not inspect.Signature.empty:
        annotations["return"] = info.signature.return_annotation
    tool.__annotations__ = annotations
    return tool


# ---- the factory --------------------------------------------------------------------------------------


class EnvironmentFactory:
    """What GRPOTrainer(environment_factory=...) calls: each call returns a new proxy with its own worker.

    `tools` describes the tools (in TRL's order), `problems` lists what would stop TRL from building a
    tool's schema (a missing type hint, say); `close()` ends every worker this factory started."""

    def __init__(
        self,
        spec: EnvironmentSpec,
        tool_timeout: float = 5.0,
        expose_reward: bool = True,
        load_timeout: float = LOAD_TIMEOUT_S,
    ) -> None:
        self.spec = spec
        self.tool_timeout = tool_timeout
        self.reset_timeout = max(tool_timeout, 30.0)
        self.load_timeout = load_timeout
        probe = WorkerProcess(
            spec.class_name, str(Path(spec.filename).parent), str(Path(spec.filename).parent)
        )
        try:
            described = probe.request(
                "load", {"filename": spec.filename, "class_name": spec.class_name}, load_timeout
            )
        except WorkerLost as exc:
            raise EnvironmentLoadError(f"environment {spec.display}: loading it {exc}") from None
        finally:
            probe.close()
        if "error" in described:
            raise EnvironmentLoadError(f"environment {spec.display}: {described['error']}")
        self.class_name: str = described["class_name"]
        self.doc: str = described["doc"]
        self.has_reward: bool = described["has_reward"]
        self.tools: dict[str, ToolInfo] = {}
        for entry in described["tools"]:
            try:
                signature = pickle.loads(entry["signature"])
            except Exception as exc:
                signature = inspect.Signature()
                entry["problems"].append(f"its signature cannot be read by the engine ({exc})")
            self.tools[entry["name"]] = ToolInfo(entry["name"], signature, entry["doc"], entry["problems"])
        namespace: dict[str, Any] = {
            name: _make_tool(name, info, self.class_name) for name, info in self.tools.items()
        }
        namespace["_rl_factory"] = self
        namespace["__doc__"] = self.doc
        namespace["__module__"] = __name__
        if expose_reward and self.has_reward:
            namespace["get_reward"] = _reward_method
        self.proxy_class: type[EnvironmentProxy] = type(self.class_name, (EnvironmentProxy,), namespace)
        self.instances: weakref.WeakSet[EnvironmentProxy] = weakref.WeakSet()

    def __call__(self) -> EnvironmentProxy:
        instance = self.proxy_class()
        self.instances.add(instance)
        weakref.finalize(instance, _close_worker, instance._rl_box)
        return instance

    @property
    def problems(self) -> dict[str, list[str]]:
        return {name: info.problems for name, info in self.tools.items() if info.problems}

    def close(self) -> None:
        for instance in list(self.instances):
            instance._rl_close()

    def __enter__(self) -> EnvironmentFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_worker(box: list[WorkerProcess | None]) -> None:
    worker, box[0] = box[0], None
    if worker is not None:
        worker.close()


def load_environment(
    path: str, base_dir: str | Path = "", tool_timeout: float = 5.0, expose_reward: bool = True
) -> EnvironmentFactory:
    """Load an environment class (`FILE.py:Class` or `builtin:NAME`) into a factory of contained proxies.

    Raises EnvironmentLoadError naming the problem: a missing file or class, a syntax error, an import or
    constructor that raises, no reset method."""
    if not (tool_timeout > 0 and math.isfinite(tool_timeout)):
        raise EnvironmentLoadError(f"tool_timeout must be a positive number of seconds, not {tool_timeout}")
    return EnvironmentFactory(resolve_spec(path, base_dir), tool_timeout, expose_reward)
