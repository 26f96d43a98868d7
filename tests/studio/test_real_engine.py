"""The one test that drives the real engine from the GUI: the tiny demo model, a few steps on CPU.

Launch from the launcher, curves receive points, pause, resume, stop. It takes about a minute here.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.contract.paths import DEMO_DIR

pytestmark = pytest.mark.skipif(
    not (DEMO_DIR / "model" / "config.json").is_file(),
    reason="the bundled demo model is missing (engine/assets/demo/model): build it with engine/assets/build_demo.py",
)

CONFIG = """
name = "real-engine-test"
[model]
path = "{demo}/model"
[data]
train = "{demo}/data/train.jsonl"
eval = "{demo}/data/eval.jsonl"
eval_limit = 4
[rubric]
path = "{demo}/rubric.toml"
[lora]
r = 8
alpha = 16
[training]
max_steps = 40
num_generations = 4
prompts_per_step = 2
max_completion_length = 8
learning_rate = 1e-3
eval_every = 0
checkpoint_every = 100
device = "cpu"
"""


def test_launch_watch_pause_resume_stop_with_the_real_engine(qtbot, state, window, tmp_path: Path) -> None:
    from studio.engine_client import engine_command

    state.engines.command = engine_command()
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(demo=DEMO_DIR.as_posix()))
    launcher = window.launcher
    assert launcher.load_path(config)
    assert launcher.validate() is not None, launcher.message.text()
    launcher.launch()
    qtbot.waitUntil(lambda: state.current_run is not None, timeout=180_000)
    run_id = state.current_run
    dash = window.dashboard
    plots = {p.spec.name: p for p in dash.grid.plots}

    # curves receive points
    qtbot.waitUntil(lambda: (run_id, "reward") in plots["reward"].curves, timeout=180_000)
    reward = plots["reward"].curves[(run_id, "reward")]
    qtbot.waitUntil(lambda: reward.series.n >= 2, timeout=180_000)
    qtbot.waitUntil(lambda: reward.line.getOriginalDataset()[0] is not None, timeout=5_000)
    assert any(key[1].startswith("rewards/") for key in plots["criteria"].curves)
    assert state.progress.get(run_id) is not None and state.progress[run_id].max_steps == 40

    # pause: the engine acknowledges, and the step stops moving
    qtbot.waitUntil(dash.pause_action.isEnabled, timeout=10_000)
    dash.pause_action.trigger()
    qtbot.waitUntil(lambda: state.run(run_id).status == "paused", timeout=120_000)
    paused_step = state.run(run_id).step
    qtbot.wait(3000)
    state.refresh()
    assert state.run(run_id).step == paused_step

    # resume: training goes on
    qtbot.waitUntil(dash.resume_action.isEnabled, timeout=10_000)
    dash.resume_action.trigger()
    qtbot.waitUntil(lambda: state.run(run_id).step > paused_step, timeout=120_000)

    # stop: graceful, with a checkpoint, and the engine exits cleanly
    proc = state.engines.for_run(run_id)
    assert proc is not None
    dash.stop_action.trigger()
    deadline = time.monotonic() + 180
    qtbot.waitUntil(lambda: not proc.running or time.monotonic() > deadline, timeout=185_000)
    assert proc.exit_code == 0 and not proc.crashed, proc.stderr_tail()
    state.refresh()
    run = state.run(run_id)
    assert run.status == "stopped" and run.step < 40
    assert state.db.has_complete_checkpoint(run_id)
    assert dash.resume_action.isEnabled()  # a stopped run can be resumed
    assert reward.series.n >= 2 and "[run" in window.log_pane.text.toPlainText()
