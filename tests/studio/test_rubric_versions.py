"""Rubric versions in a real workspace: save (immutable, deduplicated exactly like the engine), list with
the runs that used them, diff, restore, and import/export of rubric folders."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from helpers import add_run

from engine.contract.paths import DEMO_DIR
from engine.rewards.rubric import load_rubric
from engine.store import Workspace
from studio.state import rubric_store
from studio.state.authored import register_rubric
from studio.state.rubric_doc import RubricDocument, read_rubric_file
from studio.state.rubric_session import RubricSession
from studio.state.studio_state import StudioState


def demo_session(state: StudioState) -> RubricSession:
    session = RubricSession(state)
    session.load_document(read_rubric_file(DEMO_DIR / "rubric.toml"), None, "demo")
    return session


def test_save_creates_immutable_versions_and_reuses_identical_content(qtbot, state: StudioState) -> None:
    session = demo_session(state)
    assert session.dirty
    first = session.save("first")
    assert first.created and first.version == 1 and not session.dirty
    again = session.save("same again")
    assert not again.created and again.version_id == first.version_id

    session.doc.set_field(1, "weight", 0.3)
    session.changed("table")
    assert session.dirty
    second = session.save("lighter format")
    assert second.created and second.version == 2

    session.doc.sources["rewards.py"] += "\n# a comment changes the code, so the version\n"
    session.changed("code")
    third = session.save()
    assert third.version == 3

    versions = session.versions()
    assert [v.version for v in versions] == [3, 2, 1]
    assert versions[1].note == "lighter format"
    # A stored version never changes: v1 still has the demo's exact text and source.
    stored = rubric_store.load(state.db, first.version_id)  # type: ignore[arg-type]
    assert stored is not None and stored.toml == (DEMO_DIR / "rubric.toml").read_text()
    assert stored.sources == {"rewards.py": (DEMO_DIR / "rewards.py").read_text()}


def test_identity_matches_the_engine_so_runs_link_to_the_saved_version(qtbot, state: StudioState) -> None:
    session = demo_session(state)
    saved = session.save("from the editor")
    # What the engine does at the start of a run: load the rubric, snapshot it, save the version.
    rubric = load_rubric(DEMO_DIR / "rubric.toml")
    toml_text, sources = rubric.snapshot()
    rubric.close()
    assert (toml_text, sources) == session.doc.snapshot()
    engine_side = Workspace(state.db.path)  # type: ignore[union-attr]
    try:
        assert (
            engine_side.save_rubric_version("arith-v1", toml_text, sources, note="used by run 1")
            == saved.version_id
        )
    finally:
        engine_side.close()
    # The seeded demo (studio/state/authored.py) is the same version too.
    register_rubric(state.db, DEMO_DIR / "rubric.toml", note="seeded")  # type: ignore[arg-type]
    assert [v.id for v in session.versions()] == [saved.version_id]


def test_versions_list_the_runs_that_used_them(qtbot, state: StudioState, ws_path: Path) -> None:
    session = demo_session(state)
    v1 = session.save().version_id
    session.doc.set_field(2, "weight", 0.1)
    v2 = session.save().version_id
    runs = [add_run(ws_path, name=f"r{i}", steps=1) for i in range(3)]
    conn = sqlite3.connect(ws_path)
    with conn:
        conn.execute("UPDATE runs SET rubric_version_id = ? WHERE id IN (?, ?)", (v1, runs[0], runs[2]))
        conn.execute("UPDATE runs SET rubric_version_id = ? WHERE id = ?", (v2, runs[1]))
    conn.close()
    by_id = {v.id: v for v in session.versions()}
    assert [r.id for r in by_id[v1].runs] == [runs[0], runs[2]]
    assert [(r.name, r.status) for r in by_id[v2].runs] == [("r1", "finished")]
    stored = rubric_store.load(state.db, v2)  # type: ignore[arg-type]
    assert stored is not None and [r.id for r in stored.info.runs] == [runs[1]]


def test_diff_covers_the_toml_and_the_source_files(qtbot, state: StudioState) -> None:
    session = demo_session(state)
    v1 = session.save().version_id
    assert session.diff_with(v1) == []
    session.doc.set_field(1, "weight", 0.4)
    session.doc.sources["rewards.py"] = session.doc.sources["rewards.py"].replace("1.0 if got", "2.0 if got")
    lines = session.diff_with(v1)
    assert "--- arith-v1 v1/rubric.toml" in lines and "+++ current/rubric.toml" in lines
    assert "-weight = 0.2" in lines and "+weight = 0.4" in lines
    assert "+++ current/rewards.py" in lines
    assert any(line.startswith("+") and "2.0 if got" in line for line in lines)
    # Between stored versions, in both directions.
    v2 = session.save().version_id
    a, b = rubric_store.load(state.db, v1), rubric_store.load(state.db, v2)  # type: ignore[arg-type]
    assert a is not None and b is not None
    forward = rubric_store.diff((a.toml, a.sources), (b.toml, b.sources), "v1", "v2")
    assert "+weight = 0.4" in forward


def test_restore_loads_an_old_version_and_saving_it_reuses_it(qtbot, state: StudioState) -> None:
    session = demo_session(state)
    v1 = session.save()
    session.doc.remove_criterion(2)
    v2 = session.save()
    assert v2.version == 2 and len(session.doc.criteria) == 2
    with qtbot.waitSignal(session.sig_loaded):
        assert session.load_version(v1.version_id)
    assert len(session.doc.criteria) == 3 and not session.dirty
    assert session.base is not None and session.base.version == 1
    assert session.save().version_id == v1.version_id  # nothing new


def test_latest_version_opens_first_and_a_new_rubric_when_there_is_none(qtbot, state: StudioState) -> None:
    session = RubricSession(state)
    session.load_latest()
    assert session.base is None and session.doc.name == "my-rubric"
    demo_session(state).save()
    session.load_latest()
    assert session.base is not None and session.doc.name == "arith-v1"


def test_import_and_export_round_trip(qtbot, state: StudioState, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "helpers.py").write_text("def words(text):\n    return text.split()\n")
    (source / "scoring.py").write_text(
        "from helpers import words\n\ndef short(completions, **kw):\n"
        "    return [1.0 if len(words(c)) < 5 else 0.0 for c in completions]\n"
    )
    (source / "schema.json").write_text(json.dumps({"type": "object"}))
    (source / "unused.py").write_text("x = 1\n")
    (source / "rubric.toml").write_text(
        'name = "imported"\n[[criteria]]\nname = "short"\nkind = "python"\nsource = "scoring.py:short"\n'
        '[[criteria]]\nname = "obj"\nkind = "json_schema"\nschema_file = "schema.json"\nweight = 0.0\n'
    )
    session = RubricSession(state)
    session.import_file(source / "rubric.toml")
    assert session.doc.name == "imported" and session.dirty
    assert set(session.doc.snapshot()[1]) == {"scoring.py", "helpers.py", "schema.json"}

    out = rubric_store.export_folder(session.doc, tmp_path / "out")
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "helpers.py",
        "rubric.toml",
        "schema.json",
        "scoring.py",
    ]
    assert out.read_text() == (source / "rubric.toml").read_text()
    rubric = load_rubric(out)  # the exported folder is complete: the engine loads it
    try:
        assert [c.name for c in rubric.criteria] == ["short", "obj"]
    finally:
        rubric.close()
    again = read_rubric_file(out)
    assert again.snapshot() == session.doc.snapshot()

    other = RubricDocument('name = "other"\n[[criteria]]\nname = "x"\nkind = "json_valid"\n')
    with pytest.raises(FileExistsError):
        rubric_store.export_folder(other, tmp_path / "out")
    rubric_store.export_folder(other, tmp_path / "out", overwrite=True)
    assert "other" in out.read_text()

    # Importing what is already stored finds that version instead of calling it new.
    session.save()
    session.import_file(source / "rubric.toml")
    assert session.base is not None and not session.dirty


def test_saving_needs_a_name(qtbot, state: StudioState) -> None:
    session = RubricSession(state)
    session.load_document(RubricDocument('[[criteria]]\nname = "x"\nkind = "json_valid"\n'), None, "t")
    with pytest.raises(ValueError, match="no name"):
        session.save()
