"""The main window: the views as tabs, the workspace sidebar and the engine log as docks, the menus."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QTabWidget,
    QWidget,
)

from engine.contract.paths import ICON
from studio.engine_client import EngineProcess
from studio.state import settings
from studio.state.studio_state import StudioState
from studio.state.workspace import WorkspaceError
from studio.widgets.dashboard import Dashboard
from studio.widgets.dataset_view import DatasetView
from studio.widgets.environments_view import EnvironmentsView
from studio.widgets.home import HomeView
from studio.widgets.inspector import InspectorView
from studio.widgets.launcher import Launcher
from studio.widgets.log_pane import LogPane
from studio.widgets.playground import PlaygroundView
from studio.widgets.rubric_editor import RubricEditorView
from studio.widgets.sidebar import Sidebar

VIEWS = ("home", "launcher", "dashboard", "inspector", "rubric", "dataset", "environments", "playground")
TITLES = ("Home", "Launch", "Dashboard", "Inspector", "Rubrics", "Data", "Environments", "Playground")
STOP_WAIT_S = 120


class MainWindow(QMainWindow):
    def __init__(self, state: StudioState) -> None:
        super().__init__()
        self.state = state
        self.setObjectName("mainWindow")
        self.setWindowIcon(QIcon(str(ICON)))
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)

        self.home = HomeView(state)
        self.home.sig_open_workspace.connect(self.open_workspace_dialog)
        self.launcher = Launcher(state)
        self.dashboard = Dashboard(state)
        self.inspector = InspectorView(state)
        self.rubric_editor = RubricEditorView(state)
        self.dataset_view = DatasetView(state)
        self.environments_view = EnvironmentsView(state)
        self.playground = PlaygroundView(state)
        self.views: dict[str, QWidget] = dict(
            zip(
                VIEWS,
                (
                    self.home,
                    self.launcher,
                    self.dashboard,
                    self.inspector,
                    self.rubric_editor,
                    self.dataset_view,
                    self.environments_view,
                    self.playground,
                ),
                strict=True,
            )
        )
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for name, title in zip(VIEWS, TITLES, strict=True):
            self.tabs.addTab(self.views[name], title)
        self.setCentralWidget(self.tabs)

        self.sidebar = Sidebar(state)
        self.sidebar_dock = self._dock(
            "Workspace", "sidebarDock", self.sidebar, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.log_pane = LogPane(state)
        self.log_dock = self._dock(
            "Engine log", "logDock", self.log_pane, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.resizeDocks([self.sidebar_dock], [400], Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [150], Qt.Orientation.Vertical)

        self._build_menus()
        state.sig_show_view.connect(self.show_view)
        state.sig_workspace_changed.connect(self._workspace_changed)
        self._workspace_changed()
        self.resize(1400, 900)
        self.restore_layout()

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    # ---- menus ------------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        file.addAction(self._act("&New Workspace…", self.new_workspace_dialog, "Ctrl+Shift+W"))
        file.addAction(
            self._act("&Open Workspace…", self.open_workspace_dialog, QKeySequence.StandardKey.Open)
        )
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addSeparator()
        file.addAction(self.dashboard.export_png_action)
        file.addAction(self.dashboard.export_csv_action)
        file.addSeparator()
        file.addAction(self._act("&Quit", self.close, QKeySequence.StandardKey.Quit))

        run = bar.addMenu("&Run")
        run.addAction(self._act("&New Run…", lambda: self.show_view("launcher"), "Ctrl+N"))
        run.addAction(self._act("Run the &Demo", self.home.run_demo, "Ctrl+Shift+D"))
        run.addAction(self._act("Train the &Agent Demo", self.home.run_agent_demo, "Ctrl+Shift+G"))
        run.addSeparator()
        for action in (*self.dashboard.control_actions, self.dashboard.rerun_action):
            run.addAction(action)

        view = bar.addMenu("&View")
        for i, (name, title) in enumerate(zip(VIEWS, TITLES, strict=True)):
            view.addAction(self._act(title, lambda n=name: self.show_view(n), f"Ctrl+{i + 1}"))
        view.addSeparator()
        view.addAction(self.sidebar_dock.toggleViewAction())
        view.addAction(self.log_dock.toggleViewAction())

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._act("&About RL Studio", self._about))

    def _act(self, text: str, slot: object, shortcut: object = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))  # type: ignore[call-overload]
        action.triggered.connect(slot)  # type: ignore[arg-type]
        return action

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        paths = settings.recent_workspaces()
        if not paths:
            self.recent_menu.addAction("No recent workspaces").setEnabled(False)
        for path in paths:
            action = self.recent_menu.addAction(path)
            action.setEnabled(Path(path).is_file())
            action.triggered.connect(lambda _=False, p=path: self.open_workspace(p, create=False))

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About RL Studio",
            "<h3>RL Studio</h3><p>RL post-training (GRPO or PPO, with LoRA) of "
            "language models on your own workstation.</p>",
        )

    # ---- views and workspaces ---------------------------------------------------------------------------
    def show_view(self, name: str) -> None:
        widget = self.views.get(name)
        if widget is not None:
            self.tabs.setCurrentWidget(widget)

    def _workspace_changed(self) -> None:
        db = self.state.db
        self.setWindowTitle(f"{Path(db.path).name} — {db.path} — RL Studio" if db else "RL Studio")

    def open_workspace(self, path: str, create: bool = True) -> bool:
        if not self._leave_engines("Open another workspace"):
            return False
        try:
            self.state.open_workspace(path, create=create)
        except WorkspaceError as exc:
            QMessageBox.warning(self, "RL Studio", str(exc))
            return False
        self.show_view("home")
        return True

    def open_workspace_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open workspace", "", "RL Studio workspace (*.sqlite *.db);;All files (*)"
        )
        if path:
            self.open_workspace(path, create=False)

    def new_workspace_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "New workspace", "workspace.sqlite", "RL Studio workspace (*.sqlite)"
        )
        if path:
            if Path(path).exists():
                QMessageBox.warning(
                    self, "RL Studio", f"{path} exists already. Use File > Open Workspace to open it."
                )
                return
            self.open_workspace(path, create=True)

    # ---- layout -----------------------------------------------------------------------------------------
    def restore_layout(self) -> None:
        geometry = settings.value("window/geometry")
        state = settings.value("window/state")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(QByteArray(geometry))
        if isinstance(state, QByteArray | bytes):
            self.restoreState(QByteArray(state))
        splitter = settings.value("window/sidebar_splitter")
        if isinstance(splitter, QByteArray | bytes):
            self.sidebar.splitter.restoreState(QByteArray(splitter))
        tab = settings.value("window/tab")
        if isinstance(tab, str) and tab in self.views and tab != "launcher":
            self.show_view(tab)

    def save_layout(self) -> None:
        settings.set_value("window/geometry", self.saveGeometry())
        settings.set_value("window/state", self.saveState())
        settings.set_value("window/sidebar_splitter", self.sidebar.splitter.saveState())
        current = next((n for n, w in self.views.items() if w is self.tabs.currentWidget()), "home")
        settings.set_value("window/tab", current)
        settings.settings().sync()

    # ---- leaving ------------------------------------------------------------------------------------------
    def _leave_engines(self, what: str) -> bool:
        """Ask what to do with runs training here. False if the user cancelled."""
        running = self.state.training_here()
        if not running:
            return True
        choice = self.ask_keep_or_stop(running, what)
        if choice == "stop":
            self.stop_engines(running)
        return choice != "cancel"

    def ask_keep_or_stop(self, running: list[EngineProcess], what: str) -> str:
        """'keep' (training goes on in the background), 'stop' or 'cancel'."""
        names = ", ".join(
            f"#{p.run_id} {p.name}".strip() if p.run_id else (p.name or "a starting run") for p in running
        )
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle(f"{what}: RL Studio")
        box.setText(f"{len(running)} run{'s are' if len(running) > 1 else ' is'} training: {names}.")
        box.setInformativeText(
            "Keep training in the background (reopen the workspace to watch and stop it), "
            "or stop now (a checkpoint is written, so you can resume later)?"
        )
        keep = box.addButton("Keep training", QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton("Stop runs", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)
        box.exec()
        clicked = box.clickedButton()
        return "keep" if clicked is keep else "stop" if clicked is stop else "cancel"

    def stop_engines(self, running: list[EngineProcess]) -> None:
        """Stop gracefully and wait (checkpoints take a moment); 'Stop now' kills at once."""
        procs = [p for p in self.state.training_here() if p in running]
        for p in procs:
            p.send("stop")
        dialog = QProgressDialog("Stopping runs and writing checkpoints…", "Stop now", 0, 0, self)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        waited = 0
        while any(p.running for p in procs) and waited < STOP_WAIT_S * 10:
            QApplication.processEvents()
            if dialog.wasCanceled():
                for p in procs:
                    p.kill()
                break
            for p in procs:
                p.process.waitForFinished(100)
            waited += 1
        for p in procs:
            if p.running:
                p.terminate()
                if not p.process.waitForFinished(5000):
                    p.kill()
        dialog.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._leave_engines("Quit"):
            event.ignore()
            return
        self.save_layout()
        self.environments_view.play.stop()
        self.playground.shutdown()
        event.accept()
        QTimer.singleShot(0, QApplication.quit)
