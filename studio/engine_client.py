"""Engine processes: how the studio starts them, and the QProcess lifecycle of runs.

Every engine process the studio starts (a run or resume, `rubric test` and `rubric redteam`, ...) goes
through ``start_engine``: the command comes from ``engine_command`` (RL_STUDIO_ENGINE, the standalone
bundle, or this interpreter), the environment lets a source checkout find the engine, and the child gets
its own session, so closing the studio's terminal does not hang it up and killing its process group
reaches the reward workers it spawned.

A run's stdout carries protocol events (engine/contract/protocol.py), parsed here into typed events and
relayed as Qt signals. Its stderr goes to a log file beside the workspace, not to a pipe: the log pane
tails that file, a studio that reopens the workspace later finds it again, and an engine left training
in the background never writes into a closed pipe.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QIODevice, QObject, QProcess, QProcessEnvironment, Signal

import engine.contract
from engine.contract.protocol import (
    ErrorReported,
    Finished,
    Hello,
    Progress,
    ProtocolError,
    RunStarted,
    StatusChanged,
    command_line,
    parse_event,
)

REPO_ROOT = Path(engine.contract.__file__).resolve().parents[2]
ENGINE_ENV = "RL_STUDIO_ENGINE"
_counter = itertools.count(1)


def engine_command() -> list[str]:
    """How to start the engine, as a command line its subcommand and arguments follow.

    RL_STUDIO_ENGINE (a command line) overrides everything. From a Python install: ``python -m
    engine.cli`` with the studio's own interpreter. From a standalone bundle (packaging/), which holds
    the GUI but not the training libraries: the ``rl-studio-engine`` found on PATH.
    """
    override = os.environ.get(ENGINE_ENV, "").strip()
    if override:
        return shlex.split(override)
    if getattr(sys, "frozen", False):
        return [shutil.which("rl-studio-engine") or "rl-studio-engine"]
    return [sys.executable, "-m", "engine.cli"]


def start_engine(
    process: QProcess, args: list[str], command: list[str] | None = None, cwd: Path | str | None = None
) -> list[str]:
    """Start ``command`` (default: engine_command()) with ``args`` in ``process`` and return the full
    command line. The caller sets up stdout/stderr handling and connects signals first."""
    argv = [*(command or engine_command()), *args]
    env = QProcessEnvironment.systemEnvironment()
    if not getattr(sys, "frozen", False):  # a source checkout: let `-m engine.cli` find the engine
        path = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", str(REPO_ROOT) + (os.pathsep + path if path else ""))
    env.insert("PYTHONUNBUFFERED", "1")
    env.insert("PYTHONIOENCODING", "utf-8")
    process.setProcessEnvironment(env)
    process.setWorkingDirectory(str(cwd or REPO_ROOT))
    if sys.platform != "win32":
        params = QProcess.UnixProcessParameters()
        params.flags = QProcess.UnixProcessFlag.CreateNewSession | QProcess.UnixProcessFlag.IgnoreSigPipe
        process.setUnixProcessParameters(params)
    process.start(argv[0], argv[1:])
    return argv


def read_tail(path: Path | str, max_bytes: int = 16_000) -> str:
    """The end of a log file, starting at a line boundary."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes and "\n" in text:
        text = text.split("\n", 1)[1]
    return text


