"""The engine's side of reward workers: long-lived processes that run user reward code, one per python
criterion and one per python grader.

A worker is a fresh interpreter (spawn semantics: nothing of the engine is inherited, no CUDA context, no
torch). We start it with subprocess rather than multiprocessing's spawn context because multiprocessing
re-imports the parent's __main__ module in the child, and the engine's __main__ imports torch: seconds and
hundreds of MB per worker, for nothing.

It imports the user's module once, then answers one request per batch. When it dies (a timeout, an
exit, a crash, the OOM killer) the rows it was scoring get a message saying which of those happened, and
the next request starts a fresh one.

Each worker leads a session (process group) of its own. Whenever the engine ends a worker (a timeout, a
reply that never came, `close`), it kills that whole group, so processes the user's code started die with
it. The engine never waits on a pipe's end-of-file to learn that a worker died: a stray child may hold
the pipe open for as long as it lives. It watches the worker process itself, with deadlines.

Every reply is checked again here, in the engine, whatever the worker did to its own interpreter: a
value is a finite float or None, and the shapes are what was asked for.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from engine.rewards.secret_env import worker_environment
from engine.rewards.worker import ROW_MARK_BYTES
from engine.rewards.worker_protocol import (
    Call,
    Exit,
    Fatal,
    FunctionSpec,
    Hello,
    Load,
    Loaded,
    Reply,
    ReplyFramer,
    Request,
    Result,
    write_message,
)

ENGINE_ROOT = str(Path(__file__).resolve().parents[2])
PACKAGE_DIR = str(Path(__file__).resolve().parent)
GRACE_S = 5.0
"""How long past its own deadline a worker may take before the engine kills it from outside."""
LOAD_TIMEOUT_S = 120.0
POLL_S = 0.1
"""How often the engine looks at a worker that has not answered yet, to see whether it is still alive."""
LINGER_S = 1.0
"""How long, after a worker died and its group was killed, the engine waits for what it wrote last."""
EXIT_WAIT_S = 2.0
ERROR_CHARS = 2000
"""The longest error message the engine keeps from a worker."""


class WorkerStartError(RuntimeError):
    pass


class WorkerFailure(Exception):
    """The worker died or stopped answering during a request. `row` is the row it was on, or -1."""

    def __init__(self, message: str, row: int = -1, replaced: bool = True) -> None:
        super().__init__(message)
        self.row = row
        self.replaced = replaced


class _End:
    """What the reader thread puts in the inbox when the worker's pipe ends (or carries garbage)."""

    def __init__(self, problem: str | None = None) -> None:
        self.problem = problem


def _worker_env(allowed: list[str]) -> dict[str, str]:
    env = worker_environment(os.environ, allowed)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ENGINE_ROOT, env.get("PYTHONPATH", "")) if p)
    # Reward code shares the machine with training: no thread pool per core in every worker.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(name, "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _read_replies(fd: int, inbox: queue.Queue[Reply | _End]) -> None:
    """The reader thread: replies from the worker's pipe into the inbox. It owns the descriptor and
    closes it at the end; nothing else ever reads it or waits for it to end."""
    framer = ReplyFramer()
    problem = None
    try:
        while chunk := os.read(fd, 1 << 16):
            for reply in framer.feed(chunk):
                inbox.put(reply)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        inbox.put(_End(problem))


