"""The rollout inspector on real workspaces: the paged model, live appends, the view, keys, labels and
export (pytest-qt, offscreen)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from test_rollout_workspace import add_steps, build_run, read_back

from engine.contract import schema
from engine.contract.protocol import make_event
from studio.models.rollouts_model import ROLLOUT_ID_ROLE, RolloutsModel
from studio.state import rollout_query as rq
from studio.state.labels import read_labels
from studio.state.rollout_export import ExportOptions
from studio.state.rollout_query import RolloutFilter
from studio.state.studio_state import StudioState
from studio.widgets.inspector import InspectorView
from studio.widgets.inspector_cells import RolloutCells
from studio.widgets.inspector_text import render_html

WAIT_MS = 10_000


# ---- the model -----------------------------------------------------------------------------------------
def dispose(obj: QObject) -> None:
    """Delete a Qt object now, on this (the GUI) thread, rather than whenever Python collects it."""
    obj.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture
def model(qtbot) -> Iterator[RolloutsModel]:
    m = RolloutsModel(RolloutCells(), page_rows=10)
    yield m
    m.close()
    dispose(m)


def ids(model: RolloutsModel) -> list[int]:
    return [model.index(row, 0).data(ROLLOUT_ID_ROLE) for row in range(model.rowCount())]


def settle(qtbot, model: RolloutsModel) -> None:
    qtbot.waitUntil(lambda: not model.loading, timeout=WAIT_MS)


def test_the_model_loads_a_page_at_a_time_until_the_end(qtbot, model: RolloutsModel, ws_path: Path) -> None:
    run_id = build_run(ws_path, steps=3)  # 48 rollouts
    everything = [r.id for r in read_back(ws_path, run_id)]
    model.set_source(str(ws_path), run_id)
    settle(qtbot, model)
    assert ids(model) == everything[:10] and model.canFetchMore()
    assert model.criteria == ["correct", "format", "length"]
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers[:7] == ["Step", "Prompt", "Completion", "Reward", "correct", "format", "length"]
    while model.canFetchMore():
        model.fetchMore()
        settle(qtbot, model)
    assert ids(model) == everything and model.at_end
    qtbot.waitUntil(lambda: model.total == 48 and model.matching == 48, timeout=WAIT_MS)


def test_a_new_filter_drops_what_the_old_one_was_still_reading(qtbot, model: RolloutsModel, ws_path) -> None:
    run_id = build_run(ws_path, steps=4)
    rows = read_back(ws_path, run_id)
    model.set_source(str(ws_path), run_id)
    model.set_filter(RolloutFilter(reward_min=1.0))
    model.set_filter(RolloutFilter(truncated_only=True))
    settle(qtbot, model)
    while model.canFetchMore():
        model.fetchMore()
        settle(qtbot, model)
    assert ids(model) == [r.id for r in rows if r.truncated]
    qtbot.waitUntil(lambda: model.matching == sum(r.truncated for r in rows), timeout=WAIT_MS)


def test_live_rows_are_appended_only_when_the_filter_keeps_them(qtbot, model: RolloutsModel, ws_path) -> None:
    run_id = build_run(ws_path, steps=2, status="running")
    model.page_rows = 1000
    model.set_filter(RolloutFilter(errors_only=True))
    model.set_source(str(ws_path), run_id)
    settle(qtbot, model)
    before = ids(model)
    assert before and model.at_end
    add_steps(ws_path, run_id, range(3, 5))
    model.poll_tail()
    expected = [r.id for r in read_back(ws_path, run_id) if r.errors]
    qtbot.waitUntil(lambda: ids(model) == expected, timeout=WAIT_MS)
    assert len(expected) > len(before)
    add_steps(ws_path, run_id, range(5, 6))
    model.set_filter(RolloutFilter(step_max=5))
    settle(qtbot, model)
    add_steps(ws_path, run_id, range(6, 7))  # past the step range: nothing to append
    model.poll_tail()
    settle(qtbot, model)
    assert ids(model) == [r.id for r in read_back(ws_path, run_id) if r.step <= 5]


# ---- the view ------------------------------------------------------------------------------------------
@pytest.fixture
def view(qtbot, state: StudioState) -> Iterator[InspectorView]:
    v = InspectorView(state)
    v.resize(1300, 850)
    v.show()
    yield v
    v.model.close()
    v.close()
    dispose(v)


def open_run(qtbot, state: StudioState, view: InspectorView, run_id: int) -> None:
    state.refresh()
    state.select_run(run_id)
    qtbot.waitUntil(lambda: view.model.rowCount() > 0 and not view.model.loading, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: view.group.detail is not None, timeout=WAIT_MS)


def select(qtbot, view: InspectorView, rollout_id: int) -> None:
    row = view.model.row_of(rollout_id)
    assert row >= 0
    view.table.setCurrentIndex(view.model.index(row, 0))
    qtbot.waitUntil(lambda: view.group.current_id() == rollout_id, timeout=WAIT_MS)


def test_the_table_and_the_group_view_show_a_run(qtbot, state, view: InspectorView, ws_path) -> None:
    run_id = build_run(ws_path, steps=3)
    rows = read_back(ws_path, run_id)
    open_run(qtbot, state, view, run_id)
    assert "demo" in view.title.text() and "48 in the run" in view.status.text()
    pick = next(r for r in rows if r.errors)
    select(qtbot, view, pick.id)
    group = [r for r in rows if r.group_id == pick.group_id]
    shown = [c.rollout for c in view.group.cards if c.isVisible()]
    assert {r.id for r in shown if r} == {r.id for r in group}
    rewards = [r.reward for r in shown if r and r.reward is not None]
    assert rewards == sorted(rewards, reverse=True)
    card = next(c for c in view.group.cards if c.rollout and c.rollout.id == pick.id)
    assert "TimeoutError" in card.problems.text() and card.property("current") is True
    assert f"{pick.advantage:+.3f}" in card.advantage.text()
    assert pick.completion.strip()[:8] in card.text.toPlainText()
    assert [name for name, *_ in card.bars.rows] == ["correct", "format", "length"]
    row = view.model.row_of(pick.id)
    cells = [view.model.index(row, c).data() for c in range(view.model.columnCount())]
    assert cells[0] == str(pick.step) and cells[4] == "error" and cells[-2] == "correct"


def test_whitespace_and_special_tokens_can_be_made_visible(
    qtbot, state, view: InspectorView, ws_path
) -> None:
    run_id = build_run(ws_path, steps=2)
    pick = next(r for r in read_back(ws_path, run_id) if "<|im_end|>" in r.completion)
    open_run(qtbot, state, view, run_id)
    select(qtbot, view, pick.id)
    card = next(c for c in view.group.cards if c.rollout and c.rollout.id == pick.id)
    assert "·" not in card.text.toPlainText()
    qtbot.keyClick(view.table, Qt.Key.Key_W)
    assert view.visible_ws.isChecked()
    card = next(c for c in view.group.cards if c.rollout and c.rollout.id == pick.id)
    assert "·" in card.text.toPlainText() and "#fefcbf" in card.text.toHtml().lower()


def test_render_html_marks_whitespace_tokens_and_search_hits() -> None:
    text = "a b\n\tc <|im_end|> & <x>"
    plain = render_html(text)
    assert "·" not in plain and "&amp;" in plain and "&lt;x&gt;" in plain and "<br>" in plain
    shown = render_html(text, visible=True, highlight=["c"])
    assert "a<span" in shown and "·" in shown and "⏎" in shown and "→" in shown
    assert "&lt;|im_end|&gt;</span>" in shown and "background-color:#faf089" in shown


def test_keys_move_open_label_and_annotate(qtbot, state, view: InspectorView, ws_path, monkeypatch) -> None:
    run_id = build_run(ws_path, steps=2)
    rows = read_back(ws_path, run_id)
    open_run(qtbot, state, view, run_id)
    view.table.setFocus()
    assert view.table.currentIndex().row() == 0
    qtbot.keyClick(view.table, Qt.Key.Key_J)
    qtbot.keyClick(view.table, Qt.Key.Key_J)
    qtbot.keyClick(view.table, Qt.Key.Key_K)
    assert view.table.currentIndex().row() == 1
    second = rows[1].id
    qtbot.keyClick(view.table, Qt.Key.Key_Plus)
    conn = schema.connect(str(ws_path), readonly=True)
    assert read_labels(conn, [second])[second].label == 1
    assert view.model.index(1, view.model.columnCount() - 1).data() == "▲"
    qtbot.keyClick(view.table, Qt.Key.Key_Plus)  # again: cleared
    assert second not in read_labels(conn, [second])

    qtbot.keyClick(view.table, Qt.Key.Key_Return)  # into the group
    qtbot.waitUntil(view.group.hasFocus, timeout=WAIT_MS)
    start = view.group.current_id()
    qtbot.keyClick(view.group, Qt.Key.Key_L)
    target = view.group.current_id()
    assert target != start
    monkeypatch.setattr(
        "studio.widgets.inspector.QInputDialog.getMultiLineText",
        lambda *a, **k: ("spaces before the tag", True),
    )
    qtbot.keyClick(view.group, Qt.Key.Key_Minus)
    qtbot.keyClick(view.group, Qt.Key.Key_N)
    saved = read_labels(conn, [target])[target]
    assert (saved.label, saved.note) == (-1, "spaces before the tag")
    card = next(c for c in view.group.cards if c.rollout and c.rollout.id == target)
    assert card.bad.isChecked() and "spaces before" in card.note.text()
    qtbot.keyClick(view.group, Qt.Key.Key_0)
    assert read_labels(conn, [target])[target].label == 0  # the note stays
    qtbot.keyClick(view.group, Qt.Key.Key_Escape)
    assert view.table.hasFocus()

    qtbot.keyClick(view.table, Qt.Key.Key_P)  # this prompt over training
    assert view.tabs.currentWidget() is view.history
    assert [g.step for g in view.history.groups] == [1, 2]
    view.history.table.setCurrentCell(1, 3)
    qtbot.keyClick(view.history.table, Qt.Key.Key_Return)
    assert view.tabs.currentWidget() is view.group and view.group.detail is not None
    assert view.group.detail.step == 2
    conn.close()


def test_search_waits_for_a_pause_in_typing(qtbot, state, view: InspectorView, ws_path) -> None:
    run_id = build_run(ws_path, steps=3)
    open_run(qtbot, state, view, run_id)
    qtbot.keyClick(view.table, Qt.Key.Key_Slash)
    assert view.filters.search.hasFocus()
    qtbot.keyClicks(view.filters.search, "therefore")
    assert view.model.filter.search == ""  # debounced: not yet
    qtbot.waitUntil(lambda: view.model.filter.search == "therefore", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not view.model.loading, timeout=WAIT_MS)
    shown = [view.model.rollout(i) for i in range(view.model.rowCount())]
    assert shown and all("therefore" in r.completion for r in shown if r)
    qtbot.waitUntil(lambda: "matching" in view.status.text(), timeout=WAIT_MS)


def test_the_filter_bar_builds_filters(qtbot, view: InspectorView) -> None:
    bar = view.filters
    bar.step_min.setText("3")
    bar.reward_max.setText("0.5")
    bar.errors.setChecked(True)
    bar.zero_std.setChecked(True)
    bar.label.setCurrentIndex(bar.label.findData("bad"))
    bar.search.setText('"the answer"')
    assert bar.current() == RolloutFilter(
        step_min=3, reward_max=0.5, errors_only=True, zero_std_only=True, label="bad", search='"the answer"'
    )
    bar.apply()
    assert view.model.filter == bar.current()
    bar.clear()
    assert view.model.filter == RolloutFilter() and bar.step_min.text() == ""


def test_empty_states_say_what_to_do(qtbot, state, view: InspectorView, ws_path) -> None:
    assert "Select a run" in view.empty.text() and view.table_stack.currentWidget() is view.empty
    run_id = build_run(ws_path, steps=2)
    open_run(qtbot, state, view, run_id)
    assert view.table_stack.currentWidget() is view.table
    view.filters.set_filter(RolloutFilter(reward_min=99))
    qtbot.waitUntil(lambda: view.table_stack.currentWidget() is view.empty, timeout=WAIT_MS)
    assert "No rollouts match" in view.empty.text()
    view.empty.linkActivated.emit("clear")
    qtbot.waitUntil(lambda: view.model.rowCount() > 0, timeout=WAIT_MS)
    empty_run = build_run(ws_path, steps=0, status="running", seed=5)
    state.refresh()
    state.select_run(empty_run)
    qtbot.waitUntil(lambda: "no rollouts yet" in view.empty.text(), timeout=WAIT_MS)


def test_a_run_training_elsewhere_shows_its_new_rollouts(qtbot, state, view: InspectorView, ws_path) -> None:
    run_id = build_run(ws_path, steps=1, status="running")
    open_run(qtbot, state, view, run_id)
    assert view.model.rowCount() == 16
    add_steps(ws_path, run_id, range(2, 4))  # the watcher sees the run's step move
    qtbot.waitUntil(lambda: view.model.rowCount() == 48, timeout=WAIT_MS)
    assert "live" in view.status.text()
    add_steps(ws_path, run_id, range(4, 5))  # an engine of this studio announces its rows
    state.sig_engine_event.emit(None, make_event("rollouts_written", run_id=run_id, up_to_id=0, step=4))
    qtbot.waitUntil(lambda: view.model.rowCount() == 64, timeout=WAIT_MS)


def test_export_from_the_view(qtbot, state, view: InspectorView, ws_path, tmp_path, monkeypatch) -> None:
    run_id = build_run(ws_path, steps=2)
    open_run(qtbot, state, view, run_id)
    out = tmp_path / "pairs.jsonl"
    job = view.start_export(str(out), ExportOptions("pairs", "reward"))
    assert job is not None
    qtbot.waitUntil(lambda: "Exported" in view.status.text(), timeout=WAIT_MS)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and set(lines[0]) == {"prompt", "chosen", "rejected"}

    from studio.widgets import inspector as inspector_module

    monkeypatch.setattr(inspector_module.ExportDialog, "exec", lambda self: 1)
    sft = tmp_path / "sft.jsonl"
    monkeypatch.setattr(inspector_module.QFileDialog, "getSaveFileName", lambda *a, **k: (str(sft), ""))
    qtbot.keyClick(view.table, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(sft.is_file, timeout=WAIT_MS)
    rows = [json.loads(line) for line in sft.read_text().splitlines()]
    assert len(rows) == 8 and [r["group_index"] for r in rows] == list(range(8))  # the best of each group
    assert list(rows[0])[:3] == ["prompt", "completion", "rollout_id"] and "answer" in rows[0]  # to join back


def test_a_screenshot_of_the_inspector(qtbot, state: StudioState, tmp_path: Path) -> None:
    from PySide6.QtGui import QImage

    from studio.app import main

    assert state.db is not None
    run_id = build_run(state.db.path, steps=4)
    out = tmp_path / "inspector.png"
    assert (
        main(
            [
                "--workspace",
                state.db.path,
                "--screenshot",
                str(out),
                "--view",
                "inspector",
                "--run",
                str(run_id),
            ]
        )
        == 0
    )
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1400, 900)
    assert out.stat().st_size > 40_000  # a table and cards, not an empty state


def test_rows_of_a_resumed_run_are_read_again(qtbot, state, view: InspectorView, ws_path) -> None:
    from engine.store import Workspace

    run_id = build_run(ws_path, steps=3, status="running")
    open_run(qtbot, state, view, run_id)
    ws = Workspace(ws_path)
    ws.truncate_after(run_id, 1)
    ws.close()
    add_steps(ws_path, run_id, range(2, 3))
    state.watcher.sig_run_restarted.emit(run_id)
    expected = [r.id for r in read_back(ws_path, run_id)]
    qtbot.waitUntil(
        lambda: [view.model.rollout(i).id for i in range(view.model.rowCount())] == expected, timeout=WAIT_MS
    )
    assert rq.last_rollout_id(view.model.conn, run_id) == expected[-1]
