"""Engine processes: QProcess lifecycle, JSON-line events in, commands out.

Each run or resume is one child process (``python -m engine.cli run|resume ...``). Its stdout carries
protocol events (engine/contract/protocol.py), parsed here into Qt signals. Its stderr goes to a log
file beside the workspace, not to a pipe: the log pane tails that file, a studio that reopens the
workspace later finds it again, and an engine left training in the background never writes into a
closed pipe. The engine is started in its own session so that closing the studio's terminal does not
hang it up.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QIODevice, QObject, QProcess, QProcessEnvironment, Signal

import engine.contract
from engine.contract.protocol import Event, ProtocolError, command_line, parse_event

REPO_ROOT = Path(engine.contract.__file__).resolve().parents[2]
_counter = itertools.count(1)


def default_engine_command() -> list[str]:
    """How to start the engine.

    RL_STUDIO_ENGINE (a command line) overrides everything. From a Python install: ``python -m
    engine.cli`` with the studio's own interpreter. From a standalone bundle (packaging/), which holds
    the GUI but not the training libraries: the ``rl-studio-engine`` found on PATH.
    """
    override = os.environ.get("RL_STUDIO_ENGINE")
    if override:
        import shlex

        return shlex.split(override)
    if getattr(sys, "frozen", False):
        import shutil

        found = shutil.which("rl-studio-engine")
        return [found] if found else ["rl-studio-engine"]
    return [sys.executable, "-m", "engine.cli"]


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
        argv: list[str],
        workspace: str,
        log_path: Path,
        kind: str,
        run_id: int | None = None,
        name: str = "",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.argv = argv
        self.workspace = workspace
        self.log_path = log_path
        self.kind = kind
        self.run_id = run_id
        self.name = name
        self.started_at = time.time()
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.crashed = False
        self.error: Event | None = None
        self.finished_event: Event | None = None
        self.last_progress: Event | None = None
        self.status: str = "starting"
        self._buffer = QByteArray()
        self.process = QProcess(self)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)

    # ---- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        env = QProcessEnvironment.systemEnvironment()
        if not getattr(sys, "frozen", False):  # a source checkout: let `-m engine.cli` find the engine
            path = env.value("PYTHONPATH", "")
            env.insert("PYTHONPATH", str(REPO_ROOT) + (os.pathsep + path if path else ""))
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PYTHONIOENCODING", "utf-8")
        self.process.setProcessEnvironment(env)
        self.process.setWorkingDirectory(str(REPO_ROOT))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process.setStandardErrorFile(str(self.log_path), QIODevice.OpenModeFlag.Append)
        if sys.platform != "win32":
            params = QProcess.UnixProcessParameters()
            params.flags = QProcess.UnixProcessFlag.CreateNewSession | QProcess.UnixProcessFlag.IgnoreSigPipe
            self.process.setUnixProcessParameters(params)
        self.process.start(self.argv[0], self.argv[1:])
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
        if event.type == "hello":
            self.pid = event.get("pid") or self.pid
        elif event.type == "run_started" and event.run_id is not None:
            self.run_id = event.run_id
            self.name = event.get("name") or self.name
            self.status = "running"
            self._link_run_log(event.run_id)
        elif event.type == "status":
            self.status = str(event.get("status", self.status))
        elif event.type == "progress":
            self.last_progress = event
        elif event.type == "error":
            self.error = event
            if self.run_id is None and event.run_id is not None:
                self.run_id = event.run_id
        elif event.type == "finished":
            self.finished_event = event
            self.status = str(event.get("status", "finished"))
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
        self.command = command or default_engine_command()
        self.processes: list[EngineProcess] = []

    def _spawn(
        self, args: list[str], workspace: str, log_path: Path, kind: str, run_id: int | None, name: str
    ) -> EngineProcess:
        proc = EngineProcess(
            [*self.command, *args], workspace, log_path, kind, run_id=run_id, name=name, parent=self
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