class RewardWorker:
    """One worker process holding the functions of one python criterion or one python grader."""

    def __init__(
        self,
        label: str,
        functions: dict[str, FunctionSpec],
        rubric_dir: str,
        memory_mb: int | None,
        env: list[str] | None = None,
    ) -> None:
        self.label = label
        self.functions = functions
        self.rubric_dir = rubric_dir
        self.memory_mb = memory_mb
        self.env = list(env or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.inbox: queue.Queue[Reply | _End] = queue.Queue()
        self.trace_path = ""
        self.infos: dict[str, dict[str, Any]] = {}
        self.load_errors: dict[str, str] = {}
        self.files: list[str] = []
        self.memory_limit: str | None = None
        self.starts = 0
        self._next_id = 0
        self._loading = False
        self._lock = threading.Lock()

    @property
    def memory_limit_enforced(self) -> bool:
        return self.memory_limit is not None

    # ---- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the process and ask it to load the functions, without waiting for either."""
        fd, self.trace_path = tempfile.mkstemp(prefix="rl-studio-reward-", suffix=".trace")
        os.close(fd)
        # -c rather than -m: the package already imports engine.rewards.worker, and runpy warns about that.
        entry = "import sys; from engine.rewards.worker import main; sys.exit(main())"
        command = [sys.executable, "-c", entry, "--trace", self.trace_path]
        if self.memory_mb:
            command += ["--memory-mb", str(int(self.memory_mb))]
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=write_end,
                env=_worker_env(self.env),
                cwd=self.rubric_dir or None,
                start_new_session=True,  # a process group of its own, killed whole (POSIX)
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self.inbox = queue.Queue()
        threading.Thread(
            target=_read_replies, args=(read_end, self.inbox), name=f"reward-worker-{self.label}", daemon=True
        ).start()
        self.starts += 1
        self._send(Load(self.functions, self.rubric_dir, LOAD_TIMEOUT_S))
        self._loading = True

    def wait_loaded(self, timeout_s: float = LOAD_TIMEOUT_S + GRACE_S) -> dict[str, dict[str, Any]]:
        """Wait for the load reply: {function id: analysis}; `load_errors` holds what failed."""
        if self.proc is None:
            self.start()
        if self._loading:
            try:
                self._await(lambda reply: isinstance(reply, Loaded), time.monotonic() + timeout_s)
            except _FatalReply as fatal:
                raise WorkerStartError(f"the reward worker failed while loading: {fatal}") from None
        return self.infos

    def alive(self) -> bool:
        return self.proc is not None and not self._exited()

    def kill(self) -> None:
        """Kill the worker and every process in its group, at once."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _kill_group(proc)
            proc.wait()
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self.trace_path:
            with contextlib.suppress(OSError):
                os.unlink(self.trace_path)
            self.trace_path = ""

    def close(self) -> None:
        """Ask the worker to exit, give it a moment, then kill its group (stray children included)."""
        proc = self.proc
        if proc is not None and not self._exited():
            self._send(Exit())
            deadline = time.monotonic() + EXIT_WAIT_S
            while not self._exited() and time.monotonic() < deadline:
                time.sleep(0.01)
        self.kill()

    def _exited(self) -> bool:
        """Whether the worker process has ended, without reaping it: its group id stays reserved until
        `kill` has killed the group, so that no other process can have taken it by then."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return True
        if not hasattr(os, "waitid"):
            return proc.poll() is not None
        try:
            return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return proc.poll() is not None

    # ---- requests ------------------------------------------------------------------------------------

    def submit(self, fid: str, batch_blob: bytes, rows: list[int], timeout_s: float) -> int:
        """Send a scoring request (starting a fresh worker if the last one died). Returns its id."""
        with self._lock:
            if not self.alive():
                self.kill()
                self.start()
            self._next_id += 1
            request_id = self._next_id
            self._send(Call(request_id, fid, batch_blob, rows, timeout_s))
            return request_id

    def result(self, request_id: int, deadline_s: float) -> Result:
        """Wait for a request's reply. Raises WorkerFailure if the worker dies, overruns or fails."""
        deadline = time.monotonic() + deadline_s + GRACE_S + (LOAD_TIMEOUT_S if self._loading else 0.0)
        try:
            reply = self._await(
                lambda r: isinstance(r, Result | Fatal) and r.id == request_id,
                deadline,
            )
        except _FatalReply as fatal:  # a fatal reply to another request, or to none: the worker is suspect
            self.kill()
            raise WorkerFailure(f"the reward worker failed: {fatal}") from None
        if isinstance(reply, Fatal):
            # Our code failed on this request; the worker itself answered, so it is kept.
            raise WorkerFailure(f"the reward worker failed: {reply.message}", replaced=False)
        assert isinstance(reply, Result)
        return reply

    def _await(self, wanted: Any, deadline: float) -> Reply:
        """The one reply loop: takes replies until `wanted(reply)`, noting the worker's hello and load
        replies on the way. Raises WorkerFailure when the worker dies or the deadline passes, and
        _FatalReply for a failure of ours it reports outside the request waited for."""
        while True:
            reply = self._receive(deadline)
            if isinstance(reply, Hello):
                self.memory_limit = reply.memory_limit
            elif isinstance(reply, Loaded):
                self.infos, self.load_errors, self.files = reply.functions, reply.errors, reply.files
                self._loading = False
            if wanted(reply):
                return reply
            if isinstance(reply, Fatal):
                raise _FatalReply(reply.message)

    def _receive(self, deadline: float) -> Reply:
        while True:
            try:
                item = self.inbox.get(timeout=max(0.0, min(POLL_S, deadline - time.monotonic())))
            except queue.Empty:
                if self._exited():
                    # Dead, but a process it started may hold its pipe open: kill the group, then take
                    # what it wrote last, if anything, before saying how it died.
                    if self.proc is not None:
                        _kill_group(self.proc)
                    try:
                        item = self.inbox.get(timeout=LINGER_S)
                    except queue.Empty:
                        raise self._death() from None
                elif time.monotonic() >= deadline:
                    row, where = self._trace()
                    self.kill()
                    raise WorkerFailure(f"stopped answering and was killed{where}", row) from None
                else:
                    continue
            if isinstance(item, _End):
                if item.problem is not None:
                    self.kill()
                    raise WorkerFailure(f"the reward worker sent a reply the engine refuses ({item.problem})")
                raise self._death()
            return item

    def _send(self, request: Request) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        # A dead worker cannot take the request: the engine sees it has ended and reports why.
        with contextlib.suppress(OSError):
            write_message(self.proc.stdin, request)

    # ---- post-mortem ---------------------------------------------------------------------------------

    def _trace(self) -> tuple[int, str]:
        """The row the worker was on and the innermost user frame of its last stack dump."""
        try:
            data = Path(self.trace_path).read_bytes()
        except OSError:
            return -1, ""
        try:
            row = int(data[:ROW_MARK_BYTES].strip() or -1)
        except ValueError:
            row = -1
        text = data[ROW_MARK_BYTES:].decode("utf-8", "replace")
        return row, _innermost_user_frame(text, self.rubric_dir)

    def _death(self) -> WorkerFailure:
        assert self.proc is not None
        proc = self.proc
        _kill_group(proc)
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        row, where = self._trace()
        try:
            dump = Path(self.trace_path).read_bytes()[ROW_MARK_BYTES:].decode("utf-8", "replace")
        except OSError:
            dump = ""
        self.kill()
        if dump.lstrip().startswith("Timeout ("):
            return WorkerFailure(f"timed out{where}", row)
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = ""
            if name == "SIGKILL":
                hint = (
                    f" (out of memory? memory_mb = {self.memory_mb}; raise it for this criterion)"
                    if self.memory_mb
                    else " (out of memory?)"
                )
            elif name in ("SIGSEGV", "SIGBUS", "SIGABRT"):
                hint = " (a crash in native code)"
            return WorkerFailure(f"the worker process was killed by {name}{hint}{where}", row)
        return WorkerFailure(f"the worker process exited with code {code}{where} (os._exit or a crash)", row)


class _FatalReply(Exception):
    pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's process group (the worker and what it started); just the worker where
    there are no process groups. Call before reaping the worker, so the group id is still its own."""
    if proc.returncode is not None and hasattr(os, "waitid"):
        return  # reaped, so its group was killed first (see _exited); the id may be another's by now
    # Without waitid (macOS) the worker may have been reaped by poll() already: its group id stays
    # reserved while any of its processes lives, and it is those we are after.
    if hasattr(os, "killpg"):
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
            return
    with contextlib.suppress(OSError):
        proc.kill()


def _innermost_user_frame(dump: str, rubric_dir: str) -> str:
    """' at rewards.py:12, in correct' from a faulthandler dump of every thread (most recent call first):
    in the main thread's stack (the one running the call, with the worker's main() at its bottom), the
    innermost frame in the user's folder, else the innermost one outside this package."""
    stacks: list[list[tuple[str, str, str]]] = [[]]
    for line in dump.splitlines():
        line = line.strip()
        if line.startswith('File "') and '", line ' in line:
            path, rest = line[6:].split('", line ', 1)
            lineno, _, func = rest.partition(" in ")
            stacks[-1].append((path, lineno.strip(), func.strip()))
        elif stacks[-1]:
            stacks.append([])  # a blank line or the next thread's header ends a stack
    worker_main = os.path.join(PACKAGE_DIR, "worker.py")
    frames = next(
        (st for st in stacks if any(p == worker_main and f == "main" for p, _, f in st)),
        stacks[0],
    )
    mine = [f for f in frames if rubric_dir and f[0].startswith(rubric_dir + os.sep)]
    others = [f for f in frames if not f[0].startswith(PACKAGE_DIR)]
    for path, lineno, func in mine or others:
        return f" at {os.path.basename(path)}:{lineno}, in {func}"
    return ""


