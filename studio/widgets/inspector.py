"""The rollout inspector: every completion of a run with its scores, filters and full-text search, the
prompt group side by side, one prompt over training, labels and export. See docs/inspector.md.

Keys: j/k (or ↓/↑) next/previous rollout · Enter the group (←/→ or h/l between completions, Esc back)
· + / - good / bad (again to clear) · 0 clear · N note · P this prompt over training · G the group
· T the trajectory (agent runs) · E the tokens as a heat map
· W whitespace and special tokens · / search · Ctrl+E export.
"""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.contract.protocol import Event, RolloutsWritten
from studio.models.rollouts_model import RolloutsModel
from studio.state import labels as labels_store
from studio.state import rollout_groups as rg
from studio.state.rollout_export import ExportOptions
from studio.state.rollout_query import RolloutFilter
from studio.state.studio_state import StudioState
from studio.state.workspace import RunRow
from studio.widgets.agreement_view import AgreementDialog
from studio.widgets.inspector_agent import AgentTabs
from studio.widgets.inspector_cells import RolloutCells
from studio.widgets.inspector_export import ExportDialog, ExportJob
from studio.widgets.inspector_filters import FilterBar
from studio.widgets.inspector_group import GroupView, PromptHistoryView
from studio.widgets.inspector_text import search_words
from studio.widgets.prompt_status_view import PromptStatusView
from studio.widgets.token_heatmap import TokenHeatmap

SELECT_DEBOUNCE_MS = 60
COLUMN_WIDTHS = {"Step": 48, "Prompt": 150, "Reward": 64, "Adv.": 64, "Tokens": 54, "Trunc.": 46, "Label": 48}