class EngineProcess(QObject):
    """One engine child process and what it has said so far."""

    sig_event = Signal(object, object)
    """(this EngineProcess, an Event parsed from the engine's stdout)"""
    sig_exited = Signal(object)
    """This process ended (the EngineProcess itself); see exit_code, crashed, error."""
    sig_stdout_text = Signal(object, str)
    """(this EngineProcess, a stdout line that is not an event: shown in the log pane)"""

    def __init__(
        self,
        command: list[str],
        args: list[str],
        workspace: str,
        log_path: Path,
        kind: str,
        run_id: int | None = None,
        name: str = "",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.command = command
        self.args = args
        self.argv = [*command, *args]
        self.workspace = workspace
        self.log_path = log_path
        self.kind = kind
        self.run_id = run_id
        self.name = name
        self.started_at = time.time()
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.crashed = False
        self.error: ErrorReported | None = None
        self.finished_event: Finished | None = None
        self.last_progress: Progress | None = None
        self.status: str = "starting"
        self._buffer = QByteArray()
        self.process = QProcess(self)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)

    # ---- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process.setStandardErrorFile(str(self.log_path), QIODevice.OpenModeFlag.Append)
        start_engine(self.process, self.args, self.command)
        self.pid = int(self.process.processId()) or None

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def send(self, cmd: str) -> bool:
        """Send a run control (pause, resume, stop, checkpoint). False if the engine is not running."""
        if not self.running:
            return False
        self.process.write((command_line(cmd) + "\n").encode())
        return True

    def terminate(self) -> None:
        """SIGTERM: the engine stops gracefully with a checkpoint (a second one stops at once)."""
        if self.running:
            self.process.terminate()

    def kill(self) -> None:
        if self.running:
            self.process.kill()

    def stderr_tail(self, max_bytes: int = 16_000) -> str:
        return read_tail(self.log_path, max_bytes)

    # ---- stdout ----------------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        self._buffer += self.process.readAllStandardOutput()
        while True:
            i = self._buffer.indexOf(b"\n")
            if i < 0:
                break
            line = bytes(self._buffer.left(i).data()).decode("utf-8", errors="replace").strip()
            self._buffer = self._buffer.mid(i + 1)
            if line:
                self._handle_line(line)

    def _handle_line(self, line: str) -> None:
        try:
            event = parse_event(line)
        except ProtocolError:
            self.sig_stdout_text.emit(self, line)
            return
        match event:
            case Hello():
                self.pid = event.pid or self.pid
            case RunStarted():
                self.run_id = event.run_id
                self.name = event.name or self.name
                self.status = "running"
                self._link_run_log(event.run_id)
            case StatusChanged():
                self.status = event.status
            case Progress():
                self.last_progress = event
            case ErrorReported():
                self.error = event
                if self.run_id is None and event.run_id is not None:
                    self.run_id = event.run_id
            case Finished():
                self.finished_event = event
                self.status = event.status
        self.sig_event.emit(self, event)

    def _link_run_log(self, run_id: int) -> None:
        """Give the launch log its run's name (a hard link: the engine keeps writing to the same file)."""
        run_log = self.log_path.with_name(f"run-{run_id}.log")
        if run_log == self.log_path:
            return
        try:
            if run_log.exists():
                run_log.unlink()
            os.link(self.log_path, run_log)
            self.log_path.unlink()
            self.log_path = run_log
        except OSError:
            pass  # the launch log keeps its name; this studio still knows it

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.exit_code = -1
            self.crashed = True
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(
                    f"The engine could not be started: {' '.join(self.argv)}\n{self.process.errorString()}\n"
                    "Install the engine (pip install rl-studio) so that `rl-studio-engine` is on PATH, or set "
                    "RL_STUDIO_ENGINE to the command that starts it.\n"
                )
            self.status = "failed"
            self.sig_exited.emit(self)

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_stdout()
        if self._buffer.size():
            self._handle_line(bytes(self._buffer.data()).decode("utf-8", errors="replace").strip())
            self._buffer = QByteArray()
        self.exit_code = exit_code
        signalled = exit_status == QProcess.ExitStatus.CrashExit
        # A crash is an end the engine did not announce: no `finished` and no `error` event.
        self.crashed = signalled or (self.finished_event is None and self.error is None)
        if self.crashed:
            self.status = "failed"
        self.sig_exited.emit(self)

    def describe_exit(self) -> str:
        if self.process.exitStatus() == QProcess.ExitStatus.CrashExit:
            return "The engine process was killed or crashed (no exit code)."
        return f"The engine process ended unexpectedly with exit code {self.exit_code}."


class EngineClient(QObject):
    """Starts engine processes and relays what they say. Several can run at once."""

    sig_event = Signal(object, object)
    """(EngineProcess, Event)"""
    sig_started = Signal(object)
    sig_exited = Signal(object)
    sig_stdout_text = Signal(object, str)

    def __init__(self, parent: QObject | None = None, command: list[str] | None = None) -> None:
        super().__init__(parent)
        self.command = command or engine_command()
        self.processes: list[EngineProcess] = []

    def _spawn(
        self, args: list[str], workspace: str, log_path: Path, kind: str, run_id: int | None, name: str
    ) -> EngineProcess:
        proc = EngineProcess(
            self.command, args, workspace, log_path, kind, run_id=run_id, name=name, parent=self
        )
        proc.sig_event.connect(self.sig_event)
        proc.sig_exited.connect(self.sig_exited)
        proc.sig_stdout_text.connect(self.sig_stdout_text)
        self.processes.append(proc)
        proc.start()
        self.sig_started.emit(proc)
        return proc

    def start_run(
        self, config_path: str | Path, workspace: str, logs_dir: Path, name: str = ""
    ) -> EngineProcess:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_path = logs_dir / f"launch-{stamp}-{os.getpid()}-{next(_counter)}.log"
        args = ["run", str(config_path), "--db", workspace]
        if name:
            args += ["--name", name]
        return self._spawn(args, workspace, log_path, "run", None, name)

    def resume_run(self, run_id: int, workspace: str, log_path: Path, name: str = "") -> EngineProcess:
        return self._spawn(
            ["resume", str(run_id), "--db", workspace], workspace, log_path, "resume", run_id, name
        )

    def for_run(self, run_id: int) -> EngineProcess | None:
        """The live process training ``run_id``, if this studio started it."""
        for proc in reversed(self.processes):
            if proc.run_id == run_id and proc.running:
                return proc
        return None

    def running(self, workspace: str | None = None) -> list[EngineProcess]:
        return [p for p in self.processes if p.running and (workspace is None or p.workspace == workspace)]

    def send(self, run_id: int, cmd: str) -> bool:
        proc = self.for_run(run_id)
        return proc.send(cmd) if proc else False
