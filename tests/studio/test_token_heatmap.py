"""The inspector's token heat map on a run the real engine recorded (2 GRPO steps of the bundled demo with
beta > 0): the tokens, switching the statistic that colours them, the legend and the tooltips."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QPoint
from PySide6.QtGui import QHelpEvent, QTextCursor
from PySide6.QtWidgets import QToolTip

from engine.contract import token_stats as ts
from engine.contract.paths import DEMO_DIR
from studio.state import token_heat
from studio.state.studio_state import StudioState
from studio.widgets.inspector import InspectorView
from studio.widgets.token_heatmap import NO_STATS, TokenText

REPO = Path(__file__).resolve().parents[2]


def demo_config(folder: Path) -> Path:
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
        "max_steps = 2",
        "num_generations = 4",
        "prompts_per_step = 2",
        "max_completion_length = 12",
        "learning_rate = 5e-2",
        "beta = 0.04",
        "checkpoint_every = 0",
        "eval_every = 0",
        'device = "cpu"',
        "seed = 3",
    ]
    path = folder / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def point_of(text: TokenText, index: int, at: float = 0.5) -> QPoint:
    """A point `at` of the way across token `index`'s last character, in viewport coordinates."""
    cursor = QTextCursor(text.document())
    cursor.setPosition(text.ends[index] - 1)
    left = text.cursorRect(cursor)
    cursor.setPosition(text.ends[index])
    right = text.cursorRect(cursor)
    return QPoint(round(left.left() + (right.left() - left.left()) * at), left.center().y())


def background_at(text: TokenText, index: int) -> str:
    cursor = QTextCursor(text.document())
    cursor.setPosition(text.starts[index] + 1)  # the format of the character before the cursor
    return str(cursor.charFormat().background().color().name())


@pytest.mark.skipif(
    not (DEMO_DIR / "model" / "config.json").is_file(),
    reason="the bundled demo model is missing: run python engine/assets/build_demo.py",
)
def test_the_heat_map_colours_a_recorded_completion_by_each_statistic(
    qtbot, state: StudioState, ws_path: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
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
    # the last step's rollouts: the policy has moved from the reference, so KL is not all 0
    conn = sqlite3.connect(ws_path)
    step2 = [i for (i,) in conn.execute("SELECT id FROM rollouts WHERE step = 2 ORDER BY id")]

    view = InspectorView(state)
    view.resize(1300, 850)
    view.show()
    state.select_run(run_id)
    qtbot.waitUntil(lambda: view.model.rowCount() == 16 and view.model.at_end, timeout=10_000)
    view.tabs.setCurrentWidget(view.tokens)
    heat = view.tokens
    view.show_rollouts(step2, step2[0])
    qtbot.waitUntil(lambda: heat.rollout_id == step2[0], timeout=10_000)

    blob = conn.execute("SELECT data FROM token_stats WHERE rollout_id = ?", (step2[0],)).fetchone()[0]
    tokens = ts.unpack(blob)
    assert heat.available() == [ts.LOGPROB, ts.ENTROPY, ts.LOSS, ts.KL]
    assert [heat.stat_box.itemText(i) for i in range(4)] == [
        "Log-prob",
        "Entropy",
        "Loss share",
        "KL vs reference",
    ]
    assert heat.stack.currentWidget() is heat.text and len(heat.text.starts) == len(tokens)
    shown = heat.text.toPlainText()
    for text in tokens.texts:
        if text.strip():
            assert text in shown

    # each statistic colours every token by its own scale, and the legend follows
    for stat in heat.available():
        heat.set_stat(stat)
        scale = token_heat.scale_for(stat, tokens.stats[stat])
        assert heat.legend.scale == scale and heat.caption.text() == token_heat.CAPTIONS[stat]
        for i, value in enumerate(tokens.stats[stat]):
            assert background_at(heat.text, i) == scale.color(value), (stat, i)
    heat.set_stat(ts.LOGPROB)
    least_likely = min(range(len(tokens)), key=lambda i: tokens.stats[ts.LOGPROB][i])
    assert background_at(heat.text, least_likely) != "#ffffff" or tokens.stats[ts.LOGPROB][least_likely] == 0

    # the tooltip of a token says its exact values, whatever colours it
    index = least_likely
    tip = heat.text.tooltip_at(point_of(heat.text, index))
    assert tip is not None
    logprob = tokens.stats[ts.LOGPROB][index]
    assert f"token {index + 1} of {len(tokens)} · id {tokens.ids[index]}" in tip
    assert f"Log-prob: {logprob:.4g} (p = {math.exp(logprob):.3g})" in tip
    assert f"KL vs reference: {tokens.stats[ts.KL][index]:.4g}" in tip
    assert f"Entropy: {tokens.stats[ts.ENTROPY][index]:.4g}" in tip
    viewport = heat.text.viewport()
    point = point_of(heat.text, index)
    QCoreApplication.sendEvent(viewport, QHelpEvent(QEvent.Type.ToolTip, point, viewport.mapToGlobal(point)))
    assert QToolTip.text() == tip
    assert heat.text.tooltip_at(QPoint(5, heat.text.viewport().height() - 5)) is None  # blank space
    for i in range(len(tokens)):  # either half of a token's last character is that token
        for at in (0.2, 0.8):
            assert f"token {i + 1} of {len(tokens)} ·" in (
                heat.text.tooltip_at(point_of(heat.text, i, at)) or ""
            )

    # the chosen statistic stays when the next rollout is selected
    heat.set_stat(ts.ENTROPY)
    view.step_selection(1)
    qtbot.waitUntil(lambda: heat.rollout_id == step2[1], timeout=10_000)
    assert heat.stat_box.currentData() == ts.ENTROPY

    # a rollout recorded without token stats (an older run) says so
    with conn:
        conn.execute("DELETE FROM token_stats WHERE rollout_id = ?", (step2[2],))
    view.step_selection(1)
    qtbot.waitUntil(lambda: heat.rollout_id == step2[2], timeout=10_000)
    assert heat.stack.currentWidget() is heat.message and heat.message.text() == NO_STATS
    conn.close()
    view.model.close()
    view.close()
    view.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