# (values, errors, logged metrics, logged columns) for every row of a batch
Outcome = tuple[list[float | None], list[str | None], dict[str, float], dict[str, list[Any]]]


class PendingCall:
    """One function's request in flight: `finish()` waits for it, retrying around rows that killed the
    worker, and returns (values, errors, metrics, columns) for every row of the batch."""

    def __init__(
        self, worker: RewardWorker, fid: str, batch_blob: bytes, n: int, per_sample: bool, timeout_s: float
    ) -> None:
        self.worker = worker
        self.fid = fid
        self.blob = batch_blob
        self.n = n
        self.per_sample = per_sample
        self.timeout_s = timeout_s
        self.values: list[float | None] = [None] * n
        self.errors: list[str | None] = [None] * n
        self.rows = list(range(n))
        self.request_id = worker.submit(fid, batch_blob, self.rows, timeout_s)

    def finish(self) -> Outcome:
        metrics: dict[str, float] = {}
        columns: dict[str, list[Any]] = {}
        while self.rows:
            calls = len(self.rows) if self.per_sample else 1
            try:
                reply = self.worker.result(self.request_id, self.timeout_s * calls)
            except WorkerFailure as failure:
                message = str(failure)
                if message.startswith("timed out"):
                    message = f"timed out after {self.timeout_s:g} s (timeout_s){message[len('timed out') :]}"
                if failure.replaced:
                    message += "; the worker was replaced"
                if self.per_sample and failure.row in self.rows:
                    # Only that row is to blame: the others are scored again by a fresh worker.
                    self.errors[failure.row] = f"{message} (row {failure.row})"
                    self.rows = [r for r in self.rows if r != failure.row]
                    if self.rows:
                        self.request_id = self.worker.submit(self.fid, self.blob, self.rows, self.timeout_s)
                    continue
                for r in self.rows:
                    self.errors[r] = message
                break
            problem = _check_reply(reply, self.rows, self.n)
            if problem is not None:
                self.worker.kill()
                for r in self.rows:
                    self.errors[r] = f"the reward worker {problem}; the worker was replaced"
                break
            for r, value, error in zip(self.rows, reply.values, reply.errors, strict=True):
                if type(value) is float and -math.inf < value < math.inf and error is None:
                    self.values[r], self.errors[r] = value, None  # the common case, checked inline
                else:
                    self.values[r], self.errors[r] = checked_value(value, error, r)
            metrics.update((k, v) for k, v in reply.metrics.items() if type(v) is float and math.isfinite(v))
            columns.update(reply.columns)
            break
        return self.values, self.errors, metrics, columns


