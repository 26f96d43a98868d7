"""The inspector on a recorded agent run (real episodes of the built-in file manager, written through
engine.store; see agent_workspace.py): the trajectory timeline, the group comparison, where agents fail,
the agent filters, and that a single-turn run shows none of it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_workspace import POLICIES, build_agent_run
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from test_inspector import WAIT_MS, dispose
from test_rollout_workspace import build_run

from engine.contract.trajectory import call_outcome, first_repeat, read_trajectory, succeeded
from studio.state import rollout_query as rq
from studio.state.agent_failures import failure_report, first_failure
from studio.state.rollout_query import RolloutFilter
from studio.state.studio_state import StudioState
from studio.widgets.inspector import InspectorView
from studio.widgets.trajectory_view import OUTCOME_STYLE

ORDER = list(POLICIES)


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One recorded agent run, played once per test session (a few seconds of real episodes)."""
    path = tmp_path_factory.mktemp("agent") / "agent.sqlite"
    return path, build_agent_run(path)


@pytest.fixture
def agent_run(recorded: tuple[Path, int], ws_path: Path) -> int:
    """The recorded run, copied into this test's workspace file (ask for it before `state`, which opens
    that file)."""
    conn = sqlite3.connect(recorded[0])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copy(recorded[0], ws_path)
    return recorded[1]


@pytest.fixture
def view(qtbot, state: StudioState) -> Iterator[InspectorView]:
    v = InspectorView(state)
    v.resize(1300, 850)
    v.show()
    yield v
    v.model.close()
    v.close()
    dispose(v)


def rollouts_by_policy(ws_path: Path, run_id: int) -> dict[str, list[int]]:
    """Rollout ids per policy: each group holds one trajectory per policy, in POLICIES' order."""
    conn = sqlite3.connect(ws_path)
    out: dict[str, list[int]] = {p: [] for p in ORDER}
    groups = [g for (g,) in conn.execute("SELECT id FROM groups WHERE run_id = ? ORDER BY id", (run_id,))]
    for gid in groups:
        ids = [i for (i,) in conn.execute("SELECT id FROM rollouts WHERE group_id = ? ORDER BY id", (gid,))]
        for policy, rid in zip(ORDER, ids, strict=True):
            out[policy].append(rid)
    conn.close()
    return out


def open_agent_run(qtbot, state: StudioState, view: InspectorView, run_id: int) -> None:
    state.refresh()
    state.select_run(run_id)
    qtbot.waitUntil(lambda: view.model.rowCount() > 0 and not view.model.loading, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: view.agent.timeline.rollout is not None, timeout=WAIT_MS)


def select(qtbot, view: InspectorView, rollout_id: int) -> None:
    row = view.model.row_of(rollout_id)
    assert row >= 0
    view.table.setCurrentIndex(view.model.index(row, 0))
    if view.tabs.currentWidget() is view.agent.timeline:
        qtbot.waitUntil(
            lambda: view.agent.timeline.rollout is not None and view.agent.timeline.rollout.id == rollout_id,
            timeout=WAIT_MS,
        )


def tab_titles(view: InspectorView) -> list[str]:
    return [view.tabs.tabText(i) for i in range(view.tabs.count())]


