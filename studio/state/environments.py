"""The environments a workspace knows, and playing the agent in one (no widgets).

The studio never imports environment code: listing an environment's tools and playing it both go through
`rl-studio-engine env play` (engine/contract/env_play.py), started like every engine process
(studio.engine_client.start_engine). ``EnvPlay`` owns that process and turns its JSON lines into signals.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QObject, QProcess, Signal

from engine.contract.env_play import (
    PlayError,
    PlayMessageError,
    PlayObservation,
    PlayReady,
    PlayReward,
    builtin_task_files,
    call_request,
    command_request,
    parse_message,
)
from studio.engine_client import start_engine


@dataclass
class EnvironmentEntry:
    """An environment as the Environments view lists it."""

    spec: str
    """What a config's [environment] path says: builtin:NAME or FILE.py:ClassName."""
    base_dir: str
    """The folder a relative FILE.py is found from (the config's folder)."""
    task_files: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    """The runs that trained with it ("#3 demo-agent")."""

    @property
    def key(self) -> str:
        """One entry per environment class: a relative FILE.py is told apart by the folder it is in."""
        return self.spec if self.spec.startswith("builtin:") else str(Path(self.base_dir) / self.spec)

    @property
    def title(self) -> str:
        used = f"\n    used by {', '.join(self.runs)}" if self.runs else ""
        return f"{self.spec}{used}"


def _resolve(path: str, base: str) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() or not base else Path(base) / p)


def list_environments(conn: sqlite3.Connection | None) -> list[EnvironmentEntry]:
    """The built-in file manager, then every environment a run of the workspace trained with (its task
    files: the run's training and held-out data)."""
    entries: dict[str, EnvironmentEntry] = {}
    builtin = EnvironmentEntry("builtin:file_manager", "", builtin_task_files("builtin:file_manager"))
    entries[builtin.key] = builtin
    rows = (
        conn.execute("SELECT id, name, config, config_path FROM runs ORDER BY id").fetchall() if conn else []
    )
    for run_id, name, config_text, config_path in rows:
        try:
            config = json.loads(config_text or "{}")
        except ValueError:
            continue
        environment = config.get("environment") if isinstance(config, dict) else None
        spec = environment.get("path") if isinstance(environment, dict) else None
        if not isinstance(spec, str) or not spec:
            continue
        base = str(Path(config_path).parent) if config_path else ""
        entry = EnvironmentEntry(spec, base)
        entry = entries.setdefault(entry.key, entry)
        entry.runs.append(f"#{run_id} {name}")
        data = config.get("data") if isinstance(config.get("data"), dict) else {}
        for column in ("train", "eval"):
            value = data.get(column) if isinstance(data, dict) else None
            if isinstance(value, str) and value:
                path = _resolve(value, base)
                if path not in entry.task_files and Path(path).is_file():
                    entry.task_files.append(path)
    return list(entries.values())


def read_tasks(path: str, limit: int = 1000) -> list[dict[str, Any]]:
    """The first `limit` tasks (JSON objects) of a tasks file; lines that are not objects are skipped."""
    tasks: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(tasks) >= limit:
                break
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                tasks.append(row)
    return tasks


def task_title(index: int, row: dict[str, Any]) -> str:
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict))
    words = " ".join(str(prompt or "").split())
    head = f"{index}: {row['task_id']}" if row.get("task_id") is not None else str(index)
    tier = f" [{row['tier']}]" if row.get("tier") is not None else ""
    return f"{head}{tier} — {words[:90]}{'…' if len(words) > 90 else ''}"


class EnvPlay(QObject):
    """One `env play` engine process: start it on a task, send calls, hear observations and the reward."""

    sig_ready = Signal(object)
    """PlayReady: the environment loaded and reset for a task (its tools, the task)."""
    sig_observation = Signal(object)
    sig_reward = Signal(object)
    sig_error = Signal(str)
    """A request the engine could not understand, or the process failed (with what it said on stderr)."""

    def __init__(self, parent: QObject | None = None, command: list[str] | None = None) -> None:
        super().__init__(parent)
        self.command = command
        self.process: QProcess | None = None
        self.ready: PlayReady | None = None
        self._buffer = QByteArray()
        self._stderr = QByteArray()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, entry: EnvironmentEntry, tasks_file: str, task: int) -> None:
        """(Re)start the engine on `entry` with its task `task` of `tasks_file`."""
        self.stop()
        self.ready = None
        self._buffer, self._stderr = QByteArray(), QByteArray()
        process = QProcess(self)
        process.readyReadStandardOutput.connect(self._read)
        process.readyReadStandardError.connect(
            lambda: self._stderr.append(process.readAllStandardError())  # type: ignore[union-attr]
        )
        process.finished.connect(self._finished)
        self.process = process
        args = ["env", "play", entry.spec, "--tasks", tasks_file, "--task", str(task)]
        start_engine(process, args, self.command, cwd=entry.base_dir or None)

    def call(self, tool: str, arguments: dict[str, Any] | str) -> bool:
        return self._send(call_request(tool, arguments))

    def reward(self) -> bool:
        return self._send(command_request("reward"))

    def reset(self, task: int) -> bool:
        return self._send(command_request("reset", task=task))

    def stop(self) -> None:
        """End the process and the environment workers it started (its whole process group)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.finished.disconnect()
        if process.state() != QProcess.ProcessState.NotRunning:
            process.write(b'{"cmd": "quit"}\n')
            process.closeWriteChannel()
            if not process.waitForFinished(3000):
                pid = int(process.processId())
                if pid and sys.platform != "win32":
                    with contextlib.suppress(OSError):  # the engine leads its own session and group
                        os.killpg(pid, signal.SIGKILL)
                process.kill()
                process.waitForFinished(3000)
        process.deleteLater()

    def _send(self, line: str) -> bool:
        if not self.running or self.process is None:
            self.sig_error.emit("The environment is not running: pick a task to start it.")
            return False
        self.process.write((line + "\n").encode())
        return True

    def _read(self) -> None:
        if self.process is None:
            return
        self._buffer += self.process.readAllStandardOutput()
        while (i := self._buffer.indexOf(b"\n")) >= 0:
            line = bytes(self._buffer.left(i).data()).decode("utf-8", errors="replace").strip()
            self._buffer = self._buffer.mid(i + 1)
            if line:
                self._handle(line)

    def _handle(self, line: str) -> None:
        try:
            message = parse_message(line)
        except PlayMessageError as exc:
            self.sig_error.emit(f"The engine said something unexpected: {exc}")
            return
        if isinstance(message, PlayReady):
            self.ready = message
            self.sig_ready.emit(message)
        elif isinstance(message, PlayObservation):
            self.sig_observation.emit(message)
        elif isinstance(message, PlayReward):
            self.sig_reward.emit(message)
        elif isinstance(message, PlayError):
            self.sig_error.emit(message.message)

    def _finished(self, exit_code: int, _status: QProcess.ExitStatus) -> None:
        self._read()
        said = bytes(self._stderr.data()).decode("utf-8", errors="replace").strip()
        lines = [line for line in said.splitlines() if line.strip()]
        detail = next(
            (line for line in reversed(lines) if line.startswith("error:")), lines[-1] if lines else ""
        )
        self.sig_error.emit(
            f"The environment process ended (exit code {exit_code})" + (f": {detail}" if detail else ".")
        )
