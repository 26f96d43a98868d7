"""The whole window with a fake engine: launch, steer, crash, compare, close while training."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from helpers import add_metrics, add_run, fake_engine_command, write_config

from engine.contract.config import SECTIONS, field_help, load_run_config
from studio.state import settings
from studio.state.config_form import form_fields
from studio.widgets.main_window import MainWindow


def _current_tab(window: MainWindow) -> str:
    return next(name for name, w in window.views.items() if w is window.tabs.currentWidget())


def test_title_shows_the_workspace_and_recent_list_remembers_it(
    window: MainWindow, ws_path: Path, tmp_path
) -> None:
    assert str(ws_path) in window.windowTitle()
    other = tmp_path / "other.sqlite"
    assert window.open_workspace(str(other))
    assert str(other) in window.windowTitle()
    assert settings.recent_workspaces()[:2] == [str(other), str(ws_path)]


def test_layout_is_restored_on_the_next_start(qtbot, state, window: MainWindow) -> None:
    window.log_dock.hide()
    window.show_view("rubric")
    window.sidebar.splitter.setSizes([300, 100, 200])
    window.save_layout()
    again = MainWindow(state)
    qtbot.addWidget(again)
    again.show()
    assert not again.log_dock.isVisible() and again.sidebar_dock.isVisible()
    assert _current_tab(again) == "rubric"
    assert again.sidebar.splitter.sizes()[2] > again.sidebar.splitter.sizes()[1]
    window.log_dock.show()
    window.save_layout()


def test_launcher_has_every_config_field_with_its_help_as_tooltip(window: MainWindow) -> None:
    expected = {"algorithm", "name"}
    for section, cls in SECTIONS.items():
        expected |= {f"{section}.{f.name}" for f in dataclasses.fields(cls)}
    assert {spec.key for spec in form_fields()} == expected
    assert set(window.launcher.editors) == expected
    lr = window.launcher.editors["training.learning_rate"]
    assert (
        field_help("training", "learning_rate") in lr.toolTip() and "[training] learning_rate" in lr.toolTip()
    )


def test_launcher_validates_with_the_engine_rules_and_round_trips_toml(
    qtbot, window: MainWindow, tmp_path
) -> None:
    launcher = window.launcher
    assert launcher.load_path(write_config(tmp_path))
    assert launcher.validate() is not None and launcher.launch_button.isEnabled()
    launcher._line_edit(launcher.editors["training.learning_rate"]).setText("0.5")
    assert launcher.validate() is None
    assert "learning_rate" in launcher.message.text() and not launcher.launch_button.isEnabled()
    launcher._line_edit(launcher.editors["training.learning_rate"]).setText("3e-5")
    launcher.editors["training.max_steps"].setValue(17)  # type: ignore[attr-defined]
    launcher._line_edit(launcher.editors["data.train"]).setText(str(tmp_path / "missing.jsonl"))
    assert launcher.validate() is None and "does not exist" in launcher.message.text()
    launcher._line_edit(launcher.editors["data.train"]).setText(
        str(
            load_run_config(write_config(tmp_path)).resolve(
                load_run_config(write_config(tmp_path)).data.train
            )
        )
    )
    cfg = launcher.validate()
    assert cfg is not None
    saved = tmp_path / "saved.toml"
    launcher.save_path(cfg, saved)
    back = load_run_config(saved)
    assert back.training.max_steps == 17 and back.training.learning_rate == 3e-5


def test_launch_from_the_form_shows_the_run_live_then_finished(
    qtbot, state, window: MainWindow, tmp_path
) -> None:
    launcher = window.launcher
    launcher.load_path(write_config(tmp_path))
    launcher._line_edit(launcher.editors["name"]).setText("from-the-form")
    launcher.launch()
    assert _current_tab(window) == "dashboard"
    qtbot.waitUntil(lambda: state.current_run is not None, timeout=15_000)
    run_id = state.current_run
    grid = window.dashboard.grid
    qtbot.waitUntil(lambda: grid.curve_count() > 5, timeout=15_000)
    qtbot.waitUntil(lambda: state.run(run_id).status == "finished", timeout=20_000)
    reward = next(p for p in grid.plots if p.spec.name == "reward").curves[(run_id, "reward")]
    qtbot.waitUntil(lambda: reward.line.getOriginalDataset()[0] is not None, timeout=5_000)
    qtbot.waitUntil(lambda: len(reward.line.getOriginalDataset()[0]) == 8, timeout=5_000)
    assert state.run(run_id).name == "from-the-form"
    assert "finished" in window.dashboard.header.status.text()
    assert window.sidebar.runs_model.index(0, 0).data() == f"#{run_id} from-the-form"
    qtbot.waitUntil(lambda: "[fake] run" in window.log_pane.text.toPlainText(), timeout=5_000)
    # run again with changes: the launcher opens on that run's config
    window.dashboard.rerun_action.trigger()
    assert _current_tab(window) == "launcher"
    assert launcher._line_edit(launcher.editors["name"]).text() == "from-the-form (again)"
    assert launcher.validate() is not None


def test_pause_resume_stop_and_resume_a_stopped_run_with_the_shortcuts(
    qtbot, state, window, tmp_path
) -> None:
    state.engines.command = fake_engine_command("run_ok.jsonl", interval=0.15)
    state.launch(write_config(tmp_path), name="steered")
    qtbot.waitUntil(
        lambda: state.current_run is not None and state.run(state.current_run).step >= 1, timeout=15_000
    )
    dash = window.dashboard
    run_id = state.current_run
    qtbot.waitUntil(dash.pause_action.isEnabled, timeout=5_000)
    assert not dash.resume_action.isEnabled()
    assert dash.pause_action.shortcut().toString() == "Ctrl+P"
    dash.pause_action.trigger()
    qtbot.waitUntil(lambda: state.run(run_id).status == "paused", timeout=10_000)
    qtbot.waitUntil(dash.resume_action.isEnabled, timeout=5_000)
    dash.resume_action.trigger()
    qtbot.waitUntil(lambda: state.run(run_id).status == "running", timeout=10_000)
    dash.stop_action.trigger()
    qtbot.waitUntil(lambda: state.run(run_id).status == "stopped", timeout=10_000)
    qtbot.waitUntil(lambda: not state.engines.running(), timeout=10_000)
    stopped_at = state.run(run_id).step
    qtbot.waitUntil(dash.resume_action.isEnabled, timeout=5_000)
    dash.resume_action.trigger()  # a stopped run: `resume RUN_ID` in a new engine
    qtbot.waitUntil(lambda: state.run(run_id).status == "finished", timeout=20_000)
    assert state.run(run_id).step == 8 > stopped_at
    reward = next(p for p in dash.grid.plots if p.spec.name == "reward").curves[(run_id, "reward")]
    qtbot.waitUntil(lambda: list(reward.series.x) == list(range(1, 9)), timeout=5_000)


def test_a_crash_shows_the_traceback_and_the_app_keeps_working(qtbot, state, window, tmp_path) -> None:
    state.engines.command = fake_engine_command("crash.jsonl", interval=0.01)
    with qtbot.waitSignal(state.sig_run_crashed, timeout=15_000):
        state.launch(write_config(tmp_path), name="crashy")
    banner = window.dashboard.banner
    window.show_view("dashboard")
    qtbot.waitUntil(banner.isVisible, timeout=5_000)
    assert "exit code 139" in banner.message.text()
    assert "Segmentation fault" in banner.details.toPlainText()
    assert window.dashboard.header.status.text() == "failed"
    assert window.dashboard.resume_action.isEnabled()
    # the app still works: compare the failed run with a finished one
    other = add_run(state.db.path, name="fine", steps=20)
    state.refresh()
    state.select_run(other, compare=[state.current_run])
    assert not banner.isVisible()
    assert "Comparing" in window.dashboard.compare_hint.text()


def test_a_run_from_another_process_shows_live_and_can_only_be_stopped(qtbot, state, window) -> None:
    run_id = add_run(state.db.path, name="cli-run", steps=3, max_steps=100, status="running", pid=os.getpid())
    state.refresh()
    state.select_run(run_id)
    dash = window.dashboard
    assert state.control_mode(run_id) == "signal"
    assert dash.stop_action.isEnabled() and not dash.pause_action.isEnabled()
    assert "only Stop" in dash.header.detail.text()
    reward = next(p for p in dash.grid.plots if p.spec.name == "reward").curves[(run_id, "reward")]
    add_metrics(state.db.path, run_id, range(4, 10))
    qtbot.waitUntil(lambda: reward.series.n == 9, timeout=5_000)
    qtbot.waitUntil(lambda: "step 9" in dash.header.progress.format(), timeout=5_000)


def test_closing_while_training_can_keep_the_run_going(qtbot, state, window, tmp_path, monkeypatch) -> None:
    state.engines.command = fake_engine_command("run_ok.jsonl", interval=0.2)
    proc = state.launch(write_config(tmp_path), name="background")
    qtbot.waitUntil(lambda: proc.run_id is not None, timeout=15_000)
    monkeypatch.setattr(window, "ask_keep_or_stop", lambda running, what: "keep")
    window.close()
    assert proc.running, "the engine keeps training after the window closed"
    # another studio opening the workspace sees it training, from the file alone
    step = state.run(proc.run_id).step
    qtbot.waitUntil(lambda: state.db.run(proc.run_id).step > step, timeout=10_000)


def test_closing_while_training_can_stop_the_runs(qtbot, state, window, tmp_path, monkeypatch) -> None:
    state.engines.command = fake_engine_command("run_ok.jsonl", interval=0.2)
    proc = state.launch(write_config(tmp_path), name="stop-me")
    qtbot.waitUntil(lambda: proc.run_id is not None, timeout=15_000)
    monkeypatch.setattr(window, "ask_keep_or_stop", lambda running, what: "stop")
    window.close()
    assert not proc.running and proc.finished_event is not None
    assert state.db.run(proc.run_id).status == "stopped"


def test_cancel_keeps_the_window_open(qtbot, state, window, tmp_path, monkeypatch) -> None:
    state.engines.command = fake_engine_command("run_ok.jsonl", interval=0.2)
    proc = state.launch(write_config(tmp_path))
    qtbot.waitUntil(lambda: proc.run_id is not None, timeout=15_000)
    monkeypatch.setattr(window, "ask_keep_or_stop", lambda running, what: "cancel")
    window.close()
    assert window.isVisible()


DEMOS = {  # the Home tab's demo buttons: (button, note, availability, config path, run name)
    "demo": ("demo_button", "demo_note", "demo_available", "demo_config_path", "demo"),
    "agent": (
        "agent_demo_button",
        "agent_demo_note",
        "agent_demo_available",
        "agent_demo_config_path",
        "demo-agent",
    ),
}


@pytest.mark.parametrize("available", [True, False])
@pytest.mark.parametrize("demo", list(DEMOS))
def test_home_runs_a_demo_in_one_click(
    qtbot, state, window, tmp_path, monkeypatch, demo: str, available: bool
) -> None:
    import studio.widgets.home as home_module

    button_name, note_name, available_fn, path_fn, run_name = DEMOS[demo]
    config = write_config(tmp_path)
    monkeypatch.setattr(home_module, available_fn, lambda: available)
    monkeypatch.setattr(home_module, path_fn, lambda *_db: config)
    window.home.refresh()
    button = getattr(window.home, button_name)
    assert button.isEnabled() is available
    if not available:
        assert "not installed" in getattr(window.home, note_name).text()
        return
    button.click()
    assert _current_tab(window) == "dashboard"
    qtbot.waitUntil(lambda: state.current_run is not None, timeout=15_000)
    assert state.run(state.current_run).name == run_name


def test_the_bundled_agent_demo_is_what_the_home_button_launches() -> None:
    from engine.contract.paths import AGENT_DEMO_CONFIG
    from studio.state.authored import agent_demo_available, agent_demo_config_path

    assert agent_demo_available()
    assert agent_demo_config_path() == AGENT_DEMO_CONFIG
    cfg = load_run_config(AGENT_DEMO_CONFIG)
    assert cfg.environment is not None and cfg.resolve(cfg.model.path).is_dir()
