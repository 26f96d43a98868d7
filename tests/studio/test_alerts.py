"""Training-time alerts in the studio (pytest-qt, offscreen): on a workspace with a recorded alert, the run's
dashboard shows a banner and markers at the alert's step, "Show examples" opens the inspector on exactly
the alert's example rollouts, "Acknowledge" writes the flag, and an `alert` event brings a new one in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.alerts_store import add_alert
from engine.contract.protocol import AlertRaised
from engine.store import GroupRecord, RolloutRecord, Workspace
from studio.state.alerts import read_alerts
from studio.widgets.main_window import MainWindow

WAIT_MS = 10_000


def build(path: Path) -> tuple[int, list[int]]:
    """A finished 30-step run with metrics, 8 rollouts per step and a length-drift alert at step 20."""
    ws = Workspace(path)
    run_id = ws.create_run("hacked", "grpo", {}, 30)
    ids = []
    for step in range(1, 31):
        tokens = 6 if step < 15 else 16
        ws.write_metrics(
            run_id, step, {"reward": 0.3 + step / 60, "reward_std": 0.1, "completions/mean_length": tokens}
        )
        groups = [
            GroupRecord(
                f"{p}+1=",
                p,
                {"answer": str(p + 1)},
                [
                    RolloutRecord("word " * tokens * (g + 1), 0.2 * g, 0.0, tokens * (g + 1), False)
                    for g in range(4)
                ],
            )
            for p in range(2)
        ]
        last = ws.write_rollouts(run_id, step, groups)
        if step == 20:
            ids = [last, last - 4]  # the longest completion of each group
    add_alert(
        ws,
        run_id,
        20,
        "length_drift",
        "warning",
        "Completions grew from 6.0 to 16.0 tokens on average (2.7x).",
        {"ratio": 2.67, "examples": ids, "step": 20},
    )
    ws.set_status(run_id, "finished")
    ws.close()
    return run_id, ids


def test_banner_markers_examples_and_acknowledge(qtbot, state, window: MainWindow, ws_path: Path) -> None:
    run_id, ids = build(ws_path)
    state.refresh()
    state.select_run(run_id)
    window.show_view("dashboard")
    dashboard = window.dashboard
    banner = dashboard.alert_banner
    qtbot.waitUntil(lambda: banner.isVisible(), timeout=WAIT_MS)
    text = banner.message.text()
    assert "Length drift" in text and "step 20" in text and "2.7x" in text
    assert banner.examples.text() == "Show examples (2)"
    # a dashed line at step 20 on every plot, labelled on the reward plot
    markers = dashboard.alert_markers
    assert markers.steps() == [20]
    reward_plot = dashboard.grid.plots[0]
    assert reward_plot.spec.name == "reward"
    on_reward = [line for plot, line in markers.lines if plot is reward_plot.plot]
    assert len(on_reward) == 1 and "Length drift" in on_reward[0].label.textItem.toPlainText()
    assert len(markers.lines) == len(dashboard.grid.plots)

    # Show examples: the inspector, only the alert's rollouts, the first selected
    banner.examples.click()
    inspector = window.inspector
    assert window.tabs.currentWidget() is inspector
    qtbot.waitUntil(lambda: inspector.model.rowCount() == 2 and not inspector.model.loading, timeout=WAIT_MS)
    assert {inspector.model.rollout(r).id for r in range(2)} == set(ids)
    assert inspector.model.filter.ids == tuple(ids)
    qtbot.waitUntil(lambda: inspector.target() == ids[0], timeout=WAIT_MS)

    # Acknowledge: written to the workspace, the banner goes, the marker stays, greyed
    window.show_view("dashboard")
    banner.ack.click()
    with sqlite3.connect(ws_path) as conn:
        assert conn.execute("SELECT acknowledged FROM alerts").fetchall() == [(1,)]
    assert not banner.isVisible()
    assert markers.steps() == [20]
    assert markers.lines[0][1].pen.color().name() == "#a0aec0"

    # a new alert announced by the engine shows at once
    ws = Workspace(ws_path)
    new_id = add_alert(
        ws, run_id, 25, "cheat_shapes", "critical", "Echoes everywhere.", {"shape": "echo_prompt"}
    )
    ws.close()
    state.sig_engine_event.emit(
        None,
        AlertRaised(
            run_id=run_id, alert_id=new_id, step=25, kind="cheat_shapes", severity="critical", message="m"
        ),
    )
    assert banner.isVisible() and "Cheat-shaped rollouts" in banner.message.text()
    assert not banner.examples.isEnabled()  # this one names no example rollouts
    assert markers.steps() == [20, 25]
    assert [a.acknowledged for a in read_alerts(state.db.conn, run_id)] == [True, False]


def test_a_workspace_without_alerts_shows_no_banner(qtbot, state, window: MainWindow, ws_path: Path) -> None:
    ws = Workspace(ws_path)
    run_id = ws.create_run("honest", "grpo", {}, 3)
    ws.write_metrics(run_id, 1, {"reward": 0.5})
    ws.close()
    state.refresh()
    state.select_run(run_id)
    window.show_view("dashboard")
    assert not window.dashboard.alert_banner.isVisible()
    assert window.dashboard.alert_markers.steps() == []
