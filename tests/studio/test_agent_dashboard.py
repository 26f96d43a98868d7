"""The dashboard's agent plots: laid out while an agent run is on screen, with the agent metrics and the
held-out success per tier that engine/envs/metrics.py computed from the recorded run's real episodes."""

from __future__ import annotations

import numpy as np
from helpers import add_run
from test_agent_inspector import agent_run, recorded  # noqa: F401  (fixtures)
from test_plots import _curve, _grid

from studio.state.studio_state import StudioState


def test_agent_plots_show_for_agent_runs_only(qtbot, agent_run, state: StudioState, ws_path) -> None:  # noqa: F811
    plain = add_run(ws_path, steps=5)
    state.refresh()
    grid = _grid(qtbot, state)
    grid.set_runs([plain], background=False)
    assert not grid.agent_shown and all(not p.curves for p in grid.agent_plots)
    items = grid.view.ci.items

    grid.set_runs([agent_run], background=False)
    assert grid.agent_shown and all(p.plot in grid.view.ci.items for p in grid.agent_plots)
    labels = {p.spec.name: sorted(c.label for c in p.curves.values()) for p in grid.agent_plots}
    assert labels["agent_rates"] == [
        "invalid_call_rate",
        "loop_rate",
        "max_turns_rate",
        "success_rate",
        "tool_error_rate",
    ]
    assert labels["agent_calls"] == ["calls/list_files", "calls/move_file", "calls/write_file", "turns_mean"]
    assert labels["eval_success"] == ["all", "easy", "hard"]
    success = _curve(grid, "agent_rates", agent_run, "agent/success_rate")
    grid.refresh()
    x, y = success.line.getOriginalDataset()
    assert list(x) == [1, 2] and np.isfinite(y).all() and ((y >= 0) & (y <= 1)).all()

    grid.set_runs([plain], background=False)  # back to a single-turn run: the fourth row goes
    assert not grid.agent_shown and all(p.plot not in grid.view.ci.items for p in grid.agent_plots)
    assert set(items) == set(grid.view.ci.items)
