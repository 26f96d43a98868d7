"""The inspector's Agreement dialog and Prompts tab on a workspace with labelled rollouts (pytest-qt,
offscreen): figures worked out by hand, a disagreeing rollout one click from the inspector's table, and
prompts by standing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_rollout_workspace import RUBRIC

from engine.store import GroupRecord, RolloutRecord, Workspace
from studio.state.label_agreement import prompt_standings, run_agreement, run_pass_rule
from studio.state.labels import save_label
from studio.state.studio_state import StudioState
from studio.widgets.inspector import InspectorView

WAIT_MS = 10_000
# correct per completion: step -> prompt -> 4 completions (format is always 1, so reward = correct + 0.2)
STEPS = {
    1: {0: (1, 1, 0, 0), 1: (0, 0, 0, 0), 2: (0, 0, 0, 0)},
    2: {0: (1, 1, 1, 1), 1: (0, 0, 0, 0), 2: (1, 0, 0, 0)},
}
# labels on step 2: prompt 0's four (the 4th disagrees with correct = 1) and prompt 2's (the 2nd disagrees)
LABELS = {(0, 0): 1, (0, 1): 1, (0, 2): 1, (0, 3): -1, (2, 0): 1, (2, 1): 1, (2, 2): -1, (2, 3): -1}


def build(path: Path) -> tuple[int, dict[tuple[int, int, int], int]]:
    ws = Workspace(path)
    version = ws.save_rubric_version("arith", RUBRIC, {}, "")
    run_id = ws.create_run(
        "labelled", "grpo", {"eval": {"correctness": "", "pass_threshold": 0.5}}, 2, None, version
    )
    ids: dict[tuple[int, int, int], int] = {}
    for step, prompts in STEPS.items():
        groups = [
            GroupRecord(
                f"{p}+1=",
                p,
                {"answer": str(p + 1)},
                [
                    RolloutRecord(
                        f"<answer>{c}</answer> #{step}.{p}.{g}",
                        c + 0.2,
                        0.0,
                        5,
                        False,
                        {"correct": float(c), "format": 1.0},
                    )
                    for g, c in enumerate(correct)
                ],
            )
            for p, correct in prompts.items()
        ]
        last = ws.write_rollouts(run_id, step, groups)
        first = last - 11
        for p in prompts:
            for g in range(4):
                ids[(step, p, g)] = first + p * 4 + g
    ws.set_status(run_id, "finished")
    ws.close()
    for (p, g), label in LABELS.items():
        save_label(path, ids[(2, p, g)], label, "")
    return run_id, ids


def test_agreement_and_standings_from_the_workspace(ws_path: Path) -> None:
    import sqlite3

    run_id, ids = build(ws_path)
    conn = sqlite3.connect(ws_path)
    results, rows = run_agreement(conn, run_id)
    assert len(rows) == 8
    by_name = {a.criterion: a for a in results}
    assert list(by_name) == ["correct", "format", "length", "total"]
    correct = by_name["correct"]
    # verdicts T T T T T F F F against labels T T T F T T F F
    assert correct.confusion == [[2, 1], [1, 4]] and correct.accuracy == pytest.approx(0.75)
    # p_o = 3/4; rows (3, 5) and columns (3, 5): p_e = 34/64; kappa = (3/4 - 34/64) / (30/64) = 7/15
    assert correct.kappa == pytest.approx(7 / 15)
    assert correct.disagreements == [ids[(2, 0, 3)], ids[(2, 2, 1)]]
    fmt = by_name["format"]  # always 1: agrees only by chance
    assert fmt.confusion == [[0, 3], [0, 5]] and fmt.kappa == pytest.approx(0.0)
    assert by_name["total"].disagreements == correct.disagreements
    assert by_name["length"].n == 0 and by_name["length"].skipped == 8  # never scored in this run

    rule = run_pass_rule(conn, run_id)
    assert (rule.criterion, rule.threshold) == ("correct", 0.5)
    standing = {s.prompt_index: s for s in prompt_standings(conn, run_id)}
    assert {i: s.status for i, s in standing.items()} == {0: "solved", 1: "never solved", 2: "learning"}
    assert (standing[2].attempts, standing[2].passes, standing[2].latest_step) == (8, 1, 2)
    conn.close()


@pytest.fixture
def view(qtbot, state: StudioState) -> Iterator[InspectorView]:
    v = InspectorView(state)
    v.resize(1300, 850)
    v.show()
    yield v
    if v.agreement is not None:
        v.agreement.close()
    v.model.close()
    v.close()
    v.deleteLater()


def test_the_agreement_dialog_leads_to_the_disagreeing_rollouts(
    qtbot, state, view: InspectorView, ws_path
) -> None:
    run_id, ids = build(ws_path)
    state.refresh()
    state.select_run(run_id)
    qtbot.waitUntil(lambda: view.model.rowCount() == 24 and not view.model.loading, timeout=WAIT_MS)

    dialog = view.open_agreement()
    agreement = dialog.view
    summary = agreement.summary
    assert [summary.item(r, 0).text() for r in range(summary.rowCount())] == [
        "correct",
        "format",
        "length",
        "total",
    ]
    # kappa 7/15; Spearman of two binary variables is the phi coefficient: (2*4 - 1*1) / sqrt(3*5*3*5) = 7/15
    assert [summary.item(0, c).text() for c in range(1, 6)] == ["8", "0.75", "0.47", "0.47", "2"]
    assert "8 labelled rollouts: 5 good, 3 bad" in agreement.headline.text()
    assert [[agreement.confusion.item(i, j).text() for j in range(2)] for i in range(2)] == [
        ["2", "1"],
        ["1", "4"],
    ]
    listed = [
        int(agreement.disagreements.item(r, 0).text()) for r in range(agreement.disagreements.rowCount())
    ]
    assert listed == [ids[(2, 0, 3)], ids[(2, 2, 1)]]

    # one click: the rollout is selected in the inspector's table, and its group shown
    agreement.disagreements.cellClicked.emit(1, 0)
    qtbot.waitUntil(lambda: view.group.current_id() == ids[(2, 2, 1)], timeout=WAIT_MS)

    # all of them: the table shows exactly the criterion's disagreements
    agreement.show_all.click()
    qtbot.waitUntil(lambda: view.model.rowCount() == 2 and not view.model.loading, timeout=WAIT_MS)
    assert {view.model.rollout(r).id for r in range(2)} == set(listed)

    # a label changes the figures: the first disagreement relabelled good agrees now
    save_label(ws_path, ids[(2, 0, 3)], 1, "")
    agreement.refresh()
    assert summary.item(0, 5).text() == "1" and summary.item(0, 2).text() == "0.88"

    # format: select it and the matrix follows
    summary.selectRow(1)
    assert [[agreement.confusion.item(i, j).text() for j in range(2)] for i in range(2)] == [
        ["0", "2"],
        ["0", "6"],
    ]


def test_the_prompts_tab_sorts_prompts_by_standing(qtbot, state, view: InspectorView, ws_path) -> None:
    run_id, ids = build(ws_path)
    state.refresh()
    state.select_run(run_id)
    qtbot.waitUntil(lambda: view.model.rowCount() == 24 and not view.model.loading, timeout=WAIT_MS)
    view.tabs.setCurrentWidget(view.prompts)
    prompts = view.prompts
    qtbot.waitUntil(lambda: prompts.table.rowCount() == 3, timeout=WAIT_MS)
    assert "3 prompts sampled: 1 solved, 1 learning, 1 never solved" in prompts.summary.text()
    assert "correct >= 0.5" in prompts.summary.text()
    prompts.standing.setCurrentIndex(prompts.standing.findData("never solved"))
    assert prompts.table.rowCount() == 1 and prompts.table.item(0, 0).text() == "1"
    prompts.standing.setCurrentIndex(prompts.standing.findData("learning"))
    assert prompts.table.item(0, 2).text() == "learning" and prompts.table.item(0, 3).text() == "12%"
    # activating it: the prompt's rollouts in the table, its latest group's first selected, over training
    prompts.table.cellActivated.emit(0, 0)
    qtbot.waitUntil(lambda: view.model.rowCount() == 8 and not view.model.loading, timeout=WAIT_MS)
    assert view.tabs.currentWidget() is view.history
    qtbot.waitUntil(lambda: view.target() == ids[(2, 2, 0)], timeout=WAIT_MS)
