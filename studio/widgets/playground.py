"""The playground: the base model and runs' trained adapters answer one prompt side by side, streamed, scored.

Left: the runs (checkable), the prompt (typed, or a row of the first checked run's train/eval data) and the
sampling settings. Right: one column per answer, its text growing as tokens arrive and the rubric's scores
under it. Generation happens in playground engine processes (studio/state/playground.py).
"""

from __future__ import annotations

import html

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt
from PySide6.QtGui import QFont, QKeySequence, QShortcut, QShowEvent, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.contract.paths import run_dir
from engine.contract.playground import RowRef
from studio.models.datasets_model import JsonlPreviewModel
from studio.state.playground import Column, ColumnKey, PlaygroundState, Request, run_config
from studio.state.studio_state import StudioState
from studio.widgets.error_banner import ErrorBanner

RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 1
MAX_TEXT_HEIGHT = 480


def _mono() -> QFont:
    font = QFont("DejaVu Sans Mono")
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font


class AnswerCard(QFrame):
    """One source's answer: title, streamed text, scores."""

    def __init__(self, column: Column, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.key = column.key
        self.title = QLabel(f"<b>{html.escape(column.title)}</b>")
        self.title.setToolTip(column.base_model)
        self.state_label = QLabel("waiting…")
        self.state_label.setObjectName("muted")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(_mono())
        self.text.setFrameShape(QFrame.Shape.NoFrame)
        self.scores = QLabel("")
        self.scores.setWordWrap(True)
        self.scores.setTextFormat(Qt.TextFormat.RichText)
        self.scores.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.title.setMinimumWidth(1)  # a long run name is cut, not the card widened
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.state_label)
        layout.addWidget(self.text)
        layout.addWidget(self.scores)
        layout.addStretch(1)
        self.setMinimumWidth(190)
        self._fit_text()

    def _fit_text(self) -> None:
        """As tall as the answer (scores right under it), up to MAX_TEXT_HEIGHT; then it scrolls."""
        lines = max(3, int(self.text.document().size().height()))
        height = lines * self.text.fontMetrics().lineSpacing() + 16
        self.text.setFixedHeight(min(height, MAX_TEXT_HEIGHT))

    def append(self, text: str) -> None:
        self.state_label.setText("generating…")
        cursor = self.text.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.text.setTextCursor(cursor)
        self._fit_text()

    def finish(self, column: Column) -> None:
        if column.error:
            self.state_label.setText("failed")
            self.scores.setText(f"<span style='color:#c53030'>{html.escape(column.error)}</span>")
            return
        done = column.done
        assert done is not None
        if (
            self.text.toPlainText() != done.text
        ):  # the whole text is the truth (a token may have been dropped)
            self.text.setPlainText(done.text)
        if done.rendered_prompt:
            self.text.setToolTip(f"The model was given:\n{done.rendered_prompt}")
        ending = "stopped" if done.stopped else ("max tokens" if done.truncated else "end of text")
        self.state_label.setText(f"{done.tokens} tokens · {ending}")
        if done.stopped:
            self.scores.setText("<span style='color:#718096'>Stopped: not scored.</span>")
            return
        rows = []
        for name, value in done.scores.items():
            shown = "–" if value is None else f"{value:.3f}"
            error = done.errors.get(name)
            note = f" <span style='color:#c53030'>{html.escape(error)}</span>" if error else ""
            rows.append(
                f"<tr><td>{html.escape(name)}</td><td align='right'>&nbsp;{shown}</td><td>{note}</td></tr>"
            )
        reward = "–" if done.reward is None else f"{done.reward:.3f}"
        total_error = done.errors.get("total")
        rows.append(
            f"<tr><td><b>reward</b></td><td align='right'>&nbsp;<b>{reward}</b></td><td>"
            + (f" <span style='color:#c53030'>{html.escape(total_error)}</span>" if total_error else "")
            + "</td></tr>"
        )
        rubric = (
            f"<br><span style='color:#718096'>scored by {html.escape(done.rubric)}</span>"
            if done.rubric
            else ""
        )
        self.scores.setText(f"<table cellspacing='0'>{''.join(rows)}</table>{rubric}")


