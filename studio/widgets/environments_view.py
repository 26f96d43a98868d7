"""The Environments view: the agent environments a workspace knows (the built-in file manager and those its
runs trained with), their tools and tasks, and playing the agent by hand: pick a task, call tools with
JSON arguments, read what the model would see, and ask for the reward.

The environment runs in an engine process (`rl-studio-engine env play`, studio/state/environments.py), as
contained as in training; the studio never imports its code.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.contract.env_play import PlayObservation, PlayReady, PlayReward
from engine.contract.trajectory import ToolCall
from studio.state.environments import EnvironmentEntry, EnvPlay, list_environments, read_tasks, task_title
from studio.state.studio_state import StudioState
from studio.widgets.trajectory_view import call_html


def argument_template(parameters: list[str]) -> str:
    """`{"source": "", "destination": ""}`: the arguments to fill in for a tool."""
    return json.dumps(dict.fromkeys(parameters, ""))


class EnvironmentsView(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.entries: list[EnvironmentEntry] = []
        self.tasks: list[dict[str, Any]] = []
        self.play = EnvPlay(self)
        self.play.sig_ready.connect(self._ready)
        self.play.sig_observation.connect(self._observation)
        self.play.sig_reward.connect(self._reward)
        self.play.sig_error.connect(self._error)
        self.transcript_parts: list[str] = []

        title = QLabel("Environments")
        title.setObjectName("runTitle")
        self.environments = QListWidget()
        self.environments.setObjectName("environmentList")
        self.environments.setWordWrap(True)
        self.environments.currentRowChanged.connect(self._environment_chosen)
        self.task_files = QComboBox()
        self.task_files.setToolTip("The tasks file: a JSONL dataset, one row per task (reset(**row) gets it)")
        self.task_files.currentIndexChanged.connect(self._task_file_chosen)
        self.task_list = QListWidget()
        self.task_list.setObjectName("taskList")
        self.task_list.setWordWrap(True)
        self.task_list.itemActivated.connect(lambda _item: self.start_task())
        self.start_button = QPushButton("Play this task")
        self.start_button.setObjectName("primary")
        self.start_button.setToolTip("Start the environment on the selected task (Enter on a task does too)")
        self.start_button.clicked.connect(lambda: self.start_task())

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self._section("Environment"))
        left_layout.addWidget(self.environments, 1)
        left_layout.addWidget(self._section("Tasks"))
        left_layout.addWidget(self.task_files)
        left_layout.addWidget(self.task_list, 3)
        left_layout.addWidget(self.start_button)

        self.tools = QTextBrowser()
        self.tools.setObjectName("toolDocs")
        self.task_text = QLabel("Pick a task and press “Play this task”.")
        self.task_text.setWordWrap(True)
        self.task_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tool_choice = QComboBox()
        self.tool_choice.setToolTip("The tool to call")
        self.tool_choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.tool_choice.currentIndexChanged.connect(self._tool_chosen)
        self.arguments = QLineEdit()
        self.arguments.setPlaceholderText('{"folder": "inbox"}')
        self.arguments.setToolTip("The call's arguments as a JSON object, as a model writes them")
        self.arguments.returnPressed.connect(self.send_call)
        self.call_button = QPushButton("Call")
        self.call_button.clicked.connect(self.send_call)
        self.reward_button = QPushButton("End and get the reward")
        self.reward_button.clicked.connect(self.ask_reward)
        self.status = QLabel()
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        self.transcript = QTextBrowser()
        self.transcript.setObjectName("playTranscript")

        call_row = QHBoxLayout()
        call_row.addWidget(self.tool_choice)
        call_row.addWidget(self.arguments, 1)
        call_row.addWidget(self.call_button)
        call_row.addWidget(self.reward_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self._section("Tools"))
        right_layout.addWidget(self.tools, 2)
        right_layout.addWidget(self._section("Play the agent"))
        right_layout.addWidget(self.task_text)
        right_layout.addLayout(call_row)
        right_layout.addWidget(self.status)
        right_layout.addWidget(self.transcript, 3)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 6)
        layout.addWidget(title)
        layout.addWidget(split, 1)
        self._set_playing(False)
        state.sig_workspace_changed.connect(self.refresh)
        state.sig_runs_changed.connect(lambda _runs: self.refresh())
        self.refresh()

    @staticmethod
    def _section(text: str) -> QLabel:
        label = QLabel(text.upper())
        label.setObjectName("sectionTitle")
        return label

    # ---- environments and tasks ----------------------------------------------------------------------
    def refresh(self) -> None:
        """List the environments again (the workspace or its runs changed); keep the one chosen."""
        entries = list_environments(self.state.db.conn if self.state.db is not None else None)
        if [e.key for e in entries] == [e.key for e in self.entries] and [e.runs for e in entries] == [
            e.runs for e in self.entries
        ]:
            return
        current = self.current_entry()
        chosen = current.key if current is not None else None
        self.entries = entries
        self.environments.blockSignals(True)
        self.environments.clear()
        for entry in entries:
            self.environments.addItem(entry.title)
        keys = [e.key for e in entries]
        self.environments.blockSignals(False)
        self.environments.setCurrentRow(keys.index(chosen) if chosen in keys else 0)

    def current_entry(self) -> EnvironmentEntry | None:
        row = self.environments.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _environment_chosen(self, _row: int) -> None:
        entry = self.current_entry()
        self.task_files.blockSignals(True)
        self.task_files.clear()
        for path in entry.task_files if entry else []:
            self.task_files.addItem(path.rsplit("/", 1)[-1], path)
            self.task_files.setItemData(self.task_files.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        self.task_files.blockSignals(False)
        self._task_file_chosen()
        self.tools.setHtml(
            "<p style='color:#4a5568;'>Start a task: the tools are read from the environment.</p>"
        )

    def _task_file_chosen(self) -> None:
        path = self.task_files.currentData()
        self.tasks = []
        self.task_list.clear()
        if not path:
            self.task_list.addItem("No tasks file: this environment's runs name none.")
            return
        try:
            self.tasks = read_tasks(str(path))
        except OSError as exc:
            self.task_list.addItem(f"Cannot read {path}: {exc}")
            return
        for i, row in enumerate(self.tasks):
            self.task_list.addItem(task_title(i, row))
        self.task_list.setCurrentRow(0)

    # ---- playing -----------------------------------------------------------------------------------------
    def start_task(self, index: int | None = None) -> None:
        entry, path = self.current_entry(), self.task_files.currentData()
        index = self.task_list.currentRow() if index is None else index
        if entry is None or not path or not 0 <= index < len(self.tasks):
            self.status.setText("Pick an environment and a task first.")
            return
        self.task_list.setCurrentRow(index)
        self.transcript_parts = []
        self.transcript.clear()
        self._set_playing(False)
        self.status.setText(f"Starting {html.escape(entry.spec)} on task {index}…")
        if self.play.running and self.play.ready is not None and self.play.ready.environment == entry.spec:
            self.play.reset(index)  # the same environment: reset it, no new process
        else:
            self.play.start(entry, str(path), index)

    def _set_playing(self, playing: bool) -> None:
        for widget in (self.tool_choice, self.arguments, self.call_button, self.reward_button):
            widget.setEnabled(playing)

    def _ready(self, ready: PlayReady) -> None:
        self.tools.setHtml(self._tools_html(ready))
        self.tool_choice.blockSignals(True)
        self.tool_choice.clear()
        for tool in ready.tools:
            self.tool_choice.addItem(tool.name, tool.parameters)
        self.tool_choice.blockSignals(False)
        self._tool_chosen()
        task = html.escape(ready.prompt) + (f"<br><i>{html.escape(ready.task)}</i>" if ready.task else "")
        self.task_text.setText(f"<b>Task {ready.task_index}</b>: {task}")
        if ready.reset_error:
            self._append(
                f"<p style='color:#c53030;'><b>reset failed:</b> {html.escape(ready.reset_error)}</p>"
            )
        self.status.setText("Your move: pick a tool, fill in its arguments, press Call.")
        self._set_playing(True)
        self.arguments.setFocus()

    @staticmethod
    def _tools_html(ready: PlayReady) -> str:
        parts = [f"<p><b>{html.escape(ready.class_name)}</b> — {html.escape(ready.doc)}</p>"]
        for tool in ready.tools:
            parts.append(f"<p style='margin-bottom:0;'><code><b>{html.escape(tool.signature)}</b></code></p>")
            parts.append(f"<pre style='margin: 0 0 6px 12px; color:#4a5568;'>{html.escape(tool.doc)}</pre>")
            for problem in tool.problems:
                parts.append(f"<p style='color:#c05621;'>problem: {html.escape(problem)}</p>")
        if not ready.has_reward:
            parts.append("<p style='color:#4a5568;'>No get_reward: the rubric's other criteria score it.</p>")
        return "".join(parts)

    def _tool_chosen(self) -> None:
        parameters = self.tool_choice.currentData()
        self.arguments.setText(argument_template(list(parameters or [])))

    def send_call(self) -> None:
        tool = self.tool_choice.currentText()
        if not tool:
            return
        text = self.arguments.text().strip() or "{}"
        try:
            arguments: Any = json.loads(text)
        except ValueError:
            arguments = text  # sent as written: the environment records a malformed call, as a model's
        self.status.setText(f"Calling {html.escape(tool)}…")
        self.play.call(tool, arguments)

    def ask_reward(self) -> None:
        self.play.reward()

    def _observation(self, obs: PlayObservation) -> None:
        call = ToolCall(obs.tool, obs.arguments, obs.result, obs.valid, obs.error, obs.seconds)
        self._append(
            f"<p style='margin: 6px 0 0 0; color:#718096;'>Turn {obs.turn}</p>" + call_html(call, False)
        )
        self.status.setText("Call another tool, or end the episode to get the reward.")

    def _reward(self, reward: PlayReward) -> None:
        colour = "#2f855a" if reward.success else "#c53030"
        value = "–" if reward.reward is None else f"{reward.reward:g}"
        why = f" ({html.escape(reward.reward_error)})" if reward.reward_error else ""
        verdict = "success" if reward.success else "not solved" if reward.success is not None else "no reward"
        self._append(
            f"<hr><p style='font-size: 12pt; color:{colour};'><b>Reward {value}</b> — {verdict}{why}</p>"
        )
        self.status.setText("Episode over. Play the task again, or pick another.")
        self._set_playing(False)
        self.last_reward = reward

    def _error(self, message: str) -> None:
        self.status.setText(f"<span style='color:#c53030;'>{html.escape(message)}</span>")
        if not self.play.running:
            self._set_playing(False)

    def _append(self, part: str) -> None:
        self.transcript_parts.append(part)
        self.transcript.setHtml("".join(self.transcript_parts))
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """For `rl-studio --screenshot` and tests: process events until the environment answered."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.play.ready is None:
            QApplication.processEvents()
            time.sleep(0.01)
        return self.play.ready is not None

    def closeEvent(self, event: Any) -> None:
        self.play.stop()
        super().closeEvent(event)
