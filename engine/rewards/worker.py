"""A reward worker: a fresh interpreter that imports the user's reward code once and scores batches.

Started by engine.rewards.workers as `python -c ... --trace FILE --memory-mb N`, in a session (process
group) of its own, so the engine can kill it together with any process the user's code started.
It imports only the standard library and engine.rewards' light modules: never torch, never the engine.

Protocol (engine.rewards.worker_protocol): length-prefixed pickles of typed messages on stdin (requests)
and on the original stdout (replies). The user's prints go to stderr, so they can never corrupt the
protocol; the protocol's pipes are moved off fds 0 and 1, so programs the user's code runs do not
inherit them.

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
import sys
import threading
import time
import traceback
import types
from typing import IO, Any, NoReturn

from engine.rewards.conventions import CallGuard, ConventionError, analyse, call, describe_exception
from engine.rewards.worker_protocol import (
    Call,
    Exit,
    Fatal,
    FunctionSpec,
    Hello,
    Load,
    Loaded,
    Reply,
    Request,
    Result,
    read_request,
    write_message,
)

ROW_MARK_BYTES = 16
LOAD_TIMEOUT_S = 120.0


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


def limit_memory(memory_mb: int | None) -> str | None:
    """Cap the worker's memory where the OS enforces it (Linux); returns the limit set, or None.

    RLIMIT_DATA (Linux >= 4.7 counts every private writable mapping, so malloc and mmap both hit it)
    rather than RLIMIT_AS: address space that libraries only reserve (thread stacks, allocator arenas)
    does not count against it. macOS accepts both limits but enforces neither."""
    if not memory_mb or not sys.platform.startswith("linux"):
        return None
    try:
        import resource
    except ImportError:
        return None
    limit = int(memory_mb) * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (ValueError, OSError):
        return None
    return f"RLIMIT_DATA {limit // (1024 * 1024)} MB"


class Worker:
    def __init__(self, guard: WorkerGuard) -> None:
        self.guard = guard
        self.modules: dict[str, types.ModuleType] = {}
        self.functions: dict[str, tuple[Any, dict[str, Any]]] = {}
        self.load_errors: dict[str, str] = {}

    def handle(self, request: Request) -> Reply:
        if isinstance(request, Load):
            return self.load(request)
        if isinstance(request, Call):
            return self.call(request)
        return Fatal(None, f"unknown request {type(request).__name__}")

    # ---- loading -------------------------------------------------------------------------------------

    def load(self, request: Load) -> Loaded:
        rubric_dir = request.rubric_dir
        if rubric_dir and rubric_dir not in sys.path:
            sys.path.insert(0, rubric_dir)
        before = set(sys.modules)
        infos: dict[str, dict[str, Any]] = {}
        self.guard.timeout_s = request.load_timeout_s
        for fid, spec in request.functions.items():
            try:
                fn = self._resolve(spec)
                info = analyse(fn, spec.style, spec.code)
            except ConventionError as exc:
                self.load_errors[fid] = f"{spec.function} in {spec.display}: {exc}"
                continue
            except _LoadError as exc:
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
        return Loaded(infos, dict(self.load_errors), sorted(files))

    def _resolve(self, spec: FunctionSpec) -> Any:
        module = self.modules.get(spec.filename)
        if module is None:
            module = self._import(spec)
            self.modules[spec.filename] = module
        name = spec.function
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
                    f"{spec.display} has no function '{name}'"
                    + (f" (it defines: {', '.join(defined)})" if defined else "")
                )
            fn = getattr(fn, part)
        return fn

    def _import(self, spec: FunctionSpec) -> types.ModuleType:
        filename, code, display = spec.filename, spec.code, spec.display
        stem = os.path.splitext(os.path.basename(filename))[0] if spec.is_file else ""
        module_name = (
            stem if stem.isidentifier() and stem not in sys.modules else f"rl_studio_user_{len(self.modules)}"
        )
        module = types.ModuleType(module_name)
        module.__file__ = filename
        if not spec.is_file:
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

    def call(self, request: Call) -> Result:
        rows = request.rows
        if request.fid not in self.functions:
            message = self.load_errors.get(request.fid, f"function {request.fid} was not loaded")
            return Result(request.id, [None] * len(rows), [message] * len(rows))
        fn, info = self.functions[request.fid]
        batch = pickle.loads(request.batch)
        self.guard.timeout_s = request.timeout_s
        started = time.perf_counter()
        values, errors, metrics, columns = call(fn, info, batch, rows, self.guard)
        return Result(request.id, values, errors, metrics, columns, time.perf_counter() - started)


class _LoadError(Exception):
    pass


def _internal_error(request_id: int | None) -> Fatal:
    """A bug of ours, not the user's: the traceback goes to the engine's log, one line to the engine."""
    traceback.print_exc(file=sys.stderr)
    exc = sys.exc_info()[1]
    return Fatal(request_id, f"{type(exc).__name__}: {exc} (the traceback is in the engine's log)")


def _end_session() -> NoReturn:
    """Take down every process the user's code started in this worker's session, and the worker."""
    if hasattr(os, "killpg") and os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(0)


def _watch_engine(engine_pid: int) -> NoReturn:
    """A thread: when the engine dies mid-call (kill -9, the studio cancelling `rubric test`), nobody is
    left to kill this session, so it ends itself rather than finish a call no one will read."""
    while os.getppid() == engine_pid:
        time.sleep(0.25)
    _end_session()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.rewards.worker")
    parser.add_argument("--trace", required=True)
    parser.add_argument("--memory-mb", type=int, default=0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    my_pid = os.getpid()

    # The engine decides when a worker ends (EOF on stdin, or a kill): a Ctrl-C meant for the engine's
    # terminal must not take its workers down mid-run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol moves to descriptors that programs started by the user's code do not inherit (os.dup
    # makes non-inheritable ones); fd 0 becomes /dev/null and fd 1 the log, so prints go to stderr.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(sys.stderr.fileno(), 1)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull)  # noqa: SIM115 (a process-lifetime handle)

    trace = open(args.trace, "r+b")  # noqa: SIM115 (faulthandler writes to it until the process ends)
    trace.write(b" " * (ROW_MARK_BYTES - 1) + b"\n")
    trace.flush()
    faulthandler.enable(file=trace)  # a crash (segfault) leaves its stack here too
    guard = WorkerGuard(trace, args.memory_mb or None)
    worker = Worker(guard)
    threading.Thread(target=_watch_engine, args=(os.getppid(),), name="engine-watch", daemon=True).start()
    write_message(replies, Hello(my_pid, limit_memory(args.memory_mb)))
    while True:
        try:
            request = read_request(requests)
        except EOFError:  # the engine has gone: so do we, and whatever the user's code left running
            _end_session()
        if isinstance(request, Exit):
            return 0
        request_id = request.id if isinstance(request, Call) else None
        try:
            reply = worker.handle(request)
        except BaseException:
            reply = _internal_error(request_id)
        if os.getpid() != my_pid:
            os._exit(0)  # a process the user's code forked returned into this loop: it must not answer
        try:
            write_message(replies, reply)
        except (pickle.PicklingError, TypeError, ValueError, AttributeError, RecursionError):
            write_message(replies, _internal_error(request_id))


if __name__ == "__main__":
    sys.exit(main())