class PlaygroundView(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.playground = PlaygroundState(state, self)
        self.cards: dict[ColumnKey, AnswerCard] = {}

        # ---- runs ----
        self.runs = QListWidget()
        self.runs.setToolTip(
            "Each checked run's trained adapter answers (its adapter/ folder or its last checkpoint)"
        )
        self.runs.itemChanged.connect(self._runs_checked)
        # ---- prompt: typed or a dataset row ----
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Type a prompt; Ctrl+Enter generates")
        self.prompt.setFont(_mono())
        self.split = QComboBox()
        self.split.addItems(["train", "eval"])
        self.split.currentTextChanged.connect(lambda _t: self._load_rows())
        self.rows_model = JsonlPreviewModel()
        self.rows = QTableView()
        self.rows.setModel(self.rows_model)
        self.rows.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.rows.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.rows.verticalHeader().setDefaultSectionSize(22)
        self.rows.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.rows.horizontalHeader().setStretchLastSection(True)
        self.rows.doubleClicked.connect(lambda _i: self.generate())
        self._rows_run: int | None = None
        self._adopted_selection: list[int] = []
        self.rows_note = QLabel("")
        self.rows_note.setObjectName("muted")
        self.rows_note.setWordWrap(True)
        rows_page = QWidget()
        rows_layout = QVBoxLayout(rows_page)
        rows_layout.setContentsMargins(0, 4, 0, 0)
        split_row = QHBoxLayout()
        split_row.addWidget(QLabel("Split"))
        split_row.addWidget(self.split)
        split_row.addWidget(self.rows_note, 1)
        rows_layout.addLayout(split_row)
        rows_layout.addWidget(self.rows, 1)
        self.source_tabs = QTabWidget()
        self.source_tabs.addTab(self.prompt, "Prompt")
        self.source_tabs.addTab(rows_page, "Dataset row")
        # ---- sampling ----
        self.include_base = QCheckBox("Base model answers too")
        self.include_base.setChecked(True)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 8192)
        self.max_tokens.setValue(64)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 5.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(1.0)
        self.temperature.setToolTip("0 = greedy (the most likely token every time)")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2_000_000_000)
        self.seed.setToolTip("Every answer samples from this seed")
        settings = QFormLayout()
        settings.addRow(self.include_base)
        settings.addRow("Max new tokens", self.max_tokens)
        settings.addRow("Temperature", self.temperature)
        settings.addRow("Seed", self.seed)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("primary")
        self.generate_button.setToolTip("Generate with every checked run and the base model (Ctrl+Enter)")
        self.generate_button.clicked.connect(self.generate)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.playground.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(self.generate_button)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 6, 0)
        self.runs.setMaximumHeight(150)
        for title, widget, stretch in (("RUNS", self.runs, 0), ("ASK", self.source_tabs, 1)):
            label = QLabel(title)
            label.setObjectName("sectionTitle")
            left_layout.addWidget(label)
            left_layout.addWidget(widget, stretch)
        left_layout.addLayout(settings)
        left_layout.addLayout(buttons)

        # ---- answers ----
        self.status = QLabel("Check runs, type a prompt or pick a dataset row, and press Generate.")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        self.banner = ErrorBanner()
        self.asked = QLabel("")
        self.asked.setWordWrap(True)
        self.asked.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.asked.setVisible(False)
        self.answers = QWidget()
        self.answers_layout = QHBoxLayout(self.answers)
        self.answers_layout.setContentsMargins(0, 0, 0, 0)
        self.empty = QLabel("The answers appear here, one column per model, streamed as they are generated.")
        self.empty.setObjectName("emptyState")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.answers_layout.addWidget(self.empty)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.answers)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 0, 0, 0)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self.status)
        right_layout.addWidget(self.asked)
        right_layout.addWidget(scroll, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([330, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.addWidget(QLabel("<h2>Playground</h2>"))
        layout.addWidget(splitter, 1)

        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, self.generate)
        self.playground.sig_columns_reset.connect(self._columns_reset)
        self.playground.sig_text.connect(self._text)
        self.playground.sig_column_finished.connect(self._column_finished)
        self.playground.sig_busy.connect(self._busy)
        self.playground.sig_status.connect(self.status.setText)
        self.playground.sig_engine_died.connect(self._engine_died)
        state.sig_runs_changed.connect(lambda _runs: self.refresh_runs())
        state.sig_workspace_changed.connect(self.refresh_runs)
        self.refresh_runs()

    # ---- runs and rows ---------------------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        """Coming here after runs were selected elsewhere (the sidebar, its "Open in playground"): check them."""
        super().showEvent(event)
        selection = [r for r in [self.state.current_run, *self.state.compare_runs] if r is not None]
        if selection and selection != self._adopted_selection:
            self._adopted_selection = selection
            self.set_checked_runs(selection)

    def refresh_runs(self) -> None:
        """The workspace's runs, newest first, keeping what is checked; a run without an adapter is disabled."""
        checked = set(self.checked_runs())
        self.runs.blockSignals(True)
        self.runs.clear()
        db = self.state.db
        for run in self.state.runs():
            has_adapter = db is not None and (
                (run_dir(db.path, run.id) / "adapter").is_dir() or db.has_complete_checkpoint(run.id)
            )
            note = "" if has_adapter else "  ·  no adapter yet"
            item = QListWidgetItem(f"{run.label}  ·  {run.status}, step {run.step}{note}")
            item.setData(RUN_ID_ROLE, run.id)
            item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsSelectable)
            if has_adapter:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEnabled)
            else:
                item.setToolTip("No trained adapter yet: no adapter/ folder and no complete checkpoint")
            item.setCheckState(
                Qt.CheckState.Checked if run.id in checked and has_adapter else Qt.CheckState.Unchecked
            )
            self.runs.addItem(item)
        self.runs.blockSignals(False)
        self._load_rows()

    def checked_runs(self) -> list[int]:
        return [
            int(item.data(RUN_ID_ROLE))
            for i in range(self.runs.count())
            if (item := self.runs.item(i)).checkState() == Qt.CheckState.Checked
        ]

    def set_checked_runs(self, run_ids: list[int]) -> None:
        for i in range(self.runs.count()):
            item = self.runs.item(i)
            if item.flags() & Qt.ItemFlag.ItemIsEnabled:
                wanted = int(item.data(RUN_ID_ROLE)) in run_ids
                item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)

    def _runs_checked(self, _item: QListWidgetItem) -> None:
        self._load_rows()

    def _load_rows(self) -> None:
        """The rows of the first checked run's train or eval file."""
        runs = self.checked_runs()
        cfg = run_config(self.state, runs[0]) if runs else None
        self._rows_run = runs[0] if runs else None
        name = (cfg.data.train if self.split.currentText() == "train" else cfg.data.eval) if cfg else ""
        if cfg is None or not name:
            self.rows_note.setText(
                "Check a run to see its data." if cfg is None else "This run has no eval data."
            )
            if self.rows_model.path is not None:
                self._set_rows_model(JsonlPreviewModel())
            return
        path = cfg.resolve(name)
        if self.rows_model.path != path:
            self._set_rows_model(JsonlPreviewModel(path))
        self.rows_note.setText(self.rows_model.error or f"#{runs[0]}: {path.name}")

    def _set_rows_model(self, model: JsonlPreviewModel) -> None:
        old = self.rows_model
        self.rows_model = model
        self.rows.setModel(model)
        old.deleteLater()
        for col in range(model.columnCount()):
            self.rows.setColumnWidth(col, 260 if col == 0 else 120)

    def select_row(self, index: int) -> None:
        self.source_tabs.setCurrentIndex(1)
        while self.rows_model.rowCount() <= index and self.rows_model.canFetchMore(QModelIndex()):
            self.rows_model.fetchMore(QModelIndex())
        at = self.rows_model.index(index, 0)
        self.rows.selectionModel().setCurrentIndex(
            at, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.rows.scrollTo(at)

    # ---- generating --------------------------------------------------------------------------------------------
    def generate(self) -> None:
        request = Request(
            runs=self.checked_runs(),
            include_base=self.include_base.isChecked(),
            max_new_tokens=self.max_tokens.value(),
            temperature=round(self.temperature.value(), 3),
            seed=self.seed.value(),
        )
        if self.source_tabs.currentIndex() == 0:
            request.prompt = self.prompt.toPlainText()
        else:
            selected = self.rows.selectionModel().selectedRows()
            if not selected or self._rows_run is None:
                self.status.setText("Pick a dataset row first (or switch to Prompt and type one).")
                return
            request.row = RowRef(run=self._rows_run, split=self.split.currentText(), index=selected[0].row())  # type: ignore[arg-type]
        problem = self.playground.generate(request)
        if problem:
            self.status.setText(problem)

    def _columns_reset(self, columns: list[Column]) -> None:
        self.banner.clear()
        self.asked.setVisible(False)
        while self.answers_layout.count():
            item = self.answers_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None and widget is not self.empty:
                widget.deleteLater()
        self.empty.setVisible(not columns)
        if not columns:
            self.answers_layout.addWidget(self.empty)
        self.cards = {}
        for column in columns:
            card = AnswerCard(column)
            self.cards[column.key] = card
            self.answers_layout.addWidget(card, 1)

    def _text(self, key: ColumnKey, text: str) -> None:
        card = self.cards.get(key)
        if card is not None:
            card.append(text)

    def _column_finished(self, column: Column) -> None:
        card = self.cards.get(column.key)
        if card is not None:
            card.finish(column)
        if column.done is not None and column.done.rendered_prompt and not self.asked.isVisible():
            # What the model was given, exactly (chat template applied), once per request.
            shown = html.escape(column.done.rendered_prompt).replace("\n", "<br>")
            self.asked.setText(
                f"<span style='color:#718096'>The model was given:</span> <code>{shown}</code>"
            )
            self.asked.setVisible(True)

    def _busy(self, busy: bool) -> None:
        self.stop_button.setEnabled(busy)

    def _engine_died(self, message: str) -> None:
        first, _, details = message.partition("\n\n")
        self.banner.show_error(first, details, title="The playground engine stopped")

    def shutdown(self) -> None:
        self.playground.shutdown()

    def prepare_screenshot(self, row: int = 0, timeout_s: float = 300.0) -> None:
        """`rl-studio --screenshot --view playground --run ... [--row N]`: the checked runs answer row N of
        the first run's eval data (or the typed prompt), and the screenshot waits for every answer."""
        import time

        from PySide6.QtWidgets import QApplication

        if not self.prompt.toPlainText().strip():
            self.split.setCurrentText("eval" if self._has_eval() else "train")
            self.select_row(row)
        self.generate()
        deadline = time.monotonic() + timeout_s
        while self.playground.busy and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.02)

    def _has_eval(self) -> bool:
        runs = self.checked_runs()
        cfg = run_config(self.state, runs[0]) if runs else None
        return bool(cfg and cfg.data.eval)
