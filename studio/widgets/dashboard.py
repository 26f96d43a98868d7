"""The run dashboard: a run's status and controls above live curves, for one run or several compared."""

from __future__ import annotations

import sqlite3

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.contract.config import ConfigError, config_from_dict
from engine.contract.protocol import AlertRaised, CheckpointSaved, Event, Finished, RunStarted, StatusChanged
from studio.engine_client import EngineProcess
from studio.plots.alert_markers import AlertMarkers
from studio.plots.plot_grid import PlotGrid, plotted_key
from studio.state import alerts as alerts_store
from studio.state.export import export_metrics_csv
from studio.state.memory_check import memory_note, recorded_memory
from studio.state.studio_state import StudioState
from studio.widgets.alert_banner import AlertBanner
from studio.widgets.error_banner import ErrorBanner
from studio.widgets.run_header import RunHeader


class Dashboard(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        state.metrics.key_filter = plotted_key
        self.pending: EngineProcess | None = None

        self.pause_action = self._action("Pause", "Ctrl+P", "Pause training after the current step", "pause")
        self.resume_action = self._action(
            "Resume",
            "Ctrl+R",
            "Resume a paused run, or continue a stopped one from its last checkpoint",
            "resume",
        )
        self.stop_action = self._action(
            "Stop", "Ctrl+.", "Stop gracefully, with a checkpoint (resumable)", "stop"
        )
        self.checkpoint_action = self._action(
            "Checkpoint", "Ctrl+K", "Write a resumable checkpoint now", "checkpoint"
        )
        self.rerun_action = QAction("Run again with changes…", self)
        self.rerun_action.setShortcut(QKeySequence("Ctrl+Shift+N"))
        self.rerun_action.setToolTip("Open this run's config in the launcher (Ctrl+Shift+N)")
        self.rerun_action.triggered.connect(self.run_again)
        self.export_png_action = QAction("Export plots as PNG…", self)
        self.export_png_action.triggered.connect(self.export_png)
        self.export_csv_action = QAction("Export metrics as CSV…", self)
        self.export_csv_action.triggered.connect(self.export_csv)
        self.control_actions = [
            self.pause_action,
            self.resume_action,
            self.stop_action,
            self.checkpoint_action,
        ]

        self.header = RunHeader([*self.control_actions, self.rerun_action])
        self.banner = ErrorBanner()
        self.grid = PlotGrid(state)
        # training-time alerts (engine/monitor.py): a banner, and markers on the plots at their steps
        self.alert_banner = AlertBanner()
        self.alert_banner.sig_show_examples.connect(self.show_alert_examples)
        self.alert_banner.sig_acknowledge.connect(self.acknowledge_alert)
        self.alert_markers = AlertMarkers([p.plot for p in self.grid.plots])

        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setFixedWidth(160)
        self.smoothing.setToolTip(
            "Exponential moving average of the curves (0 = raw). The raw values stay "
            "visible, faintly, underneath."
        )
        self.smoothing_value = QLabel("0.60")
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.compare_hint = QLabel()
        self.compare_hint.setObjectName("muted")
        fit = QPushButton("Fit")
        fit.setToolTip("Show every step again after zooming or panning (drag to pan, wheel to zoom)")
        fit.clicked.connect(self.grid.fit)
        png = QPushButton("Export PNG…")
        png.clicked.connect(self.export_png)
        csv = QPushButton("Export CSV…")
        csv.clicked.connect(self.export_csv)
        tools = QHBoxLayout()
        tools.setContentsMargins(12, 0, 12, 0)
        tools.addWidget(QLabel("Smoothing"))
        tools.addWidget(self.smoothing)
        tools.addWidget(self.smoothing_value)
        tools.addSpacing(16)
        tools.addWidget(self.compare_hint, 1)
        tools.addWidget(fit)
        tools.addWidget(png)
        tools.addWidget(csv)

        self.empty = QLabel()
        self.empty.setObjectName("emptyState")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.grid)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.header)
        layout.addWidget(self.banner)
        layout.addWidget(self.alert_banner)
        layout.addLayout(tools)
        layout.addWidget(self.stack, 1)

        state.sig_current_run_changed.connect(lambda _run: self.update_view())
        state.sig_compare_changed.connect(self._compare_changed)
        state.sig_runs_changed.connect(self._runs_changed)
        state.sig_progress.connect(self._progress_changed)
        state.sig_run_crashed.connect(self._run_crashed)
        state.sig_run_failed.connect(self._run_failed)
        state.sig_launch_failed.connect(self._launch_failed)
        state.sig_launched.connect(self._launched)
        state.sig_engine_event.connect(self._engine_event)
        state.sig_workspace_changed.connect(self.update_view)
        state.metrics.sig_keys_added.connect(lambda run_id, keys: self._update_empty())
        # Actions depend on whether an engine process is alive, which no signal announces when the run
        # belongs to another process: look again now and then.
        self._recheck = QTimer(self)
        self._recheck.timeout.connect(self._update_actions)
        self._recheck.start(2000)
        self.update_view()

    def _action(self, text: str, shortcut: str, tip: str, cmd: str) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(
            f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)})"
        )
        action.triggered.connect(lambda: self.control(cmd))
        self.addAction(action)
        return action

    # ---- state -> view -----------------------------------------------------------------------------------
    def update_view(self) -> None:
        run_id = self.state.current_run
        run = self.state.run(run_id) if run_id is not None else None
        note = ""
        if run is not None and run.active and self.state.control_mode(run.id) == "none":
            alive = self.state.db.engine_alive(run) if self.state.db else None
            if alive is False:
                note = "its engine process is gone (killed?): resume continues from the last checkpoint"
            elif alive is None and self.state.engines.for_run(run.id) is None:
                note = "started elsewhere"
        elif run is not None and run.active and self.state.control_mode(run.id) == "signal":
            note = "started outside this window: only Stop is available here"
        elif run is not None and not run.active and self.state.db is not None:
            note = memory_note(*recorded_memory(self.state.db.conn, run.id))
        if run is None and self.pending is not None and self.pending.running:
            self.header.show_run(
                None, None, note=f"Starting {self.pending.name or 'a run'}: loading the model…"
            )
        else:
            self.header.show_run(run, self.state.progress.get(run_id) if run_id is not None else None, note)
        if run is not None and run.status == "failed" and self.state.db is not None:
            message, traceback = self.state.db.last_error(run.id)
            if not traceback:
                log = self.state.log_path(run.id)
                from studio.engine_client import read_tail

                traceback = read_tail(log) if log else ""
            self.banner.show_error(message or "The run failed.", traceback or "")
        elif run is not None or self.pending is None:
            self.banner.clear()
        self._update_compare_hint()
        self._update_actions()
        self._update_empty()
        self.refresh_alerts()

    def _update_empty(self) -> None:
        run_id = self.state.current_run
        if run_id is None:
            self.empty.setText(
                "<h3>No run selected</h3><p>Pick a run in the sidebar, or start one: "
                "<b>Home → Run the demo</b> trains a tiny model in a few minutes.</p>"
            )
            self.stack.setCurrentWidget(self.empty)
            return
        if self.grid.curve_count() == 0:
            run = self.state.run(run_id)
            waiting = run is not None and run.active
            self.empty.setText(
                "<h3>Waiting for the first step…</h3><p>Loading the model and generating the first rollouts. "
                "The curves appear as soon as the engine records step 1.</p>"
                if waiting
                else "<h3>This run recorded no metrics</h3>"
            )
            self.stack.setCurrentWidget(self.empty)
            return
        self.stack.setCurrentWidget(self.grid)

    def _update_compare_hint(self) -> None:
        ids = self.state.compare_runs
        if len(ids) > 1:
            self.compare_hint.setText("Comparing " + ", ".join(f"#{i}" for i in ids))
        else:
            self.compare_hint.setText("Select several runs in the sidebar (Ctrl+click) to compare them.")

    def _update_actions(self) -> None:
        run_id = self.state.current_run
        run = self.state.run(run_id) if run_id is not None else None
        mode = self.state.control_mode(run_id) if run_id is not None else "none"
        own = mode == "engine"
        for action in self.control_actions:
            action.setEnabled(False)
        self.rerun_action.setEnabled(run is not None)
        if run is None:
            return
        self.pause_action.setEnabled(own and run.status == "running")
        self.checkpoint_action.setEnabled(own and run.status in ("running", "paused"))
        self.stop_action.setEnabled(mode in ("engine", "signal") and run.active)
        resumable = not run.active or (
            mode == "none" and self.state.db is not None and self.state.db.engine_alive(run) is False
        )
        self.resume_action.setEnabled(
            (own and run.status == "paused") or (resumable and run.status != "finished")
        )

    def _compare_changed(self, ids: list[int]) -> None:
        self.grid.set_runs(ids)
        self.update_view()

    def _runs_changed(self, runs: list[object]) -> None:
        if self.state.current_run is not None and any(
            getattr(r, "id", None) == self.state.current_run for r in runs
        ):
            self.update_view()

    def _progress_changed(self, run_id: int) -> None:
        if run_id == self.state.current_run:
            run = self.state.run(run_id)
            self.header.show_run(run, self.state.progress.get(run_id))

    def _run_crashed(self, run_id: int, message: str, tail: str) -> None:
        if run_id == self.state.current_run:
            self.state.refresh()
            self.update_view()
            self.banner.show_error(message, tail, title="The engine crashed")

    def _run_failed(self, run_id: int, message: str, traceback: str) -> None:
        if run_id == self.state.current_run:
            self.state.refresh()
            self.update_view()

    def _launch_failed(self, message: str, tail: str) -> None:
        self.pending = None
        self.update_view()
        self.banner.show_error(message, tail, title="The run could not start")

    def _launched(self, proc: EngineProcess) -> None:
        self.banner.clear()
        if proc.run_id is not None:
            self.state.select_run(proc.run_id)
        else:
            self.pending = proc
            self.state.select_run(None)
        self.update_view()

    def _engine_event(self, proc: EngineProcess, event: Event) -> None:
        if isinstance(event, RunStarted) and proc is self.pending:
            self.pending = None
            self.state.refresh()
            self.state.select_run(event.run_id)
        elif (
            isinstance(event, StatusChanged | Finished | CheckpointSaved)
            and event.run_id == self.state.current_run
        ):
            self._update_actions()
        elif isinstance(event, AlertRaised) and event.run_id == self.state.current_run:
            self.refresh_alerts()

    # ---- alerts --------------------------------------------------------------------------------------------
    def refresh_alerts(self) -> None:
        """Read the current run's alerts (studio/state/alerts.py) into the banner and the plot markers."""
        run_id = self.state.current_run
        found = alerts_store.read_alerts(self.state.db.conn, run_id) if self.state.db and run_id else []
        self.alert_banner.set_alerts(found)
        self.alert_markers.set_alerts(found)

    def show_alert_examples(self, alert: alerts_store.AlertRow) -> None:
        self.state.sig_show_rollouts.emit(alert.run_id, alert.examples)
        self.state.sig_show_view.emit("inspector")

    def acknowledge_alert(self, alert: alerts_store.AlertRow) -> None:
        if self.state.db is None:
            return
        try:
            alerts_store.acknowledge(self.state.db.path, [alert.id])
        except sqlite3.Error as exc:
            QMessageBox.warning(self, "RL Studio", f"The alert was not acknowledged: {exc}. Try again.")
        self.refresh_alerts()

    # ---- controls ---------------------------------------------------------------------------------------
    def control(self, cmd: str) -> None:
        run_id = self.state.current_run
        if run_id is None:
            return
        run = self.state.run(run_id)
        if cmd == "resume" and run is not None and self.state.control_mode(run_id) != "engine":
            self.state.resume(run_id)
            return
        if not self.state.command(run_id, cmd):
            QMessageBox.information(
                self,
                "RL Studio",
                f"Run #{run_id} is not training in an engine this window can reach: '{cmd}' was not sent.",
            )
        self._update_actions()

    def run_again(self) -> None:
        run_id = self.state.current_run
        if run_id is None or self.state.db is None:
            return
        data, base_dir = self.state.db.run_config(run_id)
        try:
            cfg = config_from_dict(data, base_dir=base_dir)
        except ConfigError as exc:
            QMessageBox.warning(
                self, "RL Studio", f"The config recorded by run #{run_id} no longer validates: {exc}"
            )
            return
        run = self.state.run(run_id)
        self.state.sig_edit_config.emit(cfg, f"{run.name} (again)" if run else "")

    def _smoothing_changed(self, value: int) -> None:
        weight = value / 100
        self.smoothing_value.setText(f"{weight:.2f}")
        self.grid.set_smoothing(weight)

    def export_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export plots", "rl-studio-plots.png", "PNG image (*.png)"
        )
        if path and not self.grid.export_png(path):
            QMessageBox.warning(self, "RL Studio", f"Could not write {path}.")

    def export_csv(self) -> None:
        ids = self.state.compare_runs
        if not ids or self.state.db is None:
            return
        default = f"run-{'-'.join(str(i) for i in ids)}-metrics.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", default, "CSV (*.csv)")
        if path:
            try:
                export_metrics_csv(self.state.db, ids, path)
            except OSError as exc:
                QMessageBox.warning(self, "RL Studio", f"Could not write {path}: {exc}")
