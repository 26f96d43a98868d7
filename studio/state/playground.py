"""The playground's state (no widgets): playground engine processes, requests, and the answers they stream.

Generation runs in `rl-studio-engine playground` processes (engine/playground.py), started once through
`start_engine` and reused. A process serves one base model, so the runs picked are grouped by base model
(their config's model and 4-bit flag) and each group goes to its own process: runs on different bases are
compared in one request, each against its own base. The messages are engine/contract/playground.py's.

An answer column is keyed by (request id, source); the view shows one per key, in the order `columns` lists.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QIODevice, QObject, QProcess, Signal

from engine.contract.config import ConfigError, RunConfig, config_from_dict
from engine.contract.playground import (
    CancelRequest,
    Done,
    Error,
    GenerateRequest,
    Loaded,
    PlaygroundProtocolError,
    Ready,
    RowRef,
    Token,
    parse_message,
    source_run,
)
from studio.engine_client import read_tail, start_engine
from studio.state.studio_state import StudioState

ColumnKey = tuple[str, str]
"""(request id, source)"""
_request_ids = itertools.count(1)


@dataclass
class Column:
    """One answer: who answers, what it has said so far, and how it ended."""

    key: ColumnKey
    title: str
    base_model: str
    text: str = ""
    done: Done | None = None
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.done is not None or bool(self.error)


def run_config(state: StudioState, run_id: int) -> RunConfig | None:
    """The config a run recorded, or None (no workspace, no run, or a config this version cannot read)."""
    if state.db is None:
        return None
    data, base_dir = state.db.run_config(run_id)
    data = {k: v for k, v in data.items() if v is not None}  # optional sections recorded as null
    try:
        return config_from_dict(data, base_dir=base_dir) if data else None
    except ConfigError:
        return None


def base_of(cfg: RunConfig) -> tuple[str, bool]:
    """What one playground process can serve: the base model and whether it is loaded in 4 bits."""
    return cfg.resolved_model(), cfg.model.load_in_4bit


def short_model(model: str) -> str:
    path = Path(model)
    return "/".join(path.parts[-2:]) if path.is_absolute() else model


class PlaygroundEngine(QObject):
    """One `rl-studio-engine playground` process: requests in on stdin, typed messages out on stdout."""

    sig_message = Signal(object, object)
    """(this engine, a playground Message)"""
    sig_exited = Signal(object)
    """(this engine) the process ended; `exit_message` says how"""

    def __init__(
        self, command: list[str], workspace: str, log_path: Path, base: tuple[str, bool], parent: QObject
    ) -> None:
        super().__init__(parent)
        self.command = command
        self.workspace = workspace
        self.log_path = log_path
        self.base = base
        self.ready = False
        self.loaded: Loaded | None = None
        self.pending: set[str] = set()
        """Requests sent whose sources have not all ended."""
        self.stopping = False
        self._buffer = QByteArray()
        self.process = QProcess(self)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process.setStandardErrorFile(str(self.log_path), QIODevice.OpenModeFlag.Append)
        start_engine(self.process, ["playground", "--db", self.workspace], self.command)

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def send(self, request: GenerateRequest | CancelRequest) -> None:
        if isinstance(request, GenerateRequest):
            self.pending.add(request.id)
        self.process.write((request.to_json() + "\n").encode())

    def stop(self) -> None:
        """End the process now (what it was generating is not wanted any more)."""
        self.stopping = True
        if self.running:
            self.process.kill()
            self.process.waitForFinished(3000)

    def exit_message(self) -> str:
        if self.process.error() == QProcess.ProcessError.FailedToStart:
            return (
                f"The playground engine could not be started ({' '.join(self.command)}): "
                f"{self.process.errorString()}. Install the engine so that `rl-studio-engine` is on PATH, "
                "or set RL_STUDIO_ENGINE."
            )
        how = (
            "was killed or crashed"
            if self.process.exitStatus() == QProcess.ExitStatus.CrashExit
            else f"exited with code {self.process.exitCode()}"
        )
        tail = read_tail(self.log_path, 4000).strip()
        last = "\n".join(tail.splitlines()[-12:])
        return (
            f"The playground engine for {short_model(self.base[0])} {how}. Generate again to start a new "
            f"one; its log is {self.log_path}." + (f"\n\n{last}" if last else "")
        )

    def _read(self) -> None:
        self._buffer += self.process.readAllStandardOutput()
        while (i := self._buffer.indexOf(b"\n")) >= 0:
            line = bytes(self._buffer.left(i).data()).decode("utf-8", errors="replace").strip()
            self._buffer = self._buffer.mid(i + 1)
            if not line:
                continue
            try:
                message = parse_message(line)
            except PlaygroundProtocolError as exc:
                with open(
                    self.log_path, "a", encoding="utf-8"
                ) as log:  # not ours to show: keep it in the log
                    log.write(f"[studio] unexpected playground output: {exc}\n")
                continue
            if isinstance(message, Ready):
                self.ready = True
            elif isinstance(message, Loaded):
                self.loaded = message
            self.sig_message.emit(self, message)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.sig_exited.emit(self)

    def _finished(self, *_: object) -> None:
        self._read()
        self.sig_exited.emit(self)


@dataclass
class Request:
    """What the user asked, once: the view's settings at Generate."""

    runs: list[int]
    prompt: str | None = None
    row: RowRef | None = None
    include_base: bool = True
    max_new_tokens: int = 64
    temperature: float = 1.0
    seed: int = 0
    ids: list[str] = field(default_factory=list)