class InspectorView(QWidget):
    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.model = RolloutsModel(RolloutCells(), self)
        self.export_job: ExportJob | None = None
        self._select_timer = QTimer(self)
        self._select_timer.setSingleShot(True)
        self._select_timer.setInterval(SELECT_DEBOUNCE_MS)

        self.title = QLabel()
        self.title.setObjectName("runTitle")
        self.status = QLabel()
        self.status.setObjectName("muted")
        self.export_button = QPushButton("Export JSONL…")
        self.export_button.setToolTip("Export labelled or top-reward rollouts as SFT rows or pairs (Ctrl+E)")
        self.export_button.clicked.connect(self.export_dialog)
        self.agreement: AgreementDialog | None = None
        self.agreement_button = QPushButton("Agreement…")
        self.agreement_button.setToolTip(
            "How each criterion agrees with your thumbs up and down on this run's rollouts"
        )
        self.agreement_button.clicked.connect(self.open_agreement)
        self.filters = FilterBar()
        self.filters.sig_changed.connect(self._filter_changed)

        self.table = QTableView()
        self.table.setObjectName("rolloutsTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        rows = self.table.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(22)
        self.table.horizontalHeader().setHighlightSections(False)
        self.table.installEventFilter(self)
        self.table.doubleClicked.connect(lambda _i: self.open_group())
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._select_timer.start())
        self.empty = QLabel()
        self.empty.setObjectName("emptyState")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.linkActivated.connect(lambda _link: self.filters.clear())
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.empty)

        self.group = GroupView()
        self.group.sig_label.connect(self.toggle_label)
        self.group.sig_note.connect(self.edit_note)
        self.group.sig_back.connect(self.table.setFocus)
        self.history = PromptHistoryView()
        self.history.sig_open_group.connect(self._open_from_history)
        self.history.sig_back.connect(self.table.setFocus)
        self.visible_ws = QCheckBox("Whitespace && special tokens (W)")
        self.visible_ws.setToolTip("Show spaces as ·, newlines as ⏎, tabs as →, and mark <|special|> tokens")
        self.visible_ws.toggled.connect(self._rerender)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.group, "Group")
        self.tabs.addTab(self.history, "This prompt over training")
        self.prompts = PromptStatusView()
        self.prompts.sig_show_prompt.connect(self._show_prompt)
        self.tabs.addTab(self.prompts, "Prompts")
        self.tokens = TokenHeatmap()  # the selected completion's tokens coloured by log-prob, entropy, ...
        self.tabs.addTab(self.tokens, "Tokens")
        self.tabs.setCornerWidget(self.visible_ws)
        self.tabs.currentChanged.connect(lambda _i: self._select_timer.start())
        # Agent runs: the trajectory, the group's trajectories and where agents fail (inspector_agent.py).
        self.agent = AgentTabs(self.tabs, self.filters, self)
        self.agent.sig_examples.connect(self._show_examples)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table_stack)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)

        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addSpacing(12)
        head.addWidget(self.status, 1)
        head.addWidget(self.agreement_button)
        head.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 6)
        layout.addLayout(head)
        layout.addWidget(self.filters)
        layout.addWidget(self.splitter, 1)

        self._select_timer.timeout.connect(self._show_selection)
        self._shown_group: tuple[int, int] | None = None
        self._shown_history: int | None = None
        self._pending_select: int | None = None
        self._sized_for: tuple[str, ...] = ()
        self._source_stale = True
        self._split_once = False
        self._shortcuts()

        self.model.sig_state_changed.connect(self._update_status)
        self.model.sig_rows_arrived.connect(self._rows_arrived)
        self.model.sig_failed.connect(lambda message: self.status.setText(html.escape(message)))
        self.model.sig_columns_changed.connect(self._size_columns)
        state.sig_workspace_changed.connect(self._workspace_changed)
        state.sig_current_run_changed.connect(self._run_changed)
        state.sig_runs_changed.connect(self._runs_changed)
        state.sig_engine_event.connect(self._engine_event)
        state.sig_show_rollouts.connect(self.show_alert_examples)
        state.watcher.sig_run_restarted.connect(self._run_restarted)
        self._workspace_changed()

    # ---- keys ----------------------------------------------------------------------------------------
    def _shortcuts(self) -> None:
        keys = {
            "J": lambda: self.step_selection(1),
            "K": lambda: self.step_selection(-1),
            "+": lambda: self.toggle_label(self.target(), 1),
            "=": lambda: self.toggle_label(self.target(), 1),
            "-": lambda: self.toggle_label(self.target(), -1),
            "0": lambda: self.clear_label(self.target()),
            "N": lambda: self.edit_note(self.target()),
            "P": self.open_history,
            "G": lambda: self.tabs.setCurrentWidget(self.group),
            "E": lambda: self.tabs.setCurrentWidget(self.tokens),
            "T": self.open_trajectory,
            "W": self.visible_ws.toggle,
            "/": self.focus_search,
            "Ctrl+F": self.focus_search,
            "Ctrl+E": self.export_dialog,
        }
        for key, slot in keys.items():
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if (
            obj is self.table
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            self.open_group()
            return True
        return super().eventFilter(obj, event)

    def focus_search(self) -> None:
        self.filters.search.setFocus()
        self.filters.search.selectAll()

    def step_selection(self, delta: int) -> None:
        """Select the next (1) or previous (-1) rollout in the table."""
        if self.model.rowCount() == 0:
            return
        row = self.table.currentIndex().row()
        row = max(0, min(self.model.rowCount() - 1, (row if row >= 0 else -1) + delta))
        self.table.setCurrentIndex(self.model.index(row, 0))
        if not self.group.hasFocus():
            self.table.setFocus()

    def target(self) -> int | None:
        """The rollout a label key applies to: the current card in the group view, else the table's row."""
        if self.group.hasFocus() and self.group.current_id() is not None:
            return self.group.current_id()
        r = self.model.rollout(self.table.currentIndex().row())
        return r.id if r else None

    def prepare_screenshot(self, timeout_s: float = 5.0) -> None:
        """For `rl-studio --screenshot`: wait until the first rows and their group are on screen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (
            self.model.loading or (self.model.rowCount() > 0 and not self._detail_shown())
        ):
            QApplication.processEvents()
            time.sleep(0.01)

    def _detail_shown(self) -> bool:
        if self.agent.owns_current_tab():
            return (
                self.agent.timeline.rollout is not None
                or self.tabs.currentWidget() is not self.agent.timeline
            )
        if self.tabs.currentWidget() is self.tokens:
            return self.tokens.rollout_id is not None
        return self.group.detail is not None

    # ---- following the state ---------------------------------------------------------------------------
    def _workspace_changed(self) -> None:
        self._run_changed(self.state.current_run)

    def _run_changed(self, run_id: int | None) -> None:
        # A hidden inspector reads nothing: it catches up when it is shown (showEvent).
        self._source_stale = not self.isVisible()
        if not self._source_stale:
            self._load_run(run_id)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._split_once:
            self._split_once = True
            total = max(self.splitter.height(), 400)
            self.splitter.setSizes([total * 11 // 20, total * 9 // 20])  # the table a little taller
        if self._source_stale:
            self._source_stale = False
            self._load_run(self.state.current_run)
        else:
            self.model.poll_tail()

    def _load_run(self, run_id: int | None) -> None:
        path = self.state.db.path if self.state.db else None
        self._shown_group = self._shown_history = None
        self.group.clear(
            "Select a rollout to see its group: every completion to the same prompt at that step."
        )
        self.history.clear("Select a rollout, then press P to see its prompt at every step it was sampled.")
        self.tokens.clear("Select a rollout to see its tokens.")
        self.model.set_source(path, run_id)
        self.agent.set_run(path, self.model.conn, run_id, self.model.weights)
        self.prompts.set_run(self.model.conn, run_id)
        self.group.rendered_prompts = (
            rg.records_rendered_prompts(self.model.conn, run_id) if self.model.conn else None
        )
        if self.agreement is not None:
            self.agreement.view.set_run(self.model.conn, run_id)
        self._update_title()

    def _runs_changed(self, runs: list[RunRow]) -> None:
        if self.isVisible() and any(r.id == self.model.run_id for r in runs):
            self._update_title()
            self.model.poll_tail()  # a run's step moves after its rollouts are committed

    def _engine_event(self, _proc: object, event: Event) -> None:
        if isinstance(event, RolloutsWritten) and event.run_id == self.model.run_id and self.isVisible():
            self.model.poll_tail()

    def _run_restarted(self, run_id: int) -> None:
        if run_id == self.model.run_id:
            self.model.reload()  # a resume forgets the steps after its checkpoint

    def _filter_changed(self, flt: RolloutFilter) -> None:
        current = self.target()
        self._pending_select = current
        self.model.set_filter(flt)
        self._rerender()

    # ---- the table ---------------------------------------------------------------------------------
    def _size_columns(self) -> None:
        names = tuple(self.model.column_name(c) for c in range(self.model.columnCount()))
        if names == self._sized_for:
            return  # a new filter: keep the widths the user chose
        self._sized_for = names
        header = self.table.horizontalHeader()
        for col in range(self.model.columnCount()):
            name = self.model.column_name(col)
            if name == "Completion":
                header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
                continue
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            width = COLUMN_WIDTHS.get(name, 76 if name != "Errors" else 90)
            header.resizeSection(col, max(width, header.fontMetrics().horizontalAdvance(name) + 18))

    def _rows_arrived(self, first: bool) -> None:
        if first and not self.agent.active:
            self.agent.recheck()
        if not first and self.table.currentIndex().isValid():
            return
        row = self.model.row_of(self._pending_select) if self._pending_select is not None else -1
        if first or row >= 0:
            self.table.setCurrentIndex(self.model.index(max(row, 0), 0))
            self._pending_select = None

    def _show_selection(self) -> None:
        r = self.model.rollout(self.table.currentIndex().row())
        conn = self.model.conn
        if r is None or conn is None or self.model.run_id is None:
            return
        if self.agent.owns_current_tab():
            self.agent.show_selection(r.id, r.group_id)
            return
        if self.tabs.currentWidget() is self.tokens:
            self.tokens.show_rollout(conn, r.id)
            return
        words = search_words(self.model.filter.search)
        visible = self.visible_ws.isChecked()
        shown = self._shown_group
        if self.tabs.currentWidget() is self.group and shown is not None and shown[0] == r.group_id:
            ids = [x.id for x in self.group.detail.rollouts] if self.group.detail else []
            if r.id in ids:  # another completion of the group on screen: outline it, read nothing
                self.group.set_current(ids.index(r.id), announce=False)
                self._shown_group = (r.group_id, r.id)
        if self.tabs.currentWidget() is self.group and self._shown_group != (r.group_id, r.id):
            detail = rg.group_detail(conn, r.group_id)
            if detail is not None:
                self.group.show_group(detail, self.model.criteria, self.model.weights, r.id, visible, words)
                self._shown_group = (r.group_id, r.id)
        if self.tabs.currentWidget() is self.history and self._shown_history != r.group_id:
            groups, total = rg.prompt_history(conn, self.model.run_id, r.group_id)
            self.history.show_history(groups, total, visible)
            self._shown_history = r.group_id

    def _rerender(self) -> None:
        self.group.rerender(self.visible_ws.isChecked(), search_words(self.model.filter.search))
        self._shown_history = None
        if self.tabs.currentWidget() is self.history:
            self._select_timer.start()

    def open_group(self) -> None:
        """Enter: the selected rollout's group, with the keyboard in it."""
        self.tabs.setCurrentWidget(self.group)
        self._show_selection()
        self.group.setFocus()

    def open_agreement(self) -> AgreementDialog:
        """The Agreement dialog: each criterion against the run's labels (non-modal)."""
        if self.agreement is None:
            self.agreement = AgreementDialog(self)
            self.agreement.view.sig_select_rollout.connect(self._select_disagreement)
            self.agreement.view.sig_show_rollouts.connect(self.show_rollouts)
        self.agreement.view.set_run(self.model.conn, self.model.run_id)
        self.agreement.show()
        self.agreement.raise_()
        return self.agreement

    def show_rollouts(self, ids: list[int], select: int | None = None) -> None:
        """Only these rollouts in the table, `select` (else the first) selected when it arrives."""
        self.filters.set_filter(RolloutFilter(ids=tuple(ids)))
        target = select if select is not None else (ids[0] if ids else None)
        row = self.model.row_of(target) if target is not None else -1
        if row >= 0:
            self.table.setCurrentIndex(self.model.index(row, 0))
        else:
            self._pending_select = target

    def _select_disagreement(self, rollout_id: int) -> None:
        row = self.model.row_of(rollout_id)
        if row >= 0:
            self.table.setCurrentIndex(self.model.index(row, 0))
            return
        current = self.agreement.view.current() if self.agreement is not None else None
        self.show_rollouts(list(current.disagreements) if current else [rollout_id], rollout_id)

    def _show_prompt(self, prompt_index: int, group_id: int) -> None:
        """A prompt picked in the Prompts tab: its rollouts at every step, its latest group's first
        selected, and the prompt over training."""
        conn, run_id = self.model.conn, self.model.run_id
        if conn is None or run_id is None:
            return
        ids = [
            int(r)
            for (r,) in conn.execute(
                "SELECT r.id FROM rollouts r JOIN groups g ON g.id = r.group_id"
                " WHERE g.run_id = ? AND g.prompt_index = ? ORDER BY r.id",
                (run_id, prompt_index),
            )
        ]
        first = conn.execute("SELECT MIN(id) FROM rollouts WHERE group_id = ?", (group_id,)).fetchone()[0]
        self.tabs.setCurrentWidget(self.history)
        self.show_rollouts(ids, first)

    def show_alert_examples(self, run_id: int, ids: list[int]) -> None:
        """A training-time alert's example rollouts (the dashboard's "Show examples"): only those, the
        first selected when it arrives."""
        if run_id != self.state.current_run:
            self.state.select_run(run_id)
        self.filters.set_filter(RolloutFilter(ids=tuple(ids)))
        self._pending_select = ids[0] if ids else None

    def open_trajectory(self) -> None:
        """T: the selected rollout's trajectory (agent runs)."""
        if self.agent.active:
            self.tabs.setCurrentWidget(self.agent.timeline)
            self._show_selection()

    def _show_examples(self, flt: RolloutFilter) -> None:
        """Example rollouts picked in "Where agents fail": in the table, the first one's trajectory."""
        self.filters.set_filter(flt)
        self.tabs.setCurrentWidget(self.agent.timeline)

    def open_history(self) -> None:
        self.tabs.setCurrentWidget(self.history)
        self._show_selection()
        self.history.table.setFocus()

    def _open_from_history(self, group_id: int, rollout_id: int) -> None:
        conn = self.model.conn
        detail = rg.group_detail(conn, group_id) if conn is not None else None
        if detail is None:
            return
        self.tabs.blockSignals(True)
        self.tabs.setCurrentWidget(self.group)
        self.tabs.blockSignals(False)
        words = search_words(self.model.filter.search)
        self.group.show_group(
            detail, self.model.criteria, self.model.weights, rollout_id, self.visible_ws.isChecked(), words
        )
        self._shown_group = (group_id, rollout_id)
        self.group.setFocus()

    # ---- status and empty states -------------------------------------------------------------------
    def _update_title(self) -> None:
        run = self.state.run(self.model.run_id) if self.model.run_id is not None else None
        if run is None:
            self.title.setText("Rollouts")
            return
        step = f"step {run.step}/{run.max_steps}" if run.max_steps else f"step {run.step}"
        self.title.setText(f"Rollouts · {html.escape(run.label)}")
        self.title.setToolTip(f"{run.status}, {step}")

    def _update_status(self) -> None:
        m = self.model
        shown = m.rowCount()
        parts = []
        if m.matching is not None and not m.filter.is_default:
            parts.append(f"{shown:,} shown of {m.matching:,} matching")
        else:
            parts.append(f"{shown:,} shown")
        if m.total is not None:
            parts.append(f"{m.total:,} in the run")
        if m.loading:
            parts.append(f"searching… {m.scanned:.0%}" if shown == 0 and m.scanned > 0 else "loading…")
        run = self.state.run(m.run_id) if m.run_id is not None else None
        if run is not None and run.active:
            parts.append(f"live · {run.status} · step {run.step}")
        self.status.setText(" · ".join(parts) if m.run_id is not None else "")
        self._update_empty(run)

    def _update_empty(self, run: RunRow | None) -> None:
        m = self.model
        message = ""
        if self.state.db is None or m.run_id is None:
            message = "Select a run in the Workspace sidebar to inspect its rollouts."
        elif m.rowCount() == 0 and m.at_end:
            if not m.filter.is_default:
                message = "No rollouts match these filters. <a href='clear'>Clear the filters</a>"
            elif run is not None and run.active:
                message = (
                    f"Run {html.escape(run.label)} has no rollouts yet: they appear here live as it trains."
                )
            else:
                message = "This run recorded no rollouts."
        if message:
            self.empty.setText(message)
            if m.rowCount() == 0 and self.group.detail is not None:
                self._shown_group = self._shown_history = None
                self.group.clear("No rollout selected.")
                self.history.clear("No rollout selected.")
        self.table_stack.setCurrentWidget(self.empty if message else self.table)

    # ---- labels ------------------------------------------------------------------------------------
    def _current_label(self, rollout_id: int) -> tuple[int, str]:
        row = self.model.row_of(rollout_id)
        r = self.model.rollout(row)
        if r is not None:
            return r.label, r.note
        conn = self.model.conn
        found = labels_store.read_labels(conn, [rollout_id]).get(rollout_id) if conn else None
        return (found.label, found.note) if found else (0, "")

    def set_label(self, rollout_id: int | None, label: int, note: str | None = None) -> bool:
        """Save a label (and note, if given) and show it everywhere. False if it could not be saved."""
        if rollout_id is None or self.state.db is None:
            return False
        _label, old_note = self._current_label(rollout_id)
        note = old_note if note is None else note
        try:
            saved = labels_store.save_label(self.state.db.path, rollout_id, label, note)
        except labels_store.LabelError as exc:
            QMessageBox.warning(self, "RL Studio", str(exc))
            return False
        self.model.update_label(rollout_id, saved.label, saved.note)
        self.group.update_label(rollout_id, saved.label, saved.note)
        return True

    def toggle_label(self, rollout_id: int | None, label: int) -> None:
        if rollout_id is not None:
            current, _ = self._current_label(rollout_id)
            self.set_label(rollout_id, 0 if current == label else label)

    def clear_label(self, rollout_id: int | None) -> None:
        self.set_label(rollout_id, 0)

    def edit_note(self, rollout_id: int | None) -> None:
        if rollout_id is None:
            return
        label, note = self._current_label(rollout_id)
        text, ok = QInputDialog.getMultiLineText(self, "Note", f"Note on rollout {rollout_id}:", note)
        if ok:
            self.set_label(rollout_id, label, text)

    # ---- export ------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        conn, run_id = self.model.conn, self.model.run_id
        if conn is None or run_id is None or self.state.db is None:
            QMessageBox.information(self, "RL Studio", "Select a run first: the export takes its rollouts.")
            return
        good, bad = labels_store.label_counts(conn, run_id)
        dialog = ExportDialog(self.model.filter, good, bad, self)
        if dialog.exec() != ExportDialog.DialogCode.Accepted:
            return
        options = dialog.options()
        default = f"run{run_id}-{options.kind}-{options.source}.jsonl"
        path, _ = QFileDialog.getSaveFileName(self, "Export rollouts", default, "JSON Lines (*.jsonl)")
        if path:
            self.start_export(path, options)

    def start_export(self, path: str, options: ExportOptions) -> ExportJob | None:
        """Write the export in the background; the status line says when it is done."""
        if self.state.db is None or self.model.run_id is None:
            return None
        job = ExportJob(self.state.db.path, self.model.run_id, path, options, self)
        job.sig_done.connect(
            lambda p, n: self.status.setText(f"Exported {n:,} row{'s' if n != 1 else ''} to {html.escape(p)}")
        )
        job.sig_failed.connect(lambda message: QMessageBox.warning(self, "RL Studio", message))
        self.export_job = job
        job.start()
        return job
