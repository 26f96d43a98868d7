"""Paged Qt models over real workspaces: runs, datasets and their preview, rubric versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import add_run

from studio.models.datasets_model import PREVIEW_PAGE, DatasetsModel, JsonlPreviewModel
from studio.models.rubrics_model import VERSION_ID_ROLE, RubricsModel
from studio.models.runs_model import PAGE, RUN_ID_ROLE, SPARKLINE_ROLE, RunsModel
from studio.state.authored import register_dataset, register_rubric
from studio.state.studio_state import StudioState

RUBRIC = """name = "tiny"
[[criteria]]
name = "ok"
kind = "python"
source = "rewards.py:ok"
weight = 1.0
"""


def test_runs_model_pages_newest_first_and_follows_the_workspace(qtbot, ws_path: Path) -> None:
    for i in range(PAGE + 30):
        add_run(ws_path, name=f"r{i}", steps=2)
    state = StudioState(engine_command=["true"])
    state.open_workspace(ws_path)
    model = RunsModel(state)
    assert model.rowCount() == PAGE and model.canFetchMore()
    assert model.index(0, 0).data(RUN_ID_ROLE) == PAGE + 30
    model.fetchMore()
    assert model.rowCount() == PAGE + 30 and not model.canFetchMore()
    new_id = add_run(ws_path, name="fresh", status="running", steps=3, max_steps=10, pid=os.getpid())
    qtbot.waitUntil(lambda: model.index(0, 0).data() == f"#{new_id} fresh", timeout=5_000)
    assert model.index(0, 1).data() == "running"
    assert model.index(0, 2).data() == "3/10"
    spark = model.index(0, 3).data(SPARKLINE_ROLE)
    assert len(spark) == 3 and spark[-1] > spark[0]
    assert model.index(0, 3).data() == f"{spark[-1]:.3f}"
    state.close()


def test_a_run_whose_engine_died_reads_interrupted(qtbot, ws_path: Path) -> None:
    """After a kill -9 the row still says `running`; the list says what `rl-studio-engine runs` says."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with_ckpt = add_run(
        ws_path, name="killed", status="running", steps=8, max_steps=20, checkpoint_at=4, pid=dead.pid
    )
    without = add_run(ws_path, name="early", status="running", steps=1, max_steps=20, pid=dead.pid)
    alive = add_run(ws_path, name="alive", status="running", steps=2, max_steps=20, pid=os.getpid())
    state = StudioState(engine_command=["true"])
    state.open_workspace(ws_path)
    model = RunsModel(state)
    shown = {model.index(r, 0).data(RUN_ID_ROLE): model.index(r, 1).data() for r in range(model.rowCount())}
    assert shown == {with_ckpt: "interrupted (resumable)", without: "interrupted", alive: "running"}
    assert state.db is not None
    assert state.db.engine_alive(state.db.run(with_ckpt)) is False  # type: ignore[arg-type]


def test_dataset_preview_reads_pages_and_survives_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    rows = [json.dumps({"prompt": f"{i}+1=", "answer": str(i + 1)}) for i in range(PREVIEW_PAGE * 2 + 10)]
    rows.insert(5, "{not json")
    rows.insert(7, json.dumps({"prompt": "x", "answer": "y", "extra": [1, 2]}))
    path.write_text("\n".join(rows) + "\n")
    model = JsonlPreviewModel(path)
    assert model.rowCount() == PREVIEW_PAGE and model.canFetchMore()
    headers = [
        model.headerData(c, __import__("PySide6.QtCore").QtCore.Qt.Orientation.Horizontal)
        for c in range(model.columnCount())
    ]
    assert headers[:2] == ["prompt", "answer"] and "(invalid JSON)" in headers and "extra" in headers
    while model.canFetchMore():
        model.fetchMore()
    assert model.rowCount() == len(rows)
    assert model.index(7, headers.index("extra")).data() == "[1, 2]"
    missing = JsonlPreviewModel(tmp_path / "gone.jsonl")
    assert missing.rowCount() == 0 and "does not exist" in missing.error


def test_datasets_and_rubric_versions(state: StudioState, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "a", "answer": "1"}\n{"prompt": "b", "answer": "2"}\n')
    assert state.db is not None
    register_dataset(state.db, data, "train")
    register_dataset(state.db, data, "train")  # idempotent
    datasets = DatasetsModel(state)
    assert datasets.rowCount() == 1 and "2 rows" in datasets.index(0).data()
    rubric = tmp_path / "rubric.toml"
    (tmp_path / "rewards.py").write_text("def ok(completions, **kw):\n    return [1.0] * len(completions)\n")
    rubric.write_text(RUBRIC)
    register_rubric(state.db, rubric, note="first")
    register_rubric(state.db, rubric, note="same content: no new version")
    rubric.write_text(RUBRIC.replace("1.0", "0.5"))
    register_rubric(state.db, rubric, note="second")
    model = RubricsModel(state)
    top = model.item(0)
    assert top.text().startswith("tiny") and "2 versions" in top.text() and top.rowCount() == 2
    newest = top.child(0)
    assert newest.text().startswith("v2")
    toml, sources = state.db.rubric_version_text(newest.data(VERSION_ID_ROLE))
    assert "0.5" in toml and "rewards.py" in sources


def test_the_studio_and_the_engine_register_authored_things_the_same_way(
    state: StudioState, tmp_path: Path
) -> None:
    from engine.store import Workspace

    assert state.db is not None
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "a", "answer": "1"}\n')
    studio_id = register_dataset(state.db, data, "my name for it")
    data.write_text('{"prompt": "a", "answer": "1"}\n{"prompt": "b", "answer": "2", "extra": 3}\n')
    engine = Workspace(state.db.path)
    try:
        # the engine registers the file a run trains on, by a path spelled another way
        engine_id = engine.register_dataset(
            str(tmp_path / "." / "train.jsonl"), 2, ["answer", "extra", "prompt"]
        )
        rubric = tmp_path / "rubric.toml"
        (tmp_path / "rewards.py").write_text(
            "def ok(completions, **kw):\n    return [1.0] * len(completions)\n"
        )
        rubric.write_text(RUBRIC)
        version_id = register_rubric(state.db, rubric, note="from the studio")
        sources = {"rewards.py": (tmp_path / "rewards.py").read_text()}
        assert engine.save_rubric_version("tiny", RUBRIC, sources, note="a run") == version_id
    finally:
        engine.close()
    assert engine_id == studio_id
    row = state.db.conn.execute("SELECT name, rows, columns FROM datasets").fetchall()
    assert [tuple(r) for r in row] == [("my name for it", 2, '["answer", "extra", "prompt"]')]
    assert register_dataset(state.db, data, "another name") == studio_id  # the first name stays
    assert state.db.conn.execute("SELECT name FROM datasets").fetchall()[0][0] == "my name for it"