def test_an_agent_rollout_reads_turn_by_turn(qtbot, agent_run, state, view, ws_path) -> None:
    open_agent_run(qtbot, state, view, agent_run)
    assert tab_titles(view)[:2] == ["Trajectory", "Group trajectories"]
    assert "Where agents fail" in tab_titles(view)
    assert view.tabs.currentWidget() is view.agent.timeline
    # the agent filters are offered, with the tools the run called and the tasks' tiers
    assert view.filters.agent.isVisibleTo(view)
    tools = [view.filters.tool.itemData(i) for i in range(view.filters.tool.count())]
    assert tools == ["", "list_files", "move_file", "write_file"]
    tiers = [view.filters.tier.itemData(i) for i in range(view.filters.tier.count())]
    assert tiers == ["", "easy", "hard"]

    by_policy = rollouts_by_policy(ws_path, agent_run)
    missing = by_policy["missing_file"][0]
    select(qtbot, view, missing)
    text = view.agent.timeline.text()
    stored = view.agent.timeline.rollout
    assert stored is not None and stored.id == missing
    trajectory = stored.trajectory
    # every turn with its token count, the call with its arguments, the tool's error, the outcome
    for number, turn in enumerate(trajectory.turns, 1):
        assert f"Turn {number}" in text and f"{turn.tokens} tokens" in text
    failing = trajectory.turns[1].calls[0]
    assert failing.tool == "move_file" and failing.error and "no file" in failing.error
    assert (
        "→ move_file(" in text
        and f'source="{json.loads(trajectory.turns[0].calls[0].arguments)["folder"]}/nothing.txt"' in text
        and "[tool error]" in text
        and f"error: {failing.error}" in text
    )
    assert trajectory.turns[0].calls[0].result in text  # the listing the model saw
    assert "Environment reward" in text and "success" in text and "well_formed (logged, weight 0)" in text
    assert "answered" in text and "Task" in text and "Move every file matching" in text

    # an unknown tool is an invalid call; a loop's repeat is marked; turns the budget cut are "not run"
    select(qtbot, view, by_policy["unknown_tool"][0])
    assert "[invalid call]" in view.agent.timeline.text()
    assert "unknown tool 'delete_file'" in view.agent.timeline.text()
    select(qtbot, view, by_policy["loop"][0])
    looped = view.agent.timeline.text()
    assert "[repeats an earlier call]" in looped and "ran out of turns" in looped
    assert "[not run (out of turns)]" in looped


def test_a_group_side_by_side_and_a_click_opens_a_timeline(qtbot, agent_run, state, view, ws_path) -> None:
    open_agent_run(qtbot, state, view, agent_run)
    by_policy = rollouts_by_policy(ws_path, agent_run)
    first = by_policy["solved"][0]
    select(qtbot, view, first)
    view.tabs.setCurrentWidget(view.agent.group)
    table = view.agent.group.table
    qtbot.waitUntil(lambda: table.rowCount() == len(ORDER), timeout=WAIT_MS)
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[0] == "#" and headers[1] == "T1" and headers[-3:] == ["Ended", "Env", "Reward"]
    rows = {p: ORDER.index(p) for p in ORDER}

    def cell(policy: str, turn: int) -> tuple[str, str]:
        item = table.item(rows[policy], turn)
        return item.text(), item.background().color().name()

    colour = {k: QColor(v[0]).name() for k, v in OUTCOME_STYLE.items()}
    assert cell("solved", 1) == ("list_files", colour["ok"])
    assert cell("unknown_tool", 2) == ("delete_file", colour["invalid"])
    assert cell("missing_file", 2) == ("move_file", colour["tool_error"])
    assert cell("wrong_argument", 2) == ("move_file", colour["invalid"])
    assert cell("loop", 1) == ("list_files", colour["ok"])
    assert cell("loop", 2) == ("list_files", colour["repeat"])  # the same call again: a loop
    solved_turns = view.agent.group.rollouts[rows["solved"]].trajectory.num_turns
    assert cell("solved", solved_turns) == ("answer", colour["answer"])  # the final answer
    last = table.columnCount() - 1
    assert (
        table.item(rows["solved"], last - 1).text() == "1"
        and table.item(rows["no_manifest"], last - 1).text() == "0"
    )
    assert table.item(rows["loop"], last - 2).text() == "max_turns"

    # a click on a row opens that trajectory's timeline
    target = by_policy["loop"][0]
    table.cellClicked.emit(rows["loop"], 1)
    assert view.tabs.currentWidget() is view.agent.timeline
    assert view.agent.timeline.rollout is not None and view.agent.timeline.rollout.id == target

    # T brings the trajectory back from another tab
    view.tabs.setCurrentWidget(view.agent.group)
    view.table.setFocus()
    qtbot.keyClick(view.table, Qt.Key.Key_T)
    assert view.tabs.currentWidget() is view.agent.timeline


