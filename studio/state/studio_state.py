"""The studio's state, without widgets: the open workspace, the engines, the runs on screen.

Views take this object in their constructor and subscribe to its signals; it never knows its views.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.contract.config import RunConfig
from engine.contract.protocol import (
    CheckpointSaved,
    ErrorReported,
    EvalWritten,
    Event,
    Finished,
    MetricsWritten,
    RunStarted,
    StatusChanged,
)
from engine.contract.protocol import Progress as ProgressEvent
from studio.engine_client import EngineClient, EngineProcess
from studio.state import settings
from studio.state.metrics import MetricsCache, RunMetrics
from studio.state.watcher import WorkspaceWatcher
from studio.state.workspace import RunRow, WorkspaceDB


@dataclass
class Progress:
    """The latest rate and ETA of a run, from its engine's events or from watching its step."""

    step: int = 0
    max_steps: int = 0
    steps_per_s: float | None = None
    eta_s: float | None = None
    phase: str = "train"
    seen_at: float = 0.0


class StudioState(QObject):
    sig_workspace_changed = Signal()
    """Another workspace was opened (or the first one): views reset."""
    sig_runs_changed = Signal(list)
    """RunRows that are new or changed."""
    sig_current_run_changed = Signal(object)
    """The run whose dashboard is shown (int, or None)."""
    sig_compare_changed = Signal(list)
    """The run ids drawn together on the dashboard (the current run first)."""
    sig_progress = Signal(int)
    """A run's Progress changed."""
    sig_engine_event = Signal(object, object)
    """(EngineProcess, Event) from an engine this studio started."""
    sig_launched = Signal(object)
    """An EngineProcess was started (run or resume)."""
    sig_run_crashed = Signal(int, str, str)
    """(run id, message, traceback or stderr tail): an engine died without ending its run."""
    sig_run_failed = Signal(int, str, str)
    """(run id, message, traceback): the engine reported an error and marked the run failed."""
    sig_launch_failed = Signal(str, str)
    """(message, log tail): an engine failed before it could create a run."""
    sig_edit_config = Signal(object, str)
    """(RunConfig, suggested name): open the launcher on this config."""
    sig_show_view = Signal(str)
    """A request to bring a view forward: home, launcher, dashboard, inspector, rubric, dataset."""
    sig_show_dataset = Signal(int)
    sig_show_rollouts = Signal(int, list)
    """(run id, rollout ids): open the inspector on only these rollouts (an alert's examples)."""
    sig_show_rubric_version = Signal(int)
    sig_authored_changed = Signal()
    """Datasets or rubrics changed."""

    def __init__(self, parent: QObject | None = None, engine_command: list[str] | None = None) -> None:
        super().__init__(parent)
        self.db: WorkspaceDB | None = None
        self.metrics = MetricsCache(self)
        self.watcher = WorkspaceWatcher(self.metrics, self)
        self.engines = EngineClient(self, engine_command)
        self.current_run: int | None = None
        self.compare_runs: list[int] = []
        self.progress: dict[int, Progress] = {}
        self.watcher.sig_runs_changed.connect(self._on_runs_changed)
        self.watcher.sig_run_restarted.connect(self._on_run_restarted)
        self.engines.sig_event.connect(self._on_engine_event)
        self.engines.sig_exited.connect(self._on_engine_exited)

    # ---- workspace -----------------------------------------------------------------------------------
    def open_workspace(self, path: str | Path, create: bool = True) -> WorkspaceDB:
        """Open (or create) a workspace and make it current. Raises WorkspaceError with a clear message."""
        db = WorkspaceDB(path, create=create)
        if self.db is not None:
            self.db.close()
        self.db = db
        self.current_run = None
        self.compare_runs = []
        self.progress = {}
        self.metrics.set_workspace(db)
        self.watcher.set_workspace(db)
        settings.add_recent_workspace(db.path)
        self.sig_workspace_changed.emit()
        return db

    def runs(self) -> list[RunRow]:
        return sorted(self.watcher.runs.values(), key=lambda r: -r.id)

    def run(self, run_id: int) -> RunRow | None:
        return self.watcher.runs.get(run_id) or (self.db.run(run_id) if self.db else None)

    def refresh(self) -> None:
        self.watcher.poll(force=True)

    # ---- selection -------------------------------------------------------------------------------------
    def select_run(self, run_id: int | None, compare: list[int] | None = None) -> None:
        ids = [run_id] if run_id is not None else []
        for other in compare or []:
            if other not in ids:
                ids.append(other)
        changed_current = run_id != self.current_run
        self.current_run = run_id
        if ids != self.compare_runs:
            self.compare_runs = ids
            for stale in [r for r in self.metrics.runs if r not in ids]:
                self.metrics.forget(stale)
            self.sig_compare_changed.emit(ids)
        if changed_current:
            self.sig_current_run_changed.emit(run_id)

    def load_metrics(self, run_id: int, background: bool = True) -> RunMetrics:
        """A run's series, loaded now if needed. Rows newer than the load arrive through the watcher."""
        return self.metrics.ensure(run_id, self._watermark(), background=background)

    def _watermark(self) -> int:
        return max(self.watcher.cursor, self.db.max_metric_id() if self.db else 0)

    # ---- engines ---------------------------------------------------------------------------------------
    def launch(self, config_path: str | Path, name: str = "") -> EngineProcess:
        assert self.db is not None, "no workspace is open"
        proc = self.engines.start_run(config_path, self.db.path, self.db.logs_dir, name=name)
        self.sig_launched.emit(proc)
        return proc

    def launch_config(self, cfg: RunConfig, name: str = "") -> EngineProcess:
        """Write the config (absolute paths) beside the workspace and launch it."""
        assert self.db is not None, "no workspace is open"
        self.db.configs_dir.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name or cfg.name or cfg.algorithm).strip("-") or "run"
        path = self.db.configs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}.toml"
        path.write_text(cfg.to_toml(absolute_paths=True), encoding="utf-8")
        return self.launch(path, name or cfg.name)

    def resume(self, run_id: int) -> EngineProcess:
        assert self.db is not None, "no workspace is open"
        run = self.run(run_id)
        proc = self.engines.resume_run(
            run_id, self.db.path, self.db.run_log_path(run_id), run.name if run else ""
        )
        self.sig_launched.emit(proc)
        return proc

    def control_mode(self, run_id: int) -> str:
        """How this studio can steer a run: 'engine' (its own process: every command), 'signal' (another
        process on this machine: stop only, by SIGTERM), or 'none'."""
        if self.engines.for_run(run_id) is not None:
            return "engine"
        run = self.run(run_id)
        if run is not None and run.active and self.db is not None and self.db.engine_alive(run):
            return "signal"
        return "none"

    def command(self, run_id: int, cmd: str) -> bool:
        """Send a run control. Runs started elsewhere can only be stopped (SIGTERM = graceful stop)."""
        if self.engines.send(run_id, cmd):
            return True
        run = self.run(run_id)
        if cmd == "stop" and run is not None and run.pid and self.control_mode(run_id) == "signal":
            try:
                os.kill(run.pid, signal.SIGTERM)
            except OSError:
                return False
            return True
        return False

    def log_path(self, run_id: int) -> Path | None:
        proc = self.engines.for_run(run_id)
        if proc is not None:
            return proc.log_path
        for p in reversed(self.engines.processes):
            if p.run_id == run_id:
                return p.log_path
        if self.db is not None:
            path = self.db.run_log_path(run_id)
            return path if path.exists() else None
        return None

    def _ours(self, proc: EngineProcess) -> bool:
        return self.db is not None and proc.workspace == self.db.path

    def _on_engine_event(self, proc: EngineProcess, event: Event) -> None:
        if not self._ours(proc):
            return
        match event:
            case (
                MetricsWritten()
                | StatusChanged()
                | RunStarted()
                | Finished()
                | CheckpointSaved()
                | EvalWritten()
            ):
                self.watcher.poll_soon()
            case ProgressEvent():
                self.progress[event.run_id] = Progress(
                    event.step, event.max_steps, event.steps_per_s, event.eta_s, event.phase, time.time()
                )
                self.sig_progress.emit(event.run_id)
            case ErrorReported(run_id=int(run_id)):
                self.sig_run_failed.emit(run_id, event.message, event.traceback or "")
        self.sig_engine_event.emit(proc, event)

    def _on_engine_exited(self, proc: EngineProcess) -> None:
        if not self._ours(proc) or self.db is None:
            return
        self.watcher.poll_soon()
        tail = proc.stderr_tail()
        if proc.run_id is None:
            message = proc.error.message if proc.error else proc.describe_exit()
            self.sig_launch_failed.emit(message, tail)
            return
        if proc.crashed:
            message = (
                proc.describe_exit() + " The run was marked failed; see the traceback and the engine log."
            )
            self.db.mark_failed(proc.run_id, message)
            self.sig_run_crashed.emit(proc.run_id, message, tail)
        self.progress.pop(proc.run_id, None)
        self.sig_progress.emit(proc.run_id)

    # ---- watcher ---------------------------------------------------------------------------------------
    def _on_runs_changed(self, runs: list[RunRow]) -> None:
        now = time.time()
        for run in runs:
            p = self.progress.get(run.id)
            own = self.engines.for_run(run.id) is not None
            if not run.active:
                if p is not None:
                    self.progress.pop(run.id, None)
                    self.sig_progress.emit(run.id)
                continue
            if own and p is not None and now - p.seen_at < 30:
                continue  # the engine's own progress events are better than our estimate
            # A run started elsewhere: estimate the rate from how its step moves.
            if p is None:
                self.progress[run.id] = Progress(run.step, run.max_steps, seen_at=now)
            elif run.step > p.step:
                rate = (run.step - p.step) / max(now - p.seen_at, 1e-3)
                p.steps_per_s = rate if p.steps_per_s is None else 0.7 * p.steps_per_s + 0.3 * rate
                p.eta_s = (run.max_steps - run.step) / p.steps_per_s if p.steps_per_s else None
                p.step, p.max_steps, p.seen_at = run.step, run.max_steps, now
            self.sig_progress.emit(run.id)
        self.sig_runs_changed.emit(runs)

    def _on_run_restarted(self, run_id: int) -> None:
        if run_id in self.metrics.runs:
            self.metrics.reload(run_id, self._watermark())

    def close(self) -> None:
        """Stop following the workspace and close it (engines keep running; see training_here)."""
        self.watcher.set_workspace(None)
        self.metrics.set_workspace(None)
        if self.db is not None:
            self.db.close()
            self.db = None

    # ---- leaving -----------------------------------------------------------------------------------------
    def training_here(self) -> list[EngineProcess]:
        """Engines this studio started that are still running (in any workspace)."""
        return self.engines.running()
