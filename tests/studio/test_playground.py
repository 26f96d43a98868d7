"""The playground view against the real engine: a 2-step demo run's adapter and its base model answer a
typed prompt and a dataset row, streamed into their columns, scored by the run's rubric; an engine that
dies says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.contract.paths import DEMO_DIR
from studio.engine_client import REPO_ROOT, engine_command
from studio.state.playground import Request
from studio.state.rollout_groups import records_rendered_prompts
from studio.state.studio_state import StudioState
from studio.widgets.playground import PlaygroundView

requires_demo = pytest.mark.skipif(
    not (DEMO_DIR / "model" / "config.json").is_file(),
    reason="the bundled demo model is missing (engine/assets/demo/model): build it with engine/assets/build_demo.py",
)


def _train_demo(db: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [*engine_command(), "demo", "--steps", "2", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return int(json.loads(out.stdout.splitlines()[-1])["run_id"])


@pytest.fixture
def view(qtbot, state: StudioState):  # type: ignore[no-untyped-def]
    v = PlaygroundView(state)
    qtbot.addWidget(v)
    v.resize(1300, 800)
    v.show()
    yield v
    v.shutdown()


@requires_demo
def test_playground_streams_base_and_run_side_by_side(
    qtbot, state: StudioState, ws_path: Path, view, tmp_path: Path
) -> None:
    run_id = _train_demo(ws_path)
    state.refresh()
    state.engines.command = engine_command()
    view.refresh_runs()
    view.set_checked_runs([run_id])
    assert view.checked_runs() == [run_id]
    pieces: list[tuple[object, str]] = []
    view.playground.sig_text.connect(lambda key, text: pieces.append((key, text)))

    view.prompt.setPlainText("2+3=")
    # Stop while the engine is still loading the model: every answer ends, stopped, unscored.
    view.generate()
    assert view.stop_button.isEnabled()
    view.stop_button.click()
    qtbot.waitUntil(lambda: not view.playground.busy, timeout=300_000)
    assert all(c.done is not None and c.done.stopped for c in view.playground.columns.values())
    assert view.status.text() == "Stopped." and not view.stop_button.isEnabled()
    assert all("not scored" in card.scores.text() for card in view.cards.values())

    view.temperature.setValue(0.0)
    view.max_tokens.setValue(12)
    view.generate()
    assert view.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not view.playground.busy, timeout=300_000)
    assert next(c.title for c in view.playground.columns.values()) == "Base model"
    assert list(view.cards)[1][1] == f"run:{run_id}"
    for key, card in view.cards.items():
        column = view.playground.columns[key]
        assert column.done is not None, column.error
        streamed = "".join(text for k, text in pieces if k == key)
        assert len([k for k, _ in pieces if k == key]) > 1  # token by token
        assert card.text.toPlainText() == streamed == column.done.text != ""
        assert "format" in card.scores.text() and "reward" in card.scores.text()
        assert "arith-v1 v1" in card.scores.text()  # the rubric version the run stored
        # A typed prompt has no `answer` column: `correct` says why it is not scored.
        assert column.done.scores["correct"] is None and "answer" in card.scores.text()
    assert not view.stop_button.isEnabled()
    engine = next(iter(view.playground.engines.values()))
    pid = engine.process.processId()

    # A dataset row of the run's eval data: its columns reach the rubric, so every criterion scores.
    view.split.setCurrentText("eval")
    qtbot.waitUntil(lambda: view.rows_model.rowCount() > 0)
    view.select_row(2)
    view.generate()
    qtbot.waitUntil(lambda: not view.playground.busy, timeout=300_000)
    eval_prompt = json.loads((DEMO_DIR / "data" / "eval.jsonl").read_text().splitlines()[2])["prompt"]
    for column in view.playground.columns.values():
        assert column.done is not None, column.error
        assert column.done.rendered_prompt == eval_prompt
        assert all(v is not None for v in column.done.scores.values()), column.done.errors
    assert next(iter(view.playground.engines.values())).process.processId() == pid  # the engine is reused
    # The run recorded its prompts as the model saw them: the inspector says so.
    assert state.db is not None and records_rendered_prompts(state.db.conn, run_id) is True

    # A run on another base model (a copy of the demo model elsewhere) goes to an engine of its own, and
    # each run is compared with its own base.
    other = _copy_of_run_on_another_base(ws_path, run_id, tmp_path)
    state.refresh()
    view.refresh_runs()
    view.set_checked_runs([run_id, other])
    view.source_tabs.setCurrentIndex(0)
    view.generate()
    qtbot.waitUntil(lambda: not view.playground.busy, timeout=300_000)
    assert len(view.playground.engines) == 2
    titles = [c.title for c in view.playground.columns.values()]
    assert titles.count("Base model (demo/model)") == 1 and titles.count("Base model (other-base/model)") == 1
    assert all(c.done is not None and c.done.text for c in view.playground.columns.values())

    # Another workspace: the engines end, the answers go, the run list is the new workspace's.
    pids = [e.process.processId() for e in view.playground.engines.values()]
    state.open_workspace(tmp_path / "another.sqlite")
    assert view.playground.engines == {} and view.cards == {} and view.empty.isVisibleTo(view)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert view.runs.count() == 0 and not view.stop_button.isEnabled()


def _copy_of_run_on_another_base(ws_path: Path, run_id: int, tmp_path: Path) -> int:
    """Run `run_id` again, as far as the playground can tell, but on a copy of its base model."""
    import shutil

    from engine.contract import schema
    from engine.contract.paths import run_dir

    model = tmp_path / "other-base" / "model"
    shutil.copytree(DEMO_DIR / "model", model)
    conn = schema.connect(str(ws_path))
    config, rubric_version = conn.execute(
        "SELECT config, rubric_version_id FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    data = json.loads(config)
    data["model"]["path"] = str(model)
    with conn:
        other = conn.execute(
            "INSERT INTO runs(name, status, algorithm, config, rubric_version_id, step, max_steps, created_at)"
            " VALUES ('other-base', 'finished', 'grpo', ?, ?, 2, 2, 0)",
            (json.dumps(data), rubric_version),
        ).lastrowid
    conn.close()
    assert other is not None
    shutil.copytree(run_dir(ws_path, run_id) / "adapter", run_dir(ws_path, other) / "adapter")
    return int(other)


def test_a_playground_engine_that_dies_says_so(qtbot, state: StudioState, view, tmp_path: Path) -> None:
    # A run row with a config is all the studio reads before it starts the engine.
    from engine.contract.config import load_run_config

    cfg = load_run_config(DEMO_DIR / "run.toml")
    assert state.db is not None
    with state.db.writer() as c:
        c.execute(
            "INSERT INTO runs(name, status, algorithm, config, max_steps, created_at) VALUES (?, ?, ?, ?, ?, 0)",
            ("r", "finished", "grpo", json.dumps(cfg.to_dict() | {"base_dir": str(DEMO_DIR)}), 2),
        )
    state.refresh()
    run_id = state.runs()[0].id
    # The engine process boundary: a command that dies at once, as an engine killed by the OOM killer would.
    state.engines.command = [
        sys.executable,
        "-c",
        "import sys; print('out of memory', file=sys.stderr); sys.exit(3)",
    ]
    view.refresh_runs()
    assert view.playground.generate(Request(runs=[run_id], prompt="1+1=")) == ""
    qtbot.waitUntil(lambda: view.banner.isVisible(), timeout=30_000)
    assert "exited with code 3" in view.banner.message.text()
    assert "out of memory" in view.banner.details.toPlainText()
    assert all(c.error for c in view.playground.columns.values())
    assert not view.stop_button.isEnabled()
    assert view.playground.engines == {}  # the next Generate starts a new one
