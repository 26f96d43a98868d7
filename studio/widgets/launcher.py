"""The launcher: every run config field as a form, validated by the engine's rules before launch.

Fields come from engine.contract.config (state/config_form.py), tooltips from their help text.
The form saves and loads TOML, and "run again with changes" fills it from a recorded run.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.contract.config import ConfigError, RunConfig, config_from_dict, load_run_config
from engine.contract.paths import DEMO_CONFIG
from studio.jobs import Jobs
from studio.state.authored import demo_config_path, materialize_rubric_version
from studio.state.config_form import (
    ADVANCED_TITLES,
    GROUP_TITLES,
    FieldSpec,
    build_config,
    config_values,
    form_fields,
    parse_table,
    table_text,
    values_to_dict,
)
from studio.state.memory_check import DeviceMemory, MemoryCheck, check, detect_devices
from studio.state.studio_state import StudioState

# Where each group sits in the two-column form; the advanced fields (config_form.ADVANCED_BLOCKS) sit in a
# collapsed section under it.
_LEFT = ("", "model", "data", "rubric", "lora", "generation", "eval")
_RIGHT = ("training", "monitor")
_ADVANCED_LEFT = ("training",)
_ADVANCED_RIGHT = ("data", "ppo")


class Launcher(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.specs = form_fields()
        self.editors: dict[str, QWidget] = {}
        self.base_dir = ""

        heading = QLabel("<h2>New run</h2>")
        self.source_label = QLabel("")
        self.source_label.setObjectName("muted")
        load = QPushButton("Load TOML…")
        load.clicked.connect(self.load_toml)
        save = QPushButton("Save TOML…")
        save.clicked.connect(self.save_toml)
        demo = QPushButton("Start from the demo")
        demo.clicked.connect(self.load_demo)
        top = QHBoxLayout()
        top.addWidget(heading)
        top.addWidget(self.source_label, 1)
        for b in (demo, load, save):
            top.addWidget(b)

        groups: dict[tuple[bool, str], QFormLayout] = {}
        columns = [QVBoxLayout(), QVBoxLayout(), QVBoxLayout(), QVBoxLayout()]
        layouts = ((False, _LEFT), (False, _RIGHT), (True, _ADVANCED_LEFT), (True, _ADVANCED_RIGHT))
        for i, (advanced, names) in enumerate(layouts):
            for name in names:
                box = QGroupBox(ADVANCED_TITLES[name] if advanced else GROUP_TITLES[name])
                form = QFormLayout(box)
                form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
                form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
                groups[(advanced, name)] = form
                columns[i].addWidget(box)
                if name == "ppo":
                    self.ppo_box = box  # shown while algorithm = ppo (_changed)
                    box.setVisible(False)
            columns[i].addStretch(1)
        for spec in self.specs:
            editor = self._editor(spec)
            self.editors[spec.key] = editor
            label = QLabel(spec.label)
            tip = f"<b>{spec.toml_key}</b><br>{spec.help}"
            label.setToolTip(tip)
            editor.setToolTip(tip)
            groups[(spec.advanced, spec.group)].addRow(label, editor)

        # The advanced knobs, folded away until asked for (the toggle says how many differ from defaults).
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setObjectName("advancedToggle")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setToolTip(
            "TRL's GRPO knobs (loss type, reward scaling, importance sampling, entropy...), prompt rendering "
            "(chat template, system prompt) and PPO's keys"
        )
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        self.advanced_body = QWidget()
        advanced_grid = QGridLayout(self.advanced_body)
        advanced_grid.setContentsMargins(0, 0, 0, 0)
        advanced_grid.addLayout(columns[2], 0, 0)
        advanced_grid.addLayout(columns[3], 0, 1)
        advanced_grid.setColumnStretch(0, 1)
        advanced_grid.setColumnStretch(1, 1)
        self.advanced_body.setVisible(False)

        body = QWidget()
        grid = QGridLayout(body)
        grid.addLayout(columns[0], 0, 0)
        grid.addLayout(columns[1], 0, 1)
        grid.addWidget(self.advanced_toggle, 1, 0, 1, 2)
        grid.addWidget(self.advanced_body, 2, 0, 1, 2)
        grid.setRowStretch(3, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("validation")
        self.launch_button = QPushButton("Launch run")
        self.launch_button.setObjectName("primary")
        self.launch_button.setToolTip("Validate and start the run in a background engine (Ctrl+Return)")
        self.launch_button.clicked.connect(self.launch)
        QShortcut(QKeySequence("Ctrl+Return"), self, self.launch)
        bottom = QHBoxLayout()
        bottom.addWidget(self.message, 1)
        bottom.addWidget(self.launch_button)
        # Before launch: the model's size and the run's estimated peak memory against the device's.
        self.memory = QLabel("")
        self.memory.setObjectName("muted")
        self.memory.setWordWrap(True)
        self.memory_warning = QLabel("")
        self.memory_warning.setObjectName("warning")
        self.memory_warning.setWordWrap(True)
        self.memory_warning.setVisible(False)
        self.devices: tuple[DeviceMemory | None, DeviceMemory | None] | None = None
        self.memory_check: MemoryCheck | None = None
        self._device_jobs = Jobs("device memory", self)
        self._device_jobs.submit(lambda _task: detect_devices(), on_done=self._devices_detected)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.addLayout(top)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.memory)
        layout.addWidget(self.memory_warning)
        layout.addLayout(bottom)

        self._validate_timer = QTimer(self)
        self._validate_timer.setSingleShot(True)
        self._validate_timer.setInterval(250)
        self._validate_timer.timeout.connect(self.validate)
        state.sig_edit_config.connect(self.edit_config)
        self.set_values(self._defaults())
        self.validate()

    # ---- editors --------------------------------------------------------------------------------------
    def _defaults(self) -> dict[str, Any]:
        """The demo's config when it is installed (a working starting point), else the field defaults."""
        values = {spec.key: spec.default for spec in self.specs}
        if DEMO_CONFIG.is_file():
            try:
                values.update(config_values(load_run_config(DEMO_CONFIG)))
                values["name"] = ""
                self.source_label.setText("from the demo config")
            except ConfigError:
                pass
        return values

    def _editor(self, spec: FieldSpec) -> QWidget:
        changed = self._changed
        if spec.kind == "bool":
            box = QCheckBox()
            box.toggled.connect(changed)
            return box
        if spec.kind == "int":
            spin = QSpinBox()
            spin.setRange(0, 2_000_000_000)
            spin.setGroupSeparatorShown(False)
            spin.valueChanged.connect(changed)
            return spin
        if spec.kind == "choice":
            combo = QComboBox()
            combo.addItems(list(spec.choices))
            combo.currentTextChanged.connect(changed)
            return combo
        edit = QLineEdit()
        edit.textChanged.connect(changed)
        if spec.kind == "list":
            edit.setPlaceholderText("comma-separated")
        if spec.kind == "table":
            edit.setPlaceholderText("{ enable_thinking = false }")
        if spec.kind != "path":
            return edit
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Browse")
        browse.clicked.connect(lambda: self._browse(spec, edit))
        row.addWidget(browse)
        if spec.key == "rubric.path":
            versions = QToolButton()
            versions.setText("Workspace ▾")
            versions.setToolTip("Use a rubric version stored in this workspace")
            versions.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
            menu = QMenu(versions)
            menu.aboutToShow.connect(lambda: self._fill_rubric_menu(menu, edit))
            versions.setMenu(menu)
            row.addWidget(versions)
        holder.setProperty("line_edit", edit)
        return holder

    def _line_edit(self, editor: QWidget) -> QLineEdit:
        inner = editor.property("line_edit")
        return inner if isinstance(inner, QLineEdit) else editor  # type: ignore[return-value]

    def _browse(self, spec: FieldSpec, edit: QLineEdit) -> None:
        start = edit.text() or str(Path.home())
        if spec.path_mode == "dir":
            path = QFileDialog.getExistingDirectory(self, spec.label, start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, spec.label, start, spec.file_filter)
        if path:
            edit.setText(path)

    def _fill_rubric_menu(self, menu: QMenu, edit: QLineEdit) -> None:
        menu.clear()
        rows = self.state.db.rubric_versions() if self.state.db else []
        if not rows:
            menu.addAction("No rubrics stored in this workspace").setEnabled(False)
        for v in rows:
            action = menu.addAction(f"{v.rubric_name}  v{v.version}")
            action.triggered.connect(lambda _=False, vid=v.id: self._use_rubric_version(vid, edit))

    def _use_rubric_version(self, version_id: int, edit: QLineEdit) -> None:
        if self.state.db is not None:
            edit.setText(str(materialize_rubric_version(self.state.db, version_id)))

    # ---- values ---------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec in self.specs:
            editor = self.editors[spec.key]
            if isinstance(editor, QCheckBox):
                out[spec.key] = editor.isChecked()
            elif isinstance(editor, QSpinBox):
                out[spec.key] = editor.value()
            elif isinstance(editor, QComboBox):
                out[spec.key] = editor.currentText()
            else:
                text = self._line_edit(editor).text().strip()
                if spec.kind == "list":
                    out[spec.key] = [part.strip() for part in text.split(",") if part.strip()]
                elif spec.kind == "table":
                    out[spec.key] = parse_table(text)
                elif spec.kind == "float":
                    try:
                        out[spec.key] = float(text)
                    except ValueError:
                        out[spec.key] = text  # the engine's validation names the key and the fix
                else:
                    out[spec.key] = text
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for spec in self.specs:
            if spec.key not in values:
                continue
            value = values[spec.key]
            editor = self.editors[spec.key]
            editor.blockSignals(True)
            if isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, QSpinBox):
                editor.setValue(int(value))
            elif isinstance(editor, QComboBox):
                editor.setCurrentText(str(value))
            elif spec.kind == "list":
                self._line_edit(editor).setText(", ".join(str(v) for v in value))
                self._line_edit(editor).setCursorPosition(0)
            elif spec.kind == "table":
                self._line_edit(editor).setText(table_text(value) if isinstance(value, dict) else str(value))
            elif spec.kind == "float":
                self._line_edit(editor).setText(
                    f"{value:g}" if isinstance(value, float | int) else str(value)
                )
            else:
                self._line_edit(editor).setText(str(value))
            editor.blockSignals(False)
        self._changed()

    def set_config(self, cfg: RunConfig, source: str = "") -> None:
        self.set_values(config_values(cfg))
        self.source_label.setText(source)
        self.validate()

    # ---- validation and launch -------------------------------------------------------------------------
    def _changed(self, *_: object) -> None:
        algorithm = self.editors["algorithm"]
        if isinstance(algorithm, QComboBox):
            self.ppo_box.setVisible(algorithm.currentText() == "ppo")
        self._update_advanced_title()
        self._validate_timer.start()

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced_body.setVisible(shown)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _update_advanced_title(self) -> None:
        values = self.values()
        changed = [s.key for s in self.specs if s.advanced and values.get(s.key) != s.default]
        note = f"  ({len(changed)} changed from the defaults)" if changed else ""
        self.advanced_toggle.setText(f"Advanced: TRL GRPO knobs, prompt rendering, PPO{note}")
        self.advanced_toggle.setToolTip(
            "Changed: " + ", ".join(changed) if changed else "Every advanced setting is at its default"
        )

    # ---- memory ---------------------------------------------------------------------------------------
    def _devices_detected(self, devices: tuple[DeviceMemory | None, DeviceMemory | None]) -> None:
        self.devices = devices
        self.validate()

    def _update_memory(self, cfg: RunConfig | None) -> None:
        if cfg is None:
            return  # keep the last estimate while the form is being edited into shape
        gpu, ram = self.devices or (None, None)
        self.memory_check = check(cfg, gpu, ram)
        detecting = " Detecting the device's memory…" if self.devices is None else ""
        self.memory.setText(self.memory_check.summary() + detecting)
        warning = self.memory_check.warning()
        self.memory_warning.setText(f"⚠ {warning}" if warning else "")
        self.memory_warning.setVisible(bool(warning))

    def validate(self) -> RunConfig | None:
        try:
            cfg = build_config(self.values())
        except ConfigError as exc:
            self.message.setText(f"<span style='color:#c53030'>✗ {exc}</span>")
            self.launch_button.setEnabled(False)
            return None
        self._update_memory(cfg)
        self.message.setText(
            f"<span style='color:#1f8a4c'>✓ Ready: {cfg.algorithm.upper()} on "
            f"{_short(cfg.resolved_model())}, {cfg.training.max_steps} steps.</span>"
        )
        self.launch_button.setEnabled(self.state.db is not None)
        return cfg

    def launch(self) -> None:
        cfg = self.validate()
        if cfg is None or self.state.db is None:
            return
        self.state.launch_config(cfg, cfg.name)
        self.state.sig_show_view.emit("dashboard")

    def load_demo(self) -> None:
        path = demo_config_path(self.state.db) if self.state.db else None
        if path is None or not path.is_file():
            QMessageBox.information(
                self, "RL Studio", "The bundled demo is not installed (engine/assets/demo/run.toml)."
            )
            return
        self.load_path(path)

    def load_toml(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load run config", "", "Run config (*.toml);;All files (*)"
        )
        if path:
            self.load_path(Path(path))

    def load_path(self, path: Path) -> bool:
        try:
            cfg = load_run_config(path)
        except ConfigError as exc:
            QMessageBox.warning(self, "RL Studio", str(exc))
            return False
        self.set_config(cfg, f"from {path}")
        return True

    def save_toml(self) -> None:
        values = self.values()
        try:
            cfg = config_from_dict(values_to_dict(values))
        except ConfigError as exc:
            QMessageBox.warning(self, "RL Studio", f"Fix the form first: {exc}")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save run config", f"{cfg.name or 'run'}.toml", "Run config (*.toml)"
        )
        if path:
            self.save_path(cfg, Path(path))

    @staticmethod
    def save_path(cfg: RunConfig, path: Path) -> None:
        text = cfg.to_toml(absolute_paths=True)
        tomllib.loads(text)  # what we write must read back
        path.write_text(text, encoding="utf-8")

    def edit_config(self, cfg: RunConfig, name: str) -> None:
        cfg.name = name
        self.set_config(cfg, "from a previous run: change what you like, then launch")
        self.state.sig_show_view.emit("launcher")


def _short(model: str) -> str:
    """A model's name for a one-line summary: a hub id as is, a folder by its last two parts."""
    path = Path(model)
    return "/".join(path.parts[-2:]) if path.is_absolute() else model