def test_where_agents_fail_counts_first_failures(ws_path, agent_run) -> None:
    conn = sqlite3.connect(ws_path)
    rows = conn.execute("SELECT id, step, trajectory FROM rollouts WHERE run_id = ?", (agent_run,)).fetchall()
    report = failure_report(conn, agent_run)
    by_policy = rollouts_by_policy(ws_path, agent_run)
    groups = len(by_policy["solved"])
    assert report.rollouts == len(rows) == groups * len(ORDER)
    trajectories = {rid: read_trajectory(text) for rid, _, text in rows}
    failing = sorted(rid for rid, t in trajectories.items() if t is not None and not succeeded(t))
    assert report.failed_ids == failing
    # each mistake is found where the policy made it: the second turn, in the tool it misused
    assert report.cells[(2, "delete_file")] == groups  # unknown tool
    assert report.cells[(2, "list_files")] == groups  # the same listing again: a loop
    assert report.kinds["loop"] == groups and report.kinds["tool_error"] == groups
    assert report.kind_examples["loop"] == by_policy["loop"]
    assert report.cell_examples[(2, "delete_file")] == by_policy["unknown_tool"]
    # forgetting the manifest breaks nothing on the way: the end state is wrong, at the last turn
    for rid in by_policy["no_manifest"]:
        t = trajectories[rid]
        assert t is not None
        assert first_failure(t).kind == "wrong_answer" and first_failure(t).turn == t.num_turns
    assert report.endings["max_turns"] >= groups and sum(report.endings.values()) == report.failed
    assert sum(report.cells.values()) == report.failed
    # a step range counts only its steps
    first_step = failure_report(conn, agent_run, step_min=1, step_max=1)
    assert first_step.rollouts == sum(1 for _, step, _ in rows if step == 1)
    conn.close()


def test_agent_filters_match_what_the_trajectories_say(ws_path, agent_run) -> None:
    conn = sqlite3.connect(ws_path)
    rows = conn.execute(
        "SELECT r.id, r.trajectory, json_extract(g.columns, '$.tier') FROM rollouts r JOIN groups g"
        " ON g.id = r.group_id WHERE r.run_id = ? ORDER BY r.id",
        (agent_run,),
    ).fetchall()
    parsed = [(rid, read_trajectory(text), tier) for rid, text, tier in rows]
    expected = {
        RolloutFilter(outcome="succeeded"): [rid for rid, t, _ in parsed if t and succeeded(t)],
        RolloutFilter(outcome="failed"): [rid for rid, t, _ in parsed if t and not succeeded(t)],
        RolloutFilter(invalid_calls_only=True): [
            rid for rid, t, _ in parsed if t and any(not c.valid for c in t.calls)
        ],
        RolloutFilter(max_turns_only=True): [rid for rid, t, _ in parsed if t and t.ended == "max_turns"],
        RolloutFilter(tool="write_file"): [
            rid for rid, t, _ in parsed if t and any(c.tool == "write_file" for c in t.calls)
        ],
        RolloutFilter(tier="hard"): [rid for rid, _, tier in parsed if tier == "hard"],
        RolloutFilter(outcome="failed", tier="easy", tool="move_file"): [
            rid
            for rid, t, tier in parsed
            if t and not succeeded(t) and tier == "easy" and any(c.tool == "move_file" for c in t.calls)
        ],
    }
    for flt, ids in expected.items():
        assert ids, flt.describe()  # every filter has something to find, and leaves something out
        assert len(ids) < len(parsed), flt.describe()
        page = rq.read_page(conn, agent_run, flt, limit=1000)
        assert [r.id for r in page.rows] == ids, flt.describe()
        assert rq.count_matching(conn, agent_run, flt) == len(ids), flt.describe()
    # the loops and errors the view highlights come from the same reading of the calls
    looping = [rid for rid, t, _ in parsed if t and first_repeat(t) is not None]
    assert looping and all(
        call_outcome(c) in ("ok", "invalid", "tool_error", "not_run")
        for _, t, _ in parsed
        if t
        for c in t.calls
    )
    conn.close()