def _check_reply(reply: Result, rows: list[int], n: int) -> str | None:
    """What is wrong with a reply's shape, or None: one value and one error per row asked for."""
    if not isinstance(reply.values, list) or len(reply.values) != len(rows):
        return f"sent {_count(reply.values)} values for {len(rows)} rows"
    if not isinstance(reply.errors, list) or len(reply.errors) != len(rows):
        return f"sent {_count(reply.errors)} errors for {len(rows)} rows"
    if not isinstance(reply.metrics, dict) or not all(isinstance(k, str) for k in reply.metrics):
        return "sent logged metrics that are not {name: number}"
    if not isinstance(reply.columns, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and len(v) == n for k, v in reply.columns.items()
    ):
        return f"sent logged columns that are not {{name: one value per row}} ({n} rows)"
    return None


def _count(values: Any) -> str:
    return str(len(values)) if isinstance(values, list) else f"a {type(values).__name__}, not a list of"


def checked_value(value: Any, error: Any, row: int) -> tuple[float | None, str | None]:
    """A value from a worker, checked again in the engine: a finite float or None. The worker checks
    too, but user code runs in that interpreter and may have changed what its checks do (math.isinf)."""
    if error is not None and not isinstance(error, str):
        error = repr(error)
    if isinstance(error, str) and len(error) > ERROR_CHARS:
        error = error[: ERROR_CHARS - 3] + "..."
    if value is None:
        return None, error
    if type(value) is not float:
        return None, (
            f"the reward worker sent a {type(value).__name__} for row {row}; a reward must be a finite float "
            "or None (has the reward code changed the worker's own checks?)"
        )
    if math.isnan(value):
        return None, error
    if math.isinf(value):
        return None, (
            f"returned {value} for row {row}; a reward must be a finite float or None (the engine refused it "
            "after the worker let it through: has the reward code changed math.isinf or float?)"
        )
    return value, error
