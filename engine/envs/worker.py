"""An environment worker: a fresh interpreter that holds ONE instance of a user's environment class.

Started by engine.envs.proxy as `python -c "...main()" --trace FILE`, in its own process group, with the
environment file's folder as its working directory. It imports only the standard library and the user's
module: never torch, never the rest of the engine. The engine talks to it with length-prefixed pickles on
stdin and on the original stdout; whatever the environment prints goes to stderr.

Requests: load (import the module, build the instance, describe its tools), reset(row), call(name, args),
reward(), snapshot(), exit. Every reply says ok or carries an error message naming the exception and the
innermost frame of the user's code. A call that overruns its timeout is stopped from inside by
faulthandler (its C watchdog fires even while user code spins in C) and, failing that, killed from
outside by the engine, which then starts a fresh worker.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import inspect
import math
import os
import pickle
import signal
import struct
import sys
import time
import traceback
import types
import typing
from typing import IO, Any

HEADER = struct.Struct("<I")
NOT_TOOLS = ("reset", "get_reward")
"""Public functions of an environment class that are not tools, as TRL's GRPOTrainer treats them."""


def read_message(stream: IO[bytes]) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    size = HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def encode_message(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def tool_names(cls: type) -> list[str]:
    """The tools of an environment class, found exactly as TRL finds them: public functions on the class
    (inherited ones included), other than reset and get_reward."""
    return [
        name
        for name, _ in inspect.getmembers(cls, predicate=inspect.isfunction)
        if name not in NOT_TOOLS and not name.startswith("_")
    ]


def describe_exception(exc: BaseException, user_dir: str) -> str:
    """'ValueError: message (at env.py:12, in move_file)': the innermost frame in the user's folder."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if user_dir and os.path.abspath(f.filename).startswith(user_dir + os.sep)]
    for frame in reversed(mine or frames[-1:]):
        where = f" (at {os.path.basename(frame.filename)}:{frame.lineno}, in {frame.name})"
        break
    text = str(exc)
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def plain_data(value: Any, depth: int = 0) -> tuple[bool, Any]:
    """(True, a copy made only of JSON-like builtins) or (False, None) when the value holds anything else.

    A snapshot of an environment's state crosses into reward workers that cannot import the user's
    module, so only plain data may go."""
    if depth > 20:
        return False, None
    if value is None or isinstance(value, bool | int | str):
        return True, value
    if isinstance(value, float):
        return True, value
    if isinstance(value, list | tuple | set | frozenset):
        items = []
        for item in value:
            ok, copied = plain_data(item, depth + 1)
            if not ok:
                return False, None
            items.append(copied)
        return True, items if isinstance(value, list | tuple) else sorted(items, key=repr)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                return False, None
            ok, copied = plain_data(item, depth + 1)
            if not ok:
                return False, None
            out[key] = copied
        return True, out
    return False, None


class EnvWorker:
    def __init__(self, trace: IO[bytes]) -> None:
        self.trace = trace
        self.env: Any = None
        self.user_dir = ""
        self.has_reward = False

    # ---- guarding user code --------------------------------------------------------------------------

    def guarded(self, timeout_s: float, fn: Any, *args: Any, **kwargs: Any) -> tuple[bool, Any, float]:
        """Run user code under the timeout: (ok, result or error message, seconds)."""
        faulthandler.dump_traceback_later(timeout_s, exit=True, file=self.trace)
        started = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
            return True, result, time.perf_counter() - started
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from user code are errors too
            return False, describe_exception(exc, self.user_dir), time.perf_counter() - started
        finally:
            faulthandler.cancel_dump_traceback_later()

    # ---- requests ------------------------------------------------------------------------------------

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        filename, class_name = request["filename"], request["class_name"]
        self.user_dir = os.path.dirname(os.path.abspath(filename))
        if self.user_dir not in sys.path:
            sys.path.insert(0, self.user_dir)
        stem = os.path.splitext(os.path.basename(filename))[0]
        name = stem if stem.isidentifier() and stem not in sys.modules else "rl_studio_environment"
        module = types.ModuleType(name)
        module.__file__ = filename
        sys.modules[name] = module
        try:
            with open(filename, encoding="utf-8") as fh:
                code = fh.read()
        except OSError as exc:
            return {"error": f"cannot read {filename}: {exc.strerror or exc}"}
        try:
            compiled = compile(code, filename, "exec")
        except SyntaxError as exc:
            return {
                "error": f"{os.path.basename(filename)} line {exc.lineno}: {exc.msg}; fix the syntax error"
            }
        ok, error, _ = self.guarded(request["timeout_s"], exec, compiled, module.__dict__)
        if not ok:
            return {"error": f"importing {os.path.basename(filename)} raised {error}"}
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            defined = sorted(
                k for k, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__
            )
            listing = f" (it defines: {', '.join(defined)})" if defined else ""
            return {"error": f"{os.path.basename(filename)} has no class '{class_name}'{listing}"}
        if not callable(getattr(cls, "reset", None)):
            return {
                "error": f"{class_name} has no reset method: an environment defines reset(self, **row), which "
                "gets the dataset row and returns the task text or None"
            }
        ok, instance, _ = self.guarded(request["timeout_s"], cls)
        if not ok:
            return {"error": f"{class_name}() raised {instance}"}
        self.env = instance
        self.has_reward = callable(getattr(cls, "get_reward", None))
        tools = []
        for tool in tool_names(cls):
            tools.append(self._describe(cls, tool, module))
        return {
            "class_name": class_name,
            "doc": inspect.getdoc(cls) or "",
            "tools": tools,
            "has_reward": self.has_reward,
            "pid": os.getpid(),
        }

    @staticmethod
    def _describe(cls: type, name: str, module: types.ModuleType) -> dict[str, Any]:
        fn = getattr(cls, name)
        problems = []
        try:
            hints = typing.get_type_hints(fn, globalns=vars(module))
        except Exception as exc:
            hints, problems = {}, [f"its type hints cannot be resolved ({type(exc).__name__}: {exc})"]
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())[1:]  # without self
        resolved = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in params]
        for p in resolved:
            if p.annotation is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                problems.append(f"parameter '{p.name}' has no type hint")
        returns = hints.get("return", signature.return_annotation)
        described = inspect.Signature(resolved, return_annotation=returns)
        try:
            blob = pickle.dumps(described)
            pickle.loads(blob)
        except Exception as exc:
            problems.append(f"its signature uses types the engine cannot pass on ({exc})")
            blob = pickle.dumps(
                inspect.Signature([p.replace(annotation=inspect.Parameter.empty) for p in params])
            )
        return {
            "name": name,
            "signature": blob,
            "doc": inspect.getdoc(fn) or "",
            "is_async": inspect.iscoroutinefunction(fn),
            "problems": problems,
        }

    def reset(self, request: dict[str, Any]) -> dict[str, Any]:
        ok, value, seconds = self.guarded(request["timeout_s"], self.env.reset, **request["row"])
        if not ok:
            return {"ok": False, "error": value, "seconds": seconds}
        if value is not None and not isinstance(value, str | list):
            value = str(value)
        return {"ok": True, "result": _sendable(value), "seconds": seconds}

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self.env, request["name"])
        ok, value, seconds = self.guarded(request["timeout_s"], method, **request["arguments"])
        if not ok:
            return {"ok": False, "error": value, "seconds": seconds}
        return {"ok": True, "result": _sendable(value), "seconds": seconds}

    def reward(self, request: dict[str, Any]) -> dict[str, Any]:
        if not self.has_reward:
            return {"ok": False, "error": "the environment defines no get_reward method"}
        ok, value, seconds = self.guarded(request["timeout_s"], self.env.get_reward)
        if not ok:
            return {"ok": False, "error": f"get_reward raised {value}", "seconds": seconds}
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            return {
                "ok": False,
                "error": f"get_reward returned {value!r}; it must return a finite number",
                "seconds": seconds,
            }
        return {"ok": True, "result": float(value), "seconds": seconds}

    def snapshot(self, request: dict[str, Any]) -> dict[str, Any]:
        state, omitted = {}, []
        for key, value in vars(self.env).items():
            ok, copied = plain_data(value)
            if ok:
                state[key] = copied
            else:
                omitted.append(key)
        return {"ok": True, "result": {"state": state, "omitted": sorted(omitted)}}


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _sendable(value: Any) -> Any:
    """What TRL would give the model: strings and content-block lists as they are, anything else as str."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        try:
            pickle.dumps(value)
            return value
        except Exception:
            return str(value)
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="engine.envs.worker")
    parser.add_argument("--trace", required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides when a worker ends
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    sys.stdin = open(os.devnull)  # noqa: SIM115 (a process-lifetime handle)
    trace = open(args.trace, "wb")  # noqa: SIM115 (faulthandler writes to it until the process ends)
    faulthandler.enable(file=trace)
    worker = EnvWorker(trace)
    handlers = {
        "load": worker.load,
        "reset": worker.reset,
        "call": worker.call,
        "reward": worker.reward,
        "snapshot": worker.snapshot,
    }
    while True:
        try:
            op, request = read_message(requests)
        except EOFError:
            return 0
        if op == "exit":
            return 0
        try:
            reply: Any = handlers[op](request)
        except BaseException:  # a bug of ours, not the environment's: report it whole
            reply = {"ok": False, "error": f"the environment worker failed: {traceback.format_exc()}"}
        replies.write(encode_message(reply))
        replies.flush()


if __name__ == "__main__":
    sys.exit(main())
