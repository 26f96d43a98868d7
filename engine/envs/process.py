"""The engine's side of one environment worker process: start, request with a deadline, kill, replace.

Like reward workers (engine/rewards/workers.py), a worker is a fresh interpreter started with subprocess,
not multiprocessing, so nothing of the engine (torch, CUDA) is inherited or re-imported. It runs in its
own process group, so a kill on timeout also ends whatever the environment started (a shell, a server).
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

from engine.envs.worker import encode_message, read_message

ENGINE_ROOT = str(Path(__file__).resolve().parents[2])
GRACE_S = 2.0
"""How long past its own deadline a worker may take before the engine kills it from outside."""


class WorkerLost(Exception):
    """The worker died, or overran its deadline and was killed. The message says which, and where."""


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ENGINE_ROOT, env.get("PYTHONPATH", "")) if p)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(name, "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


class WorkerProcess:
    def __init__(self, label: str, cwd: str, user_dir: str) -> None:
        self.label = label
        self.cwd = cwd
        self.user_dir = user_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.replies: queue.Queue[Any] = queue.Queue()
        self.trace_path = ""

    def start(self) -> None:
        fd, self.trace_path = tempfile.mkstemp(prefix="rl-studio-env-", suffix=".trace")
        os.close(fd)
        entry = "import sys; from engine.envs.worker import main; sys.exit(main())"
        own_group: dict[str, Any] = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
            if sys.platform == "win32"
            else {"start_new_session": True}
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", entry, "--trace", self.trace_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=self.cwd or None,
            env=_worker_env(),
            **own_group,
        )
        self.replies = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(
            target=self._read, args=(self.proc.stdout, self.replies), name=f"env-{self.label}", daemon=True
        ).start()

    @staticmethod
    def _read(stream: IO[bytes], replies: queue.Queue[Any]) -> None:
        while True:
            try:
                replies.put(("reply", read_message(stream)))
            except (EOFError, OSError, pickle.UnpicklingError, ValueError):
                replies.put(("eof", None))
                return

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, op: str, payload: dict[str, Any]) -> None:
        if self.proc is None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        with contextlib.suppress(OSError):  # a dead worker: the reader sees it end and says why
            self.proc.stdin.write(encode_message((op, payload)))
            self.proc.stdin.flush()

    def receive(self, timeout_s: float) -> dict[str, Any]:
        """The next reply. Raises WorkerLost when the worker dies or is still busy GRACE_S after timeout_s."""
        deadline = time.monotonic() + timeout_s + GRACE_S
        try:
            kind, payload = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            where = self._where()
            self.kill()
            raise WorkerLost(f"timed out after {timeout_s:g} s{where}") from None
        if kind == "eof":
            raise self._death(timeout_s)
        return dict(payload)

    def request(self, op: str, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self.send(op, {**payload, "timeout_s": timeout_s})
        return self.receive(timeout_s)

    # ---- ending --------------------------------------------------------------------------------------

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    if sys.platform == "win32":
                        proc.kill()
                    else:
                        os.killpg(proc.pid, signal.SIGKILL)
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
                self.send("exit", {})
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc is not None and sys.platform != "win32":
            with contextlib.suppress(OSError):  # whatever the environment left running in its group
                os.killpg(proc.pid, signal.SIGKILL)
        self.kill()

    # ---- post-mortem ---------------------------------------------------------------------------------

    def _where(self) -> str:
        try:
            dump = Path(self.trace_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return innermost_user_frame(dump, self.user_dir)

    def _death(self, timeout_s: float) -> WorkerLost:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        try:
            dump = Path(self.trace_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            dump = ""
        where = innermost_user_frame(dump, self.user_dir)
        self.kill()
        if dump.lstrip().startswith("Timeout ("):
            return WorkerLost(f"timed out after {timeout_s:g} s{where}")
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return WorkerLost(f"the environment process was killed by {name}{where}")
        return WorkerLost(
            f"the environment process exited with code {code}{where} (os._exit, sys.exit or a crash)"
        )


def innermost_user_frame(dump: str, user_dir: str) -> str:
    """' at env.py:12, in move_file' from a faulthandler dump (most recent call first): the innermost frame
    in the environment's folder, else the innermost one."""
    frames = []
    for line in dump.splitlines():
        line = line.strip()
        if line.startswith('File "') and '", line ' in line:
            path, rest = line[6:].split('", line ', 1)
            lineno, _, func = rest.partition(" in ")
            frames.append((path, lineno.strip(), func.strip()))
        elif frames and not line:
            break  # only the first thread's stack: the one that was running the call
    mine = [f for f in frames if user_dir and os.path.abspath(f[0]).startswith(user_dir + os.sep)]
    for path, lineno, func in mine or frames:
        return f" at {os.path.basename(path)}:{lineno}, in {func}"
    return ""
