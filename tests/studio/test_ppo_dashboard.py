"""The dashboard on runs the real engine recorded: a GRPO and a PPO run of the demo task (3 steps each,
`rl-studio-engine demo --algorithm grpo|ppo`). PPO's own curves get rows of their own, laid out only while
a PPO run is on screen; a GRPO and a PPO run compare in one view, their shared keys overlaid."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_plots import _curve, _grid

from studio.plots.plot_grid import PPO_SPECS, SPECS
from studio.state.studio_state import StudioState

REPO = Path(__file__).resolve().parents[2]
PPO_KEYS = [
    "ppo/policy_loss",
    "ppo/value_loss",
    "ppo/explained_variance",
    "ppo/approx_kl",
    "ppo/clip_fraction",
    "ppo/value_clip_fraction",
    "ppo/kl_coef",
    "ppo/return_mean",
    "ppo/value_mean",
]


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workspace with run 1 (GRPO) and run 2 (PPO) of the demo, trained by the real engine."""
    path = tmp_path_factory.mktemp("ppo") / "ws.sqlite"
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    for algorithm in ("grpo", "ppo"):
        cmd = [sys.executable, "-m", "engine.cli", "demo", "--algorithm", algorithm, "--steps", "3"]
        done = subprocess.run(
            [*cmd, "--db", str(path), "--json"], capture_output=True, text=True, env=env, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT id, algorithm, status FROM runs ORDER BY id").fetchall() == [
        (1, "grpo", "finished"),
        (2, "ppo", "finished"),
    ]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


@pytest.fixture
def runs(recorded: Path, ws_path: Path) -> tuple[int, int]:
    """(GRPO run, PPO run), copied into this test's workspace (ask for it before `state`)."""
    shutil.copy(recorded, ws_path)
    return 1, 2


def test_ppo_rows_show_for_ppo_runs_only(qtbot, runs: tuple[int, int], state: StudioState) -> None:
    grpo, ppo = runs
    grid = _grid(qtbot, state)
    grid.set_runs([grpo], background=False)
    assert not grid.ppo_shown and all(not p.curves for p in grid.ppo_plots)
    assert all(p.plot not in grid.view.ci.items for p in grid.ppo_plots)
    items = set(grid.view.ci.items)

    grid.set_runs([ppo], background=False)
    assert grid.ppo_shown and all(p.plot in grid.view.ci.items for p in grid.ppo_plots)
    drawn = sorted(key for p in grid.ppo_plots for (_run, key) in p.curves)
    assert drawn == sorted(PPO_KEYS)  # every PPO curve the engine logs, each in one plot
    rows = {grid.view.ci.items[p.plot][0][0] for p in grid.ppo_plots}
    assert min(rows) == (len(SPECS) - 1) // 3 + 1 and len(rows) == (len(PPO_SPECS) + 2) // 3
    grid.refresh()
    for key in PPO_KEYS:
        plot = next(p.spec.name for p in grid.ppo_plots if (ppo, key) in p.curves)
        x, y = _curve(grid, plot, ppo, key).line.getOriginalDataset()
        assert list(x) == [1, 2, 3] and np.isfinite(y).all(), key
    # the shared curves are there too, under TRL's names
    for plot, key in (("reward", "reward"), ("kl", "kl"), ("loss", "loss"), ("entropy", "entropy")):
        assert (ppo, key) in next(p for p in grid.plots if p.spec.name == plot).curves

    grid.set_runs([grpo], background=False)  # back to GRPO: the PPO rows go
    assert not grid.ppo_shown and set(grid.view.ci.items) == items


def test_a_grpo_and_a_ppo_run_compare_in_one_view(qtbot, runs: tuple[int, int], state: StudioState) -> None:
    grpo, ppo = runs
    grid = _grid(qtbot, state)
    grid.set_runs([grpo, ppo], background=False)
    grid.refresh()
    for plot, key in (
        ("reward", "reward"),
        ("criteria", "rewards/correct/mean"),
        ("eval", "eval/correct/mean"),
        ("loss", "loss"),
        ("entropy", "entropy"),
        ("length", "completions/mean_length"),
        ("grad_norm", "grad_norm"),
    ):
        a, b = _curve(grid, plot, grpo, key), _curve(grid, plot, ppo, key)  # overlaid in the same plot
        assert a.label.startswith(f"#{grpo}") and b.label.startswith(f"#{ppo}")
        assert a.line.opts["pen"].color() != b.line.opts["pen"].color()  # told apart by run colour
        xa, _ = a.line.getOriginalDataset()
        xb, _ = b.line.getOriginalDataset()
        expected = [0, 3] if plot == "eval" else [1, 2, 3]
        assert list(xa) == list(xb) == expected, plot
    # the demo's GRPO trains with beta = 0, so it logs no KL; PPO's penalty does
    assert set(next(p for p in grid.plots if p.spec.name == "kl").curves) == {(ppo, "kl")}
    # PPO's own curves: shown for the PPO run, GRPO has none to add
    assert grid.ppo_shown
    assert {run for p in grid.ppo_plots for (run, _key) in p.curves} == {ppo}


def test_a_ppo_rollout_card_shows_value_and_return_beside_its_advantage(
    qtbot, runs: tuple[int, int], ws_path
) -> None:
    from studio.state.rollout_query import RolloutFilter, read_page
    from studio.widgets.inspector_cards import RolloutCard

    grpo, ppo = runs
    conn = sqlite3.connect(ws_path)
    (ppo_row,) = read_page(conn, ppo, RolloutFilter(), limit=1).rows
    (grpo_row,) = read_page(conn, grpo, RolloutFilter(), limit=1).rows
    conn.close()
    assert ppo_row.value is not None and ppo_row.value_target is not None
    assert grpo_row.value is None and grpo_row.value_target is None  # GRPO has no critic
    card = RolloutCard()
    qtbot.addWidget(card)
    for row in (ppo_row, grpo_row):
        card.show_rollout(row, 1, ["correct"], {}, {"correct": 1.0}, (0.0, 1.0), True, [])
        text = card.advantage.text()
        assert "adv" in text
        if row is ppo_row:
            assert f"value {ppo_row.value:+.3f}" in text and f"return {ppo_row.value_target:+.3f}" in text
        else:
            assert "value" not in text and "return" not in text
