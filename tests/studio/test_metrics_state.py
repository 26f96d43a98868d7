"""Metric loading and live following on real SQLite workspaces written the way the engine writes them."""

from __future__ import annotations

import math
import time

import numpy as np
from helpers import add_metrics, add_run, set_status

from engine.contract import schema
from studio.state import metrics as metrics_module
from studio.state.studio_state import StudioState
from studio.state.workspace import WorkspaceDB


def test_small_run_loads_whole_and_nulls_are_nan(state: StudioState, ws_path) -> None:
    run_id = add_run(ws_path, steps=30)
    state.refresh()
    rm = state.load_metrics(run_id)
    assert rm.complete
    reward = rm.series["reward"]
    assert reward.x.tolist() == list(range(1, 31))
    assert math.isnan(rm.series["frac_reward_zero_std"].y[1])  # step 2 was NULL in SQLite
    assert "rewards/correct/mean" in rm.series and "eval/reward/mean" not in rm.series


def test_key_discovery_uses_the_index(state: StudioState, ws_path) -> None:
    run_id = add_run(ws_path, steps=3)
    assert state.db is not None
    assert set(state.db.metric_keys(run_id)) >= {"reward", "kl", "rewards/correct/mean"}


def test_long_run_opens_on_an_overview_then_swaps_in_the_full_history(
    qtbot, state, ws_path, monkeypatch
) -> None:
    monkeypatch.setattr(metrics_module, "OVERVIEW_POINTS", 50)
    run_id = add_run(ws_path, steps=1000, status="running")
    state.refresh()
    with qtbot.waitSignal(state.metrics.sig_run_complete, timeout=10_000):
        rm = state.load_metrics(run_id)
        assert not rm.complete
        overview = rm.series["reward"].n
        assert 40 <= overview <= 60
        # a row arrives live while the full history is being read
        add_metrics(ws_path, run_id, range(1001, 1003), max_steps=1000)
        state.watcher.poll(force=True)
    reward = rm.series["reward"]
    assert reward.n == 1002
    assert reward.x.tolist() == list(range(1, 1003))


def test_watcher_follows_rows_written_by_another_process(qtbot, state: StudioState, ws_path) -> None:
    run_id = add_run(ws_path, steps=5, max_steps=50, status="running")
    state.refresh()
    rm = state.load_metrics(run_id)
    changed: list[list[object]] = []
    state.sig_runs_changed.connect(changed.append)
    add_metrics(ws_path, run_id, range(6, 9), max_steps=50)
    qtbot.waitUntil(lambda: rm.series["reward"].n == 8, timeout=5_000)
    assert state.run(run_id).step == 8  # type: ignore[union-attr]
    set_status(ws_path, run_id, "paused")
    qtbot.waitUntil(lambda: state.run(run_id).status == "paused", timeout=5_000)  # type: ignore[union-attr]
    assert changed


def test_a_resumed_run_is_reloaded(qtbot, state: StudioState, ws_path) -> None:
    run_id = add_run(ws_path, steps=10, status="stopped")
    state.refresh()
    rm = state.load_metrics(run_id)
    assert rm.series["reward"].n == 10
    conn = schema.connect(str(ws_path))
    with conn:  # what `rl-studio-engine resume` does: drop steps after the checkpoint, restart
        conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > 6", (run_id,))
        conn.execute(
            "UPDATE runs SET status='running', step=6, started_at=? WHERE id=?", (time.time() + 1, run_id)
        )
    conn.close()
    with qtbot.waitSignal(state.metrics.sig_run_loaded, timeout=5_000):
        state.watcher.poll(force=True)
    assert state.metrics.get(run_id).series["reward"].n == 6  # type: ignore[union-attr]


def test_workspace_open_errors_say_what_to_do(tmp_path) -> None:
    bad = tmp_path / "notes.sqlite"
    bad.write_text("this is not sqlite")
    try:
        WorkspaceDB(bad)
    except Exception as exc:
        assert "not an RL Studio workspace" in str(exc) and "File > New Workspace" in str(exc)
    else:
        raise AssertionError("opened garbage")
    try:
        WorkspaceDB(tmp_path / "missing.sqlite", create=False)
    except Exception as exc:
        assert "does not exist" in str(exc)


def test_mark_failed_only_touches_unfinished_runs(state: StudioState, ws_path) -> None:
    done = add_run(ws_path, status="finished")
    live = add_run(ws_path, status="running")
    assert state.db is not None
    assert not state.db.mark_failed(done, "x")
    assert state.db.mark_failed(live, "engine died")
    assert state.db.run(live).status == "failed"  # type: ignore[union-attr]
    assert state.db.last_error(live)[0] == "engine died"


def test_sparkline_is_a_few_bucket_means(state: StudioState, ws_path) -> None:
    run_id = add_run(ws_path, steps=500)
    assert state.db is not None
    values = state.db.sparkline(run_id, 500, points=48)
    assert 40 <= len(values) <= 49
    assert values[-1] > values[0]  # the fixture's reward rises
    assert np.all(np.isfinite(values))
