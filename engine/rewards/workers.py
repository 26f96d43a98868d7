"""The engine's side of reward workers: long-lived processes that run user reward code, one per criterion.

A worker is a fresh interpreter (spawn semantics: nothing of the engine is inherited, no CUDA context, no
torch). We start it with subprocess rather than multiprocessing's spawn context because multiprocessing
re-imports the parent's __main__ module in the child, and the engine's __main__ imports torch: seconds and
hundreds of MB per worker, for nothing.

It imports the user's module once, then answers one request per batch. When it dies (a timeout, an
exit, a crash, the OOM killer) the rows it was scoring get a message saying which of those happened, and
the next request starts a fresh one.
"""

from __future__ import annotations

import contextlib
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
from typing import IO, Any

from engine.rewards.worker import ROW_MARK_BYTES, read_message, write_message

ENGINE_ROOT = str(Path(__file__).resolve().parents[2])
PACKAGE_DIR = str(Path(__file__).resolve().parent)
GRACE_S = 5.0
"""How long past its own deadline a worker may take before the engine kills it from outside."""
LOAD_TIMEOUT_S = 120.0


class WorkerStartError(RuntimeError):
    pass


class WorkerFailure(Exception):
    """The worker died or stopped answering during a request. `row` is the row it was on, or -1."""

    def __init__(self, message: str, row: int = -1) -> None:
        super().__init__(message)
        self.row = row


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ENGINE_ROOT, env.get("PYTHONPATH", "")) if p)
    # Reward code shares the machine with training: no thread pool per core in every worker.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(name, "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


class RewardWorker:
    """One worker process holding the functions of one criterion (a python criterion, or the python
    graders inside one openai_grader criterion)."""

    def __init__(
        self, label: str, functions: dict[str, dict[str, Any]], rubric_dir: str, memory_mb: int | None
    ) -> None:
        self.label = label
        self.functions = functions
        self.rubric_dir = rubric_dir
        self.memory_mb = memory_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self.replies: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.trace_path = ""
        self.infos: dict[str, dict[str, Any]] = {}
        self.files: list[str] = []
        self.memory_limit_enforced = False
        self.starts = 0
        self._next_id = 0
        self._loading = False
        self._lock = threading.Lock()

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
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_worker_env(),
            cwd=self.rubric_dir or None,
        )
        self.replies = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(
            target=self._read,
            args=(self.proc.stdout, self.replies),
            name=f"reward-worker-{self.label}",
            daemon=True,
        ).start()
        self.starts += 1
        self._send(
            "load",
            {"functions": self.functions, "rubric_dir": self.rubric_dir, "load_timeout_s": LOAD_TIMEOUT_S},
        )
        self._loading = True

    @staticmethod
    def _read(stream: IO[bytes], replies: queue.Queue[tuple[str, Any]]) -> None:
        while True:
            try:
                replies.put(read_message(stream))
            except (EOFError, OSError, pickle.UnpicklingError, ValueError):
                replies.put(("eof", None))
                return

    def wait_loaded(self, timeout_s: float = LOAD_TIMEOUT_S + GRACE_S) -> dict[str, dict[str, Any]]:
        """Wait for the load reply: {function id: analysis, or {"error": message}}."""
        if self.proc is None:
            self.start()
        if self._loading:
            deadline = time.monotonic() + timeout_s
            while True:
                kind, payload = self._next(deadline)
                if kind == "hello":
                    self.memory_limit_enforced = bool(payload["memory_limit"])
                elif kind == "loaded":
                    self.infos = payload["functions"]
                    self.files = payload["files"]
                    self._loading = False
                    break
                elif kind == "fatal":
                    raise WorkerStartError(f"the reward worker failed while loading: {payload['message']}")
        return self.infos

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self.trace_path:
            with contextlib.suppress(OSError):
                os.unlink(self.trace_path)
            self.trace_path = ""

    def close(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                self._send("exit", {})
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    # ---- requests ------------------------------------------------------------------------------------

    def submit(self, fid: str, batch_blob: bytes, rows: list[int], timeout_s: float) -> int:
        """Send a scoring request (starting a fresh worker if the last one died). Returns its id."""
        with self._lock:
            if not self.alive():
                self.kill()
                self.start()
            self._next_id += 1
            request_id = self._next_id
            self._send(
                "call",
                {"id": request_id, "fid": fid, "batch": batch_blob, "rows": rows, "timeout_s": timeout_s},
            )
            return request_id

    def result(self, request_id: int, deadline_s: float) -> dict[str, Any]:
        """Wait for a request's reply. Raises WorkerFailure if the worker dies or overruns."""
        deadline = time.monotonic() + deadline_s + GRACE_S + (LOAD_TIMEOUT_S if self._loading else 0.0)
        while True:
            kind, payload = self._next(deadline)
            if kind == "hello":
                self.memory_limit_enforced = bool(payload["memory_limit"])
            elif kind == "loaded":
                self.infos = payload["functions"]
                self._loading = False
            elif kind == "result" and payload["id"] == request_id:
                return dict(payload)
            elif kind == "fatal":
                self.kill()
                raise WorkerFailure(f"the reward worker failed: {payload['message']}")

    def _next(self, deadline: float) -> tuple[str, Any]:
        try:
            kind, payload = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            row, where = self._trace()
            self.kill()
            raise WorkerFailure(f"stopped answering and was killed{where}", row) from None
        if kind == "eof":
            raise self._death()
        return kind, payload

    def _send(self, op: str, request: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        # A dead worker cannot take the request: the reader thread sees it end and reports why.
        with contextlib.suppress(OSError):
            write_message(self.proc.stdin, (op, request))

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
        try:
            code = self.proc.wait(timeout=5)
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
                    f" (out of memory? memory_mb = {self.memory_mb})"
                    if self.memory_mb
                    else " (out of memory?)"
                )
            elif name in ("SIGSEGV", "SIGBUS", "SIGABRT"):
                hint = " (a crash in native code)"
            return WorkerFailure(f"the worker process was killed by {name}{hint}{where}", row)
        return WorkerFailure(f"the worker process exited with code {code}{where} (os._exit or a crash)", row)


def _innermost_user_frame(dump: str, rubric_dir: str) -> str:
    """' at rewards.py:12, in correct' from a faulthandler dump (most recent call first): the innermost
    frame in the user's folder, else the innermost one outside this package."""
    frames = []
    for line in dump.splitlines():
        line = line.strip()
        if line.startswith('File "') and '", line ' in line:
            path, rest = line[6:].split('", line ', 1)
            lineno, _, func = rest.partition(" in ")
            frames.append((path, lineno.strip(), func.strip()))
        elif frames and not line:
            break  # only the first thread's stack: the one that was running the call
    mine = [f for f in frames if rubric_dir and f[0].startswith(rubric_dir + os.sep)]
    others = [f for f in frames if not f[0].startswith(PACKAGE_DIR)]
    for path, lineno, func in mine or others:
        return f" at {os.path.basename(path)}:{lineno}, in {func}"
    return ""


class PendingCall:
    """One criterion's request in flight: `finish()` waits for it, retrying around rows that killed the
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

    def finish(self) -> tuple[list[float | None], list[str | None], dict[str, float], dict[str, list[Any]]]:
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
            for r, value, error in zip(self.rows, reply["values"], reply["errors"], strict=True):
                self.values[r], self.errors[r] = value, error
            metrics.update(reply["metrics"])
            columns.update(reply["columns"])
            break
        return self.values, self.errors, metrics, columns
