"""The inspector's group view says whether a run's prompts are the exact text the model saw (the chat template
applied, which runs record since [data] chat_template exists) or the dataset's text (older runs)."""

from __future__ import annotations

import json
from pathlib import Path

from test_inspector import open_run, view  # noqa: F401 - the fixture
from test_rollout_workspace import build_run

from engine.contract import schema
from studio.state.rollout_groups import records_rendered_prompts


def _set_config(ws_path: Path, run_id: int, config: dict[str, object]) -> None:
    conn = schema.connect(str(ws_path))
    with conn:
        conn.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config), run_id))
    conn.close()


def test_the_group_view_names_the_rendered_prompt(qtbot, state, view, ws_path: Path) -> None:  # noqa: F811
    rendered = build_run(ws_path, steps=2, name="rendered")
    _set_config(
        ws_path, rendered, {"data": {"train": "t.jsonl", "chat_template": "auto", "system_prompt": ""}}
    )
    older = build_run(ws_path, steps=2, name="older", seed=1)
    _set_config(ws_path, older, {"data": {"train": "t.jsonl"}})
    conn = schema.connect(str(ws_path), readonly=True)
    assert records_rendered_prompts(conn, rendered) is True
    assert records_rendered_prompts(conn, older) is False
    assert records_rendered_prompts(conn, 999) is None
    conn.close()

    open_run(qtbot, state, view, rendered)
    assert "prompt as the model saw it" in view.group.title.text()
    assert "chat template" in view.group.prompt.toolTip()
    open_run(qtbot, state, view, older)
    qtbot.waitUntil(lambda: "(the dataset's text)" in view.group.title.text(), timeout=10_000)
    assert "before RL Studio kept the rendered prompt" in view.group.prompt.toolTip()