def test_the_filter_bar_and_a_failure_cell_filter_the_table(qtbot, agent_run, state, view, ws_path) -> None:
    open_agent_run(qtbot, state, view, agent_run)
    by_policy = rollouts_by_policy(ws_path, agent_run)
    total = view.model.rowCount()
    view.filters.max_turns.setChecked(True)
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() < total, timeout=WAIT_MS)
    shown = [view.model.rollout(i).id for i in range(view.model.rowCount())]
    assert set(by_policy["loop"]) <= set(shown)
    assert view.model.filter.max_turns_only
    view.filters.clear()
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() == total, timeout=WAIT_MS)

    # where agents fail: counted in a background job; a cell's click shows its rollouts in the table
    view.tabs.setCurrentWidget(view.agent.failures)
    failures = view.agent.failures
    qtbot.waitUntil(lambda: failures.report is not None, timeout=WAIT_MS)
    heat = failures.heat
    tools = [heat.horizontalHeaderItem(c).text() for c in range(heat.columnCount())]
    turns = [heat.verticalHeaderItem(r).text() for r in range(heat.rowCount())]
    row, col = turns.index("turn 2"), tools.index("delete_file")
    assert heat.item(row, col).text() == str(len(by_policy["unknown_tool"]))
    assert "failed" in failures.summary.text()
    heat.cellClicked.emit(row, col)
    qtbot.waitUntil(
        lambda: not view.model.loading and view.model.rowCount() == len(by_policy["unknown_tool"]),
        timeout=WAIT_MS,
    )
    assert [view.model.rollout(i).id for i in range(view.model.rowCount())] == by_policy["unknown_tool"]
    assert view.filters.picked.isVisibleTo(view) and view.tabs.currentWidget() is view.agent.timeline
    first = by_policy["unknown_tool"][0]
    qtbot.waitUntil(
        lambda: view.agent.timeline.rollout is not None and view.agent.timeline.rollout.id == first,
        timeout=WAIT_MS,
    )
    assert "delete_file" in view.agent.timeline.text()
    # the bars of reasons click through the same way
    kinds = failures.kinds
    loop_row = next(r for r in range(kinds.rowCount()) if kinds.item(r, 0).text().startswith("repeated"))
    kinds.cellClicked.emit(loop_row, 1)
    qtbot.waitUntil(lambda: view.model.filter.ids == tuple(by_policy["loop"]), timeout=WAIT_MS)
    view.filters.picked.click()
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() == total, timeout=WAIT_MS)


def test_a_single_turn_run_shows_no_agent_tabs(qtbot, state, view, ws_path) -> None:
    run_id = build_run(ws_path, steps=2)
    state.refresh()
    state.select_run(run_id)
    qtbot.waitUntil(lambda: view.model.rowCount() > 0 and not view.model.loading, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: view.group.detail is not None, timeout=WAIT_MS)
    assert not {"Trajectory", "Group trajectories", "Where agents fail"} & set(tab_titles(view))
    assert tab_titles(view)[:2] == ["Group", "This prompt over training"]
    assert not view.filters.agent.isVisibleTo(view)
    assert view.tabs.currentWidget() is view.group
    # rollouts picked elsewhere (an alert's examples, say) show the pick in the first row of filters
    first = view.model.rollout(0)
    assert first is not None
    view.filters.set_filter(RolloutFilter(ids=(first.id,)))
    assert view.filters.picked.isVisibleTo(view) and view.filters.picked.text() == "1 picked ✕"
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() == 1, timeout=WAIT_MS)


def test_switching_from_an_agent_run_to_a_single_turn_run(qtbot, agent_run, state, view, ws_path) -> None:
    open_agent_run(qtbot, state, view, agent_run)
    plain = build_run(ws_path, steps=1)
    state.refresh()
    state.select_run(plain)
    qtbot.waitUntil(lambda: view.group.detail is not None, timeout=WAIT_MS)
    assert not {"Trajectory", "Group trajectories", "Where agents fail"} & set(tab_titles(view))
    assert tab_titles(view)[:2] == ["Group", "This prompt over training"]
    assert not view.filters.agent.isVisibleTo(view)


def test_a_screenshot_of_an_agent_rollout(qtbot, agent_run, state: StudioState, tmp_path: Path) -> None:
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from studio.app import main

    assert state.db is not None
    out = tmp_path / "trajectory.png"
    argv = [
        "--workspace",
        state.db.path,
        "--screenshot",
        str(out),
        "--view",
        "inspector",
        "--run",
        str(agent_run),
    ]
    assert main(argv) == 0
    assert (QImage(str(out)).width(), QImage(str(out)).height()) == (1400, 900)
    # the window it grabbed showed the first rollout's trajectory, not an empty tab
    from studio.widgets.main_window import MainWindow

    shown = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
    timelines = [w.inspector.agent.timeline for w in shown if w.inspector.agent.timeline.rollout is not None]
    assert timelines and "Turn 1" in timelines[-1].text()