class PlaygroundState(QObject):
    """The playground's engines and the answers of the latest request (the state never knows its view)."""

    sig_columns_reset = Signal(list)
    """The columns of a new request (list[Column]), in display order."""
    sig_text = Signal(object, str)
    """(column key, text added)"""
    sig_column_finished = Signal(object)
    """(the Column) it ended: done (scored or stopped) or with an error"""
    sig_busy = Signal(bool)
    """Whether some answer is still being generated."""
    sig_status = Signal(str)
    """A line for the status bar: loading, generating, stopped, an engine's death."""
    sig_engine_died = Signal(str)
    """A playground engine ended unexpectedly; the message says how, with the end of its log."""

    def __init__(self, state: StudioState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.engines: dict[tuple[str, bool], PlaygroundEngine] = {}
        self.columns: dict[ColumnKey, Column] = {}
        self.order: list[ColumnKey] = []
        self.request: Request | None = None
        state.sig_workspace_changed.connect(self.shutdown)

    # ---- asking -------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return any(not c.finished for c in self.columns.values())

    def generate(self, request: Request) -> str:
        """Send `request` to the engines of its runs' base models (starting them if needed). Returns ""
        or a message saying why nothing was sent (the previous answers are kept then)."""
        if self.state.db is None:
            return "Open a workspace first."
        if not request.runs:
            return "Pick at least one run: its trained adapter answers, and its base model with it."
        if request.prompt is not None and not request.prompt.strip():
            return "Type a prompt, or pick a dataset row."
        groups: dict[tuple[str, bool], list[int]] = {}
        for run_id in request.runs:
            cfg = run_config(self.state, run_id)
            if cfg is None:
                return f"Run #{run_id} has no config this studio can read."
            groups.setdefault(base_of(cfg), []).append(run_id)
        self.stop()
        for engine in self.engines.values():
            engine.pending.clear()  # cancelled just now; their late messages are for columns gone
        self.columns, self.order, self.request = {}, [], request
        for base, run_ids in groups.items():
            request_id = f"r{next(_request_ids)}"
            request.ids.append(request_id)
            message = GenerateRequest(
                id=request_id,
                runs=run_ids,
                prompt=request.prompt,
                row=request.row,
                include_base=request.include_base,
                max_new_tokens=request.max_new_tokens,
                temperature=request.temperature,
                seed=request.seed,
            )
            for source in message.sources:
                self._add_column((request_id, source), base, len(groups) > 1)
            self._engine(base).send(message)
        self.sig_columns_reset.emit([self.columns[k] for k in self.order])
        self.sig_busy.emit(True)
        self.sig_status.emit(self._loading_note())
        return ""

    def stop(self) -> None:
        """Cancel what is being generated (idempotent): each unfinished answer ends, stopped, where it is."""
        if self.request is None:
            return
        for engine in self.engines.values():
            for request_id in list(engine.pending):
                engine.send(CancelRequest(request_id))

    def shutdown(self) -> None:
        """End every playground engine (another workspace, or the studio is closing) and forget the answers."""
        for engine in list(self.engines.values()):
            engine.stop()
        self.engines.clear()
        if self.request is not None:
            self.columns, self.order, self.request = {}, [], None
            self.sig_columns_reset.emit([])
            self.sig_busy.emit(False)

    def _add_column(self, key: ColumnKey, base: tuple[str, bool], several_bases: bool) -> None:
        run_id = source_run(key[1])
        if run_id is None:
            title = "Base model" + (f" ({short_model(base[0])})" if several_bases else "")
        else:
            run = self.state.run(run_id)
            title = run.label if run else f"#{run_id}"
        self.columns[key] = Column(key, title, base[0])
        self.order.append(key)

    def _loading_note(self) -> str:
        starting = [e for e in self.engines.values() if e.loaded is None]
        if starting:
            names = ", ".join(short_model(e.base[0]) for e in starting)
            return f"Loading {names} in a playground engine (once; later prompts start at once)…"
        return "Generating…"

    # ---- engines --------------------------------------------------------------------------------------------
    def _engine(self, base: tuple[str, bool]) -> PlaygroundEngine:
        engine = self.engines.get(base)
        if engine is not None and engine.running:
            return engine
        assert self.state.db is not None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_path = self.state.db.logs_dir / f"playground-{stamp}-{os.getpid()}-{len(self.engines)}.log"
        engine = PlaygroundEngine(self.state.engines.command, self.state.db.path, log_path, base, self)
        engine.sig_message.connect(self._on_message)
        engine.sig_exited.connect(self._on_exited)
        self.engines[base] = engine
        engine.start()
        return engine

    def _on_message(self, engine: PlaygroundEngine, message: object) -> None:
        match message:
            case Loaded():
                self.sig_status.emit(
                    f"{short_model(message.base_model)} loaded on {message.device}. Generating…"
                )
            case Token():
                column = self.columns.get((message.id, message.source))
                if column is not None and not column.finished:
                    column.text += message.text
                    self.sig_text.emit(column.key, message.text)
            case Done():
                column = self.columns.get((message.id, message.source))
                if column is not None and not column.finished:
                    column.text, column.done = message.text, message
                    self._finished(engine, column)
            case Error():
                self._on_error(engine, message)

    def _on_error(self, engine: PlaygroundEngine, error: Error) -> None:
        if error.id is None:  # about the process, not a request: show it
            self.sig_status.emit(f"Playground engine: {error.message}")
            return
        for key in list(self.order):
            column = self.columns[key]
            if (
                key[0] == error.id
                and (error.source is None or key[1] == error.source)
                and not column.finished
            ):
                column.error = error.message
                self._finished(engine, column)

    def _finished(self, engine: PlaygroundEngine, column: Column) -> None:
        self.sig_column_finished.emit(column)
        request_id = column.key[0]
        if all(c.finished for k, c in self.columns.items() if k[0] == request_id):
            engine.pending.discard(request_id)
        if not self.busy:
            stopped = any(c.done is not None and c.done.stopped for c in self.columns.values())
            self.sig_status.emit("Stopped." if stopped else "Done.")
            self.sig_busy.emit(False)

    def _on_exited(self, engine: PlaygroundEngine) -> None:
        if self.engines.get(engine.base) is engine:
            del self.engines[engine.base]
        engine.deleteLater()
        if engine.stopping:
            return
        message = engine.exit_message()
        for column in self.columns.values():
            if column.key[0] in engine.pending and not column.finished:
                column.error = "The playground engine stopped before this answer was complete."
                self.sig_column_finished.emit(column)
        engine.pending.clear()
        self.sig_engine_died.emit(message)
        if not self.busy:
            self.sig_busy.emit(False)


def row_prompt_preview(row: dict[str, Any]) -> str:
    """A dataset row's prompt on one line (a message list shows its last user turn)."""
    prompt = row.get("prompt", "")
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        prompt = users[-1] if users else json.dumps(prompt)
    return " ".join(str(prompt).split())
