"""The rubric editor: the criteria table beside a Python editor, validation as you type, a test pane and
red-teaming that run the real engine in a subprocess, and immutable versions in the workspace.

    ┌ name · version state · problems ─────────────── dataset · New · Import · Export · Save version ┐
    │ criteria (name, kind, weight, key parameters) │ code: a source file or inline code, problems   │
    ├ Test │ Red team │ Calibrate │ TOML │ Versions ─────────────────────────────────────────────────┤

Shortcuts: Ctrl+S save a version, Ctrl+Enter run the test, Ctrl+Shift+Enter red-team, Esc cancel,
Ctrl+Shift+I import, Ctrl+Shift+E export, Ctrl+Shift+A add a criterion. See docs/rubric_editor.md.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.state import rubric_checks, rubric_store
from studio.state.rubric_checks import Report
from studio.state.rubric_session import RubricSession
from studio.state.rubric_store import SaveResult
from studio.state.studio_state import StudioState
from studio.state.workspace import RunRow
from studio.widgets.rubric_calibrate_pane import CalibratePane
from studio.widgets.rubric_code_pane import CodePane
from studio.widgets.rubric_criteria import CriteriaPanel
from studio.widgets.rubric_redteam_pane import RedTeamPane
from studio.widgets.rubric_test_pane import TestPane
from studio.widgets.rubric_toml_pane import TomlPane
from studio.widgets.rubric_versions import VersionsPane

VALIDATE_MS = 300


class RubricEditorView(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.session = RubricSession(state, self)
        self.report = Report()
        self.confirm: Callable[[str, str], bool] = self._ask
        """Asks the user a yes/no question (tests replace it)."""

        # ---- header ------------------------------------------------------------------------------------
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("rubricName")
        self.name_edit.setPlaceholderText("rubric name")
        self.name_edit.setToolTip("The rubric's name; versions are kept per name")
        self.name_edit.setMaximumWidth(200)
        self.name_edit.editingFinished.connect(self._rename)
        self.version_label = QLabel()
        self.version_label.setObjectName("muted")
        self.problem_label = QLabel()
        self.problem_label.setObjectName("validation")
        self.dataset_combo = QComboBox()
        self.dataset_combo.setToolTip("The dataset whose columns are checked and whose rows are tested")
        self.dataset_combo.setMinimumWidth(150)
        self.dataset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.dataset_combo.currentIndexChanged.connect(self._dataset_picked)
        self.new_button = self._button("New", "Start a new rubric", self.new_rubric)
        self.import_button = self._button(
            "Import…", "Open a rubric TOML file (Ctrl+Shift+I)", self.import_dialog
        )
        self.export_button = self._button(
            "Export…", "Write the TOML and its source files to a folder (Ctrl+Shift+E)", self.export_dialog
        )
        self.save_button = self._button(
            "Save version", "Save a new immutable version (Ctrl+S)", self.save_clicked
        )
        self.save_button.setObjectName("primary")
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("note for the version")
        self.note_edit.setMaximumWidth(180)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.name_edit)
        header.addWidget(self.version_label)
        header.addWidget(self.problem_label, 1)
        header.addWidget(QLabel("Dataset"))
        header.addWidget(self.dataset_combo)
        for w in (self.new_button, self.import_button, self.export_button, self.note_edit, self.save_button):
            header.addWidget(w)

        # ---- body --------------------------------------------------------------------------------------
        self.criteria = CriteriaPanel(self.session)
        self.code = CodePane(self.session)
        self.test = TestPane(self.session)
        self.redteam = RedTeamPane(self.session)
        self.calibrate = CalibratePane(self.session)  # agreement with human labels, before and after an edit
        self.toml = TomlPane(self.session)
        self.versions = VersionsPane(self.session)
        self.criteria.sig_selected.connect(self.code.show_criterion)
        self.criteria.model.sig_edit_rejected.connect(self._edit_rejected)
        self.versions.sig_restore.connect(self.restore_version)
        self.versions.sig_open_run.connect(self._open_run)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("rubricTabs")
        self.tabs.addTab(self.test, "Test")
        self.tabs.addTab(self.redteam, "Red team")
        self.tabs.addTab(self.calibrate, "Calibrate")
        self.tabs.addTab(self.toml, "TOML")
        self.tabs.addTab(self.versions, "Versions")
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.criteria)
        top.addWidget(self.code)
        top.setSizes([470, 580])
        top.setChildrenCollapsible(False)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(top)
        body.addWidget(self.tabs)
        body.setSizes([330, 300])
        body.setChildrenCollapsible(False)
        self.splitter = body
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(6)
        layout.addLayout(header)
        layout.addWidget(body, 1)

        self._validate_timer = QTimer(self)
        self._validate_timer.setSingleShot(True)
        self._validate_timer.setInterval(VALIDATE_MS)
        self._validate_timer.timeout.connect(self.validate)
        self.session.sig_changed.connect(self._doc_changed)
        self.session.sig_loaded.connect(self._loaded)
        self.session.sig_dirty_changed.connect(lambda _d: self._update_header())
        self.session.sig_dataset_changed.connect(lambda _d: self.validate())
        state.sig_workspace_changed.connect(self._workspace_changed)
        state.sig_authored_changed.connect(self._refresh_datasets)
        state.sig_show_rubric_version.connect(self.open_version)
        state.sig_runs_changed.connect(self._runs_changed)
        self._known_runs: set[int] = set()
        app = QApplication.instance()
        if app is not None:  # no engine job outlives the studio
            app.aboutToQuit.connect(self.cancel_jobs)
        self._shortcuts()
        self._workspace_changed()

    def _button(self, text: str, tip: str, slot: Callable[[], object]) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(lambda: slot())
        return button

    def _shortcuts(self) -> None:
        keys: list[tuple[str, Callable[[], object]]] = [
            ("Ctrl+S", self.save_clicked),
            ("Ctrl+Return", self.run_test),
            ("Ctrl+Enter", self.run_test),
            ("Ctrl+Shift+Return", self.run_redteam),
            ("Ctrl+Shift+Enter", self.run_redteam),
            ("Escape", self.cancel_jobs),
            ("Ctrl+Shift+I", self.import_dialog),
            ("Ctrl+Shift+E", self.export_dialog),
        ]
        for key, slot in keys:
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda s=slot: s())

    # ---- workspace and loading --------------------------------------------------------------------------
    def _workspace_changed(self) -> None:
        self.test.job.cancel()
        self.redteam.job.cancel()
        self.calibrate.job.cancel()
        self._known_runs = set()
        self._refresh_datasets()
        self.session.load_latest()

    def _doc_changed(self, origin: str) -> None:
        self._validate_timer.start()
        if origin == "table":  # a rename or a new source may have moved the selected criterion's code
            self.code.show_criterion(self.criteria.current_row(), reveal=False)

    def _runs_changed(self, runs: list[RunRow]) -> None:
        """A new run may have linked a rubric version: refresh 'used by runs' (not on every step)."""
        new = {r.id for r in runs} - self._known_runs
        if new:
            self._known_runs |= new
            self.session.refresh_base()
            self.versions.refresh()
            self._update_header()

    def _refresh_datasets(self) -> None:
        datasets = self.session.datasets()
        current = self.session.dataset
        self.dataset_combo.blockSignals(True)
        self.dataset_combo.clear()
        for d in datasets:
            rows = f"{d.rows:,}" if d.rows is not None else "?"
            self.dataset_combo.addItem(f"{d.name} · {rows}", d.id)
            self.dataset_combo.setItemData(
                self.dataset_combo.count() - 1,
                f"{d.path}\ncolumns: {', '.join(d.columns)}",
                Qt.ItemDataRole.ToolTipRole,
            )
        if not datasets:
            self.dataset_combo.addItem("no datasets in this workspace", None)
        keep = next((i for i, d in enumerate(datasets) if current and d.id == current.id), 0)
        self.dataset_combo.setCurrentIndex(keep)
        self.dataset_combo.blockSignals(False)
        self._dataset_picked(keep)
        self.versions.refresh()

    def _dataset_picked(self, index: int) -> None:
        dataset_id = self.dataset_combo.itemData(index)
        datasets = {d.id: d for d in self.session.datasets()}
        self.session.set_dataset(datasets.get(dataset_id) if dataset_id is not None else None)

    def _loaded(self) -> None:
        self.name_edit.setText(self.session.doc.name)
        self.validate()
        self._update_header()

    def _leave_edits(self, what: str) -> bool:
        if not self.session.dirty:
            return True
        return self.confirm(
            what, "The rubric in the editor has changes that are not saved as a version. Discard them?"
        )

    def open_version(self, version_id: int) -> bool:
        if self.session.base is not None and self.session.base.id == version_id and not self.session.dirty:
            return True
        if not self._leave_edits("Open rubric version"):
            return False
        return self.session.load_version(version_id)

    def restore_version(self, version_id: int) -> bool:
        if not self._leave_edits("Restore version"):
            return False
        return self.session.load_version(version_id)

    def new_rubric(self) -> None:
        if self._leave_edits("New rubric"):
            self.session.new_rubric()

    # ---- validation -------------------------------------------------------------------------------------
    def validate(self) -> Report:
        self._validate_timer.stop()
        self.report = rubric_checks.check(self.session.doc, self.session.columns, self.session.dataset_label)
        self.criteria.model.set_report(self.report)
        self.code.set_analyses(self.report.code)
        errors = len(self.report.errors)
        warnings = len(self.report.problems) - errors
        if errors or warnings:
            parts = [
                f"{n} {word}{'s' if n != 1 else ''}"
                for n, word in ((errors, "error"), (warnings, "warning"))
                if n
            ]
            colour = "#c53030" if errors else "#b7791f"
            self.problem_label.setText(f"<span style='color:{colour}'>● {', '.join(parts)}</span>")
            self.problem_label.setToolTip("\n".join(p.message for p in self.report.problems))
        else:
            self.problem_label.setText("<span style='color:#2f855a'>✔ no problems</span>")
            self.problem_label.setToolTip("")
        if self.session.doc.name != self.name_edit.text() and not self.name_edit.hasFocus():
            self.name_edit.setText(self.session.doc.name)
        return self.report

    def _update_header(self) -> None:
        base = self.session.base
        if base is None:
            text = f"{self.session.origin} · not saved"
        elif self.session.dirty:
            text = f"edited from v{base.version}"
        else:
            runs = f" · used by {len(base.runs)} run{'s' if len(base.runs) != 1 else ''}" if base.runs else ""
            text = f"v{base.version} · saved{runs}"
        self.version_label.setText(text)

    def _rename(self) -> None:
        name = self.name_edit.text().strip()
        if name and name != self.session.doc.name:
            self.session.doc.set_top("name", name)
            self.session.changed("table")

    def _edit_rejected(self, message: str) -> None:
        self.problem_label.setText(
            f"<span style='color:#c53030'>Edit not applied: {html.escape(message)}</span>"
        )

    # ---- actions ----------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Apply pending typing (the TOML pane, the name) before saving or testing."""
        self.toml.flush()
        self._rename()

    def save_clicked(self) -> None:
        self.save_version()

    def save_version(self, note: str | None = None, force: bool = False) -> SaveResult | None:
        self.flush()
        report = self.validate()
        if self.session.doc.parse_error:
            QMessageBox.warning(
                self, "Save version", f"The TOML does not parse: {self.session.doc.parse_error}"
            )
            return None
        if (
            report.errors
            and not force
            and not self.confirm(
                "Save version",
                f"The rubric has {len(report.errors)} error(s); a run using it would fail to load.\n\n"
                + "\n".join(p.message for p in report.errors[:5])
                + "\n\nSave this version anyway?",
            )
        ):
            return None
        try:
            result = self.session.save(self.note_edit.text().strip() if note is None else note)
        except ValueError as exc:
            QMessageBox.warning(self, "Save version", str(exc))
            return None
        self.note_edit.clear()
        self.versions.select_version(result.version_id)
        self._update_header()
        if not result.created:
            self.version_label.setText(f"v{result.version} · unchanged, nothing new to save")
        return result

    def run_test(self) -> bool:
        self.flush()
        self.tabs.setCurrentWidget(self.test)
        return self.test.run()

    def run_redteam(self) -> bool:
        self.flush()
        self.tabs.setCurrentWidget(self.redteam)
        return self.redteam.run()

    def cancel_jobs(self) -> None:
        self.test.job.cancel()
        self.redteam.job.cancel()
        self.calibrate.job.cancel()

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import rubric", "", "Rubric (*.toml);;All files (*)")
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> bool:
        if not self._leave_edits("Import rubric"):
            return False
        try:
            self.session.import_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            QMessageBox.warning(self, "Import rubric", f"Cannot read {path}: {exc}")
            return False
        return True

    def export_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export rubric to a folder")
        if folder:
            self.export_to(Path(folder))

    def export_to(self, folder: Path) -> Path | None:
        self.flush()
        try:
            return rubric_store.export_folder(self.session.doc, folder)
        except FileExistsError as exc:
            if not self.confirm("Export rubric", f"{exc}.\n\nOverwrite it?"):
                return None
            return rubric_store.export_folder(self.session.doc, folder, overwrite=True)
        except (OSError, ValueError) as exc:
            QMessageBox.warning(self, "Export rubric", f"Cannot export to {folder}: {exc}")
            return None

    def _open_run(self, run_id: int) -> None:
        self.state.select_run(run_id)
        self.state.sig_show_view.emit("dashboard")

    def _ask(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(self, title, question)
        return answer == QMessageBox.StandardButton.Yes

    # ---- screenshots ------------------------------------------------------------------------------------
    def prepare_screenshot(self, timeout_ms: int = 60_000) -> None:
        """Run the test on the picked rows and wait for it, so a screenshot shows real scores."""
        if self.run_test():
            self.test.job.wait(timeout_ms)
            QApplication.processEvents()
