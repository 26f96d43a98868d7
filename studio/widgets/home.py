"""The first screen: what RL Studio does, and the demo one click away."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.contract.paths import ICON
from studio.state.authored import (
    agent_demo_available,
    agent_demo_config_path,
    demo_available,
    demo_config_path,
)
from studio.state.studio_state import StudioState


def _card(title: str, text: str, button: QPushButton, note: QLabel | None = None) -> QFrame:
    card = QFrame()
    card.setObjectName("card")
    layout = QVBoxLayout(card)
    layout.setContentsMargins(18, 16, 18, 16)
    heading = QLabel(f"<h3 style='margin:0'>{title}</h3>")
    body = QLabel(text)
    body.setWordWrap(True)
    body.setObjectName("muted")
    layout.addWidget(heading)
    layout.addWidget(body, 1)
    if note is not None:
        layout.addWidget(note)
    row = QHBoxLayout()
    row.addWidget(button)
    row.addStretch(1)
    layout.addLayout(row)
    return card


def _launch_card(
    title: str, text: str, label: str, slot: Callable[[], None]
) -> tuple[QFrame, QPushButton, QLabel]:
    """A card with one button that starts something, and a warning line shown when it cannot."""
    button = QPushButton(label)
    button.clicked.connect(slot)
    note = QLabel()
    note.setWordWrap(True)
    note.setObjectName("warning")
    return _card(title, text, button, note), button, note


class HomeView(QWidget):
    sig_open_workspace = Signal()

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        icon = QLabel()
        icon.setPixmap(QIcon(str(ICON)).pixmap(64, 64))
        title = QLabel("<h1 style='margin:0'>RL Studio</h1>")
        subtitle = QLabel(
            "Reinforcement-learning post-training for language models (GRPO or PPO, with LoRA), "
            "on your own workstation. Write rewards, launch runs, watch them learn."
        )
        subtitle.setWordWrap(True)
        subtitle.setObjectName("muted")
        head_text = QVBoxLayout()
        head_text.addWidget(title)
        head_text.addWidget(subtitle)
        head = QHBoxLayout()
        head.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        head.addSpacing(12)
        head.addLayout(head_text, 1)

        self.demo_card, self.demo_button, self.demo_note = _launch_card(
            "Try it: the demo",
            "Teach a tiny bundled model to answer arithmetic in a fixed format with GRPO + LoRA: a minute or "
            "two on a laptop CPU, nothing to download. Watch the reward rise on the dashboard, then read "
            "what the model wrote.",
            "▶  Run the demo",
            self.run_demo,
        )
        self.demo_button.setObjectName("primary")
        self.agent_demo_card, self.agent_demo_button, self.agent_demo_note = _launch_card(
            "Try it: an agent",
            "A tiny bundled model calls tools over several turns to move files and write a manifest in an "
            "in-memory file tree. GRPO + LoRA trains it on the task's outcome for a few minutes; then read "
            "its trajectories turn by turn in the inspector.",
            "▶  Train the agent",
            self.run_agent_demo,
        )
        self.agent_demo_button.setToolTip(
            "Train the bundled tool-using model on the file manager (Ctrl+Shift+G)"
        )
        new_button = QPushButton("Open the launcher")
        new_button.clicked.connect(lambda: state.sig_show_view.emit("launcher"))
        new_card = _card(
            "Your own run",
            "Pick a model (a local folder or a Hugging Face id), a JSONL dataset and a rubric; set LoRA and "
            "GRPO or PPO options; launch. Every option explains itself when you hover it.",
            new_button,
        )
        open_button = QPushButton("Open workspace…")
        open_button.clicked.connect(self.sig_open_workspace.emit)
        self.workspace_card = _card("Workspace", "", open_button)
        cards = QGridLayout()
        cards.setSpacing(14)
        cards.addWidget(self.demo_card, 0, 0)
        cards.addWidget(self.agent_demo_card, 0, 1)
        cards.addWidget(new_card, 1, 0)
        cards.addWidget(self.workspace_card, 1, 1)

        recent_title = QLabel("RECENT RUNS")
        recent_title.setObjectName("sectionTitle")
        self.recent = QListWidget()
        self.recent.setObjectName("recentRuns")
        self.recent.itemActivated.connect(self._open_run)
        self.recent.itemClicked.connect(self._open_run)

        column = QVBoxLayout()
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(head)
        column.addSpacing(18)
        column.addLayout(cards)
        column.addSpacing(18)
        column.addWidget(recent_title)
        self.recent.setMaximumHeight(8 * 24 + 8)
        column.addWidget(self.recent)
        column.addStretch(1)
        holder = QWidget()
        holder.setLayout(column)
        holder.setMaximumWidth(1100)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(28, 24, 28, 20)
        outer.addWidget(holder)
        self._recent_lines: list[tuple[int, str]] = []
        state.sig_workspace_changed.connect(self.refresh)
        state.sig_runs_changed.connect(lambda _runs: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        for button, note, available, missing in (
            (
                self.demo_button,
                self.demo_note,
                demo_available(),
                "The bundled demo is not installed here (engine/assets/demo/run.toml or the model is missing); "
                "build it with engine/assets/build_demo.py.",
            ),
            (
                self.agent_demo_button,
                self.agent_demo_note,
                agent_demo_available(),
                "The agent demo is not installed here (engine/assets/demo_agent/run.toml or its model is "
                "missing); build it with python -m engine.assets.build_demo --agent.",
            ),
        ):
            button.setEnabled(available and self.state.db is not None)
            note.setText("" if available else missing)
            note.setVisible(not available)
        db = self.state.db
        body = self.workspace_card.findChild(QLabel, "muted")
        runs = self.state.runs()
        if body is not None:
            if db is None:
                body.setText("No workspace is open.")
            else:
                active = sum(r.active for r in runs)
                body.setText(
                    f"One file holds your datasets, rubrics and every run:<br><code>{db.path}</code><br>"
                    f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
                    + (f", {active} training now" if active else "")
                )
        lines = [
            (run.id, f"#{run.id}  {run.name}   ·   {run.status}   ·   step {run.step}/{run.max_steps}")
            for run in runs[:8]
        ]
        if lines == self._recent_lines and runs:
            return  # unchanged: keep the selection and scroll position
        self._recent_lines = lines
        self.recent.clear()
        for run_id, text in lines:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, run_id)
            self.recent.addItem(item)
        if not runs:
            item = QListWidgetItem("No runs yet. Run the demo to see what a run looks like.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.recent.addItem(item)

    def run_demo(self) -> None:
        if self.state.db is None:
            return
        self.state.launch(demo_config_path(self.state.db), name="demo")
        self.state.sig_show_view.emit("dashboard")

    def run_agent_demo(self) -> None:
        if self.state.db is None:
            return
        self.state.launch(agent_demo_config_path(), name="demo-agent")
        self.state.sig_show_view.emit("dashboard")

    def _open_run(self, item: QListWidgetItem) -> None:
        run_id = item.data(Qt.ItemDataRole.UserRole)
        if run_id is not None:
            self.state.select_run(int(run_id))
            self.state.sig_show_view.emit("dashboard")
