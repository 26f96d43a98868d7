"""The inspector on a workspace written by the real engine (`python -m engine.cli run`, 2 steps of the
bundled demo on CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, Qt

from engine.contract.paths import DEMO_DIR
from studio.state.studio_state import StudioState
from studio.widgets.inspector import InspectorView

REPO = Path(__file__).resolve().parents[2]
PROMPTS_PER_STEP, GENERATIONS, STEPS = 2, 4, 2


def demo_config(folder: Path) -> Path:
    """A small run config over the bundled demo (the shape of tests/engine's write_config)."""
    lines = [
        'algorithm = "grpo"',
        "[model]",
        f'path = "{DEMO_DIR / "model"}"',
        "[data]",
        f'train = "{DEMO_DIR / "data" / "train.jsonl"}"',
        "[rubric]",
        f'path = "{DEMO_DIR / "rubric.toml"}"',
        "[lora]",
        "r = 8",
        "alpha = 16",
        "[training]",
        f"max_steps = {STEPS}",
        f"num_generations = {GENERATIONS}",
        f"prompts_per_step = {PROMPTS_PER_STEP}",
        "max_completion_length = 12",
        "learning_rate = 5e-3",
        "checkpoint_every = 0",
        "eval_every = 0",
        'device = "cpu"',
        "seed = 1",
    ]
    path = folder / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.skipif(
    not (DEMO_DIR / "model" / "config.json").is_file(),
    reason="the bundled demo model is missing: run python engine/assets/build_demo.py",
)
def test_the_inspector_shows_what_the_engine_recorded(
    qtbot, state: StudioState, ws_path: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(demo_config(tmp_path)), "--db", str(ws_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    state.refresh()
    run_id = state.runs()[0].id

    view = InspectorView(state)
    view.resize(1300, 850)
    view.show()
    state.select_run(run_id)
    expected = STEPS * PROMPTS_PER_STEP * GENERATIONS
    model = view.model
    qtbot.waitUntil(lambda: model.rowCount() == expected and model.at_end, timeout=10_000)
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers[3:7] == ["Reward", "correct", "format", "length"]
    rows = [model.rollout(i) for i in range(expected)]
    assert [r.step for r in rows if r] == [1] * 8 + [2] * 8
    for r in rows:
        assert r is not None and set(r.scores) == {"correct", "format", "length"} and r.prompt
    qtbot.waitUntil(lambda: view.group.detail is not None, timeout=10_000)
    assert len(view.group.detail.rollouts) == GENERATIONS
    qtbot.waitUntil(lambda: model.total == expected, timeout=10_000)
    view.model.close()
    view.close()
    view.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
