"""A rubric file with the user's comments and layout, opened in the editor and edited through the
criteria table, saves with only the edited lines changed (tomlkit writes the edits into the text)."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.models.criteria_model import KIND, NAME, PARAMS, WEIGHT, CriteriaModel
from studio.state import rubric_checks
from studio.state.rubric_doc import read_rubric_file
from studio.state.rubric_session import RubricSession
from studio.state.studio_state import StudioState
from studio.widgets.rubric_editor import RubricEditorView

COMMENTED = """\
# Arithmetic rubric, v3.
# Keep format light: correctness is what we train for.
name = "arith"   # shown in the run list
total = "correct + 0.2 * format"

# --- correctness ------------------------------------------------------
[[criteria]]
name = "correct"
kind = "numeric_match"
reference = "{{item.answer}}"     # the dataset's gold column
tolerance = 0.001
weight = 1.0

# --- format (logged with a small weight) ------------------------------
[[criteria]]
name    = "format"          # aligned by hand
kind    = "regex"
pattern = '^<answer>-?\\d+</answer>$'   # literal string: no escaping
mode    = "fullmatch"
weight  = 0.2

[[criteria]]
name = "shape"
kind = "json_schema"
weight = 0.0

  [criteria.schema]   # indented sub-table
  type = "object"
  required = ["answer"]   # more may come
"""


@pytest.fixture
def rubric_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "rubric.toml"
    path.parent.mkdir()
    path.write_text(COMMENTED, encoding="utf-8")
    return path


@pytest.fixture
def view(qtbot, state: StudioState) -> Iterator[RubricEditorView]:
    v = RubricEditorView(state)
    v.confirm = lambda title, question: True
    qtbot.addWidget(v)
    yield v
    v.cancel_jobs()


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_one_field_edited_in_the_editor_changes_one_line_of_the_saved_file(
    qtbot, view: RubricEditorView, rubric_file: Path, tmp_path: Path
) -> None:
    assert view.import_file(rubric_file)
    model = view.criteria.model
    assert model.setData(model.index(1, WEIGHT), 0.5)
    out = view.export_to(tmp_path / "saved")
    assert out is not None
    saved = out.read_text(encoding="utf-8")
    assert changed_lines(COMMENTED, saved) == ["-weight  = 0.2", "+weight  = 0.5"]
    assert view.validate().errors == []


def test_edits_of_every_kind_keep_the_comments_of_what_they_do_not_touch(
    qtbot, state: StudioState, rubric_file: Path
) -> None:
    session = RubricSession(state)
    session.import_file(rubric_file)
    model = CriteriaModel(session)
    doc = session.doc

    assert model.setData(model.index(0, PARAMS), 'reference = "{{item.answer}}", tolerance = 0.01')
    assert changed_lines(COMMENTED, doc.text) == ["-tolerance = 0.001", "+tolerance = 0.01"]

    assert model.setData(model.index(1, NAME), "fmt")  # the total follows the rename
    assert 'name    = "fmt"          # aligned by hand' in doc.text
    assert 'total = "correct + 0.2 * fmt"' in doc.text

    assert model.move(2, -1) == 1  # the moved criterion keeps its indented, commented sub-table
    assert '  required = ["answer"]   # more may come' in doc.text
    assert doc.text.index('name = "shape"') < doc.text.index('name    = "fmt"')

    row = model.add("contains")
    assert model.setData(model.index(row, KIND), "length")  # a new criterion, then a new kind for it
    assert model.setData(model.index(0, KIND), "exact_match")  # name, weight and their lines stay

    text = doc.text
    for kept in (
        "# Arithmetic rubric, v3.\n# Keep format light: correctness is what we train for.\n",
        'name = "arith"   # shown in the run list',
        "# --- correctness ---",
        "# --- format (logged with a small weight) ---",
        "pattern = '^<answer>-?\\d+</answer>$'   # literal string: no escaping",
    ):
        assert kept in text, kept
    data = tomllib.loads(text)
    assert data == doc.data
    assert [c["name"] for c in data["criteria"]] == ["correct", "shape", "fmt", "contains"]
    assert data["criteria"][0] == {
        "name": "correct",
        "kind": "exact_match",
        "weight": 1.0,
        "reference": "{{item.answer}}",
        "tag": "answer",
    }
    assert data["criteria"][3] == {"name": "contains", "kind": "length", "weight": 1.0, "target": 200}
    assert rubric_checks.check(doc).errors == []

    model.remove(1)
    assert "# --- correctness ---" in doc.text and "[criteria.schema]" not in doc.text
    assert tomllib.loads(doc.text) == doc.data


def test_an_unchanged_file_round_trips_byte_for_byte_and_the_toml_pane_text_is_kept(
    qtbot, state: StudioState, rubric_file: Path
) -> None:
    doc = read_rubric_file(rubric_file)
    assert doc.text == COMMENTED
    doc.regenerate()  # nothing changed: nothing is rewritten
    assert doc.text == COMMENTED
    typed = COMMENTED.replace("tolerance = 0.001", "tolerance = 0.002  # typed in the pane")
    assert doc.set_text(typed)
    doc.set_field(2, "weight", 0.1)
    assert "tolerance = 0.002  # typed in the pane" in doc.text
    assert changed_lines(typed, doc.text) == ["-weight = 0.0", "+weight = 0.1"]
