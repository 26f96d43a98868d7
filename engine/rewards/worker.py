"""A reward worker: a fresh interpreter that imports the user's reward code once and scores batches.

Started by engine.rewards.workers as `python -m engine.rewards.worker --trace FILE [--memory-mb N]`.
It imports only the standard library and engine.rewards' light modules: never torch, never the engine.

Protocol: length-prefixed pickles on stdin (requests) and on the original stdout (replies). The user's
prints go to stderr, so they can never corrupt the protocol.

Timeouts are enforced from inside with faulthandler.dump_traceback_later(exit=True): its watchdog is a C
thread that needs no GIL, so it fires even while user code spins in C (a catastrophic regex, say). It
writes the stack to the trace file and exits; before each call the worker writes the row it is on at the
start of that same file, so the engine knows which row hung and where.
"""

from __future__ import annotations

import argparse
import faulthandler
import linecache
import os
import pickle
import signal
import struct
import sys
import time
import traceback
import types
from typing import IO, Any

from engine.rewards.conventions import CallGuard, ConventionError, analyse, call, describe_exception

HEADER = struct.Struct("<I")
ROW_MARK_BYTES = 16
LOAD_TIMEOUT_S = 120.0


def read_message(stream: IO[bytes]) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    size = HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def write_message(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


class WorkerGuard(CallGuard):
    def __init__(self, trace: IO[bytes], memory_mb: int | None) -> None:
        self.trace = trace
        self.memory_mb = memory_mb
        self.timeout_s = 30.0
        self._pwrite = getattr(os, "pwrite", None)

    def enter(self, row: int) -> None:
        if self._pwrite is not None:
            self._pwrite(self.trace.fileno(), b"%15d\n" % row, 0)
        faulthandler.dump_traceback_later(self.timeout_s, exit=True, file=self.trace)

    def leave(self) -> None:
        faulthandler.cancel_dump_traceback_later()


def limit_memory(memory_mb: int | None) -> bool:
    """Cap the address space where the OS enforces it (Linux; not macOS or Windows)."""
    if not memory_mb or sys.platform == "darwin":
        return False
    try:
        import resource
    except ImportError:
        return False
    limit = int(memory_mb) * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        return False
    return True


class Worker:
    def __init__(self, guard: WorkerGuard) -> None:
        self.guard = guard
        self.modules: dict[str, types.ModuleType] = {}
        self.functions: dict[str, tuple[Any, dict[str, Any]]] = {}
        self.load_errors: dict[str, str] = {}

    # ---- loading -------------------------------------------------------------------------------------

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        rubric_dir = request["rubric_dir"]
        if rubric_dir and rubric_dir not in sys.path:
            sys.path.insert(0, rubric_dir)
        before = set(sys.modules)
        infos: dict[str, Any] = {}
        self.guard.timeout_s = request.get("load_timeout_s", LOAD_TIMEOUT_S)
        for fid, spec in request["functions"].items():
            try:
                fn = self._resolve(spec)
                info = analyse(fn, spec.get("style"), spec.get("code"))
            except ConventionError as exc:
                infos[fid] = {"error": f"{spec['function']} in {spec['display']}: {exc}"}
                self.load_errors[fid] = infos[fid]["error"]
                continue
            except _LoadError as exc:
                infos[fid] = {"error": str(exc)}
                self.load_errors[fid] = str(exc)
                continue
            self.functions[fid] = (fn, info)
            infos[fid] = info
        files = []
        for name in set(sys.modules) - before:
            path = getattr(sys.modules[name], "__file__", None)
            if not isinstance(path, str) or not rubric_dir:
                continue
            path = os.path.abspath(path)
            if path.startswith(rubric_dir + os.sep) and "site-packages" not in path:
                files.append(path)
        return {"functions": infos, "files": sorted(files)}

    def _resolve(self, spec: dict[str, Any]) -> Any:
        module = self.modules.get(spec["filename"])
        if module is None:
            module = self._import(spec)
            self.modules[spec["filename"]] = module
        name = spec["function"]
        fn: Any = module
        for part in name.split("."):
            if not hasattr(fn, part):
                defined = sorted(
                    k
                    for k, v in vars(module).items()
                    if callable(v)
                    and not k.startswith("_")
                    and getattr(v, "__module__", None) == module.__name__
                )
                raise _LoadError(
                    f"{spec['display']} has no function '{name}'"
                    + (f" (it defines: {', '.join(defined)})" if defined else "")
                )
            fn = getattr(fn, part)
        return fn

    def _import(self, spec: dict[str, Any]) -> types.ModuleType:
        filename, code, display = spec["filename"], spec["code"], spec["display"]
        stem = os.path.splitext(os.path.basename(filename))[0] if spec.get("is_file") else ""
        module_name = (
            stem if stem.isidentifier() and stem not in sys.modules else f"rl_studio_user_{len(self.modules)}"
        )
        module = types.ModuleType(module_name)
        module.__file__ = filename
        if not spec.get("is_file"):
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        sys.modules[module_name] = module
        self.guard.enter(-1)
        try:
            exec(compile(code, filename, "exec"), module.__dict__)
        except SyntaxError as exc:
            del sys.modules[module_name]
            raise _LoadError(f"{display} line {exc.lineno}: {exc.msg}; fix the syntax error") from None
        except BaseException as exc:
            del sys.modules[module_name]
            raise _LoadError(f"importing {display} {describe_exception(exc, self.guard)}") from None
        finally:
            self.guard.leave()
        return module

    # ---- scoring -------------------------------------------------------------------------------------

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        fid = request["fid"]
        batch = pickle.loads(request["batch"])
        rows = request["rows"]
        if fid not in self.functions:
            message = self.load_errors.get(fid, f"function {fid} was not loaded")
            return {
                "values": [None] * len(rows),
                "errors": [message] * len(rows),
                "metrics": {},
                "columns": {},
            }
        fn, info = self.functions[fid]
        self.guard.timeout_s = request["timeout_s"]
        started = time.perf_counter()
        values, errors, metrics, columns = call(fn, info, batch, rows, self.guard)
        return {
            "values": values,
            "errors": errors,
            "metrics": metrics,
            "columns": columns,
            "seconds": time.perf_counter() - started,
        }


class _LoadError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.rewards.worker")
    parser.add_argument("--trace", required=True)
    parser.add_argument("--memory-mb", type=int, default=0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    # The engine decides when a worker ends (EOF on stdin, or a kill): a Ctrl-C meant for the engine's
    # terminal must not take its workers down mid-run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the real stdout; anything the user's code prints goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    sys.stdin = open(os.devnull)  # noqa: SIM115 (a process-lifetime handle)

    trace = open(args.trace, "r+b")  # noqa: SIM115 (faulthandler writes to it until the process ends)
    trace.write(b" " * (ROW_MARK_BYTES - 1) + b"\n")
    trace.flush()
    faulthandler.enable(file=trace)  # a crash (segfault) leaves its stack here too
    guard = WorkerGuard(trace, args.memory_mb or None)
    enforced = limit_memory(args.memory_mb)
    worker = Worker(guard)
    write_message(replies, ("hello", {"pid": os.getpid(), "memory_limit": enforced}))
    while True:
        try:
            op, request = read_message(requests)
        except EOFError:
            return 0
        if op == "exit":
            return 0
        try:
            if op == "load":
                reply: Any = ("loaded", worker.load(request))
            elif op == "call":
                reply = ("result", {"id": request["id"], **worker.call(request)})
            else:
                reply = ("fatal", {"id": request.get("id"), "message": f"unknown request {op!r}"})
        except BaseException:  # a bug of ours, not the user's: report it whole
            reply = ("fatal", {"id": request.get("id"), "message": traceback.format_exc()})
        write_message(replies, reply)


if __name__ == "__main__":
    sys.exit(main())
