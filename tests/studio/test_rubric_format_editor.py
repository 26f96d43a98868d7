"""The editor offers, describes and checks criteria from the rubric format (engine.contract.
rubric_format) alone: a kind added there appears in the editor with no change to the studio, and the
editor's inline messages are the engine loader's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QStyleOptionViewItem

from engine.contract import rubric_format
from engine.contract.rubric_format import Field, Kind, Rule
from studio.models.criteria_model import KIND, PARAMS
from studio.state.rubric_doc import RubricDocument
from studio.state.studio_state import StudioState
from studio.widgets.rubric_editor import RubricEditorView

WORD_COUNT = Kind(
    "word_count",
    "Word count",
    "1 when the completion has between min_words and max_words words.",
    (
        Field("min_words", "int", "The fewest words that pass.", 1, minimum=0, example=5),
        Field("max_words", "int", "The most words that pass.", required=True, minimum=1, example=50),
        Field("count", "choice", "What counts as a word.", "split", choices=("split", "regex")),
    ),
    {"kind": "word_count", "weight": 0.5, "max_words": 100},
    rules=(Rule("needs", ("min_words", "max_words"), "min_words goes with max_words"),),
)


@pytest.fixture
def view(qtbot, state: StudioState, monkeypatch) -> Iterator[RubricEditorView]:
    monkeypatch.setitem(rubric_format.KINDS, WORD_COUNT.name, WORD_COUNT)
    v = RubricEditorView(state)
    v.confirm = lambda title, question: True
    qtbot.addWidget(v)
    v.show()
    yield v
    v.cancel_jobs()


def test_a_kind_added_to_the_rubric_format_is_offered_described_and_checked(
    qtbot, view: RubricEditorView
) -> None:
    panel = view.criteria
    actions = {a.text(): a for a in panel.add_button.menu().actions()}
    assert "Word count  (word_count)" in actions
    assert actions["Word count  (word_count)"].toolTip() == WORD_COUNT.help

    actions["Word count  (word_count)"].trigger()  # what choosing it in the + Add menu does
    row = panel.current_row()
    model = panel.model
    assert panel.session.doc.criteria[row] == {
        "name": "word_count",
        "kind": "word_count",
        "weight": 0.5,
        "max_words": 100,
    }
    assert model.data(model.index(row, PARAMS)) == "max_words = 100"
    assert "[[criteria]]" in view.toml.editor.toPlainText()
    assert 'kind = "word_count"' in view.toml.editor.toPlainText()
    assert view.validate().errors == []
    described = panel.fields.text()
    assert "<b>Word count</b>" in described and "<b>max_words</b>" in described and "min_words" in described
    assert "one of split, regex" in described and "default &quot;split&quot;" in described

    delegate = panel.table.itemDelegateForColumn(KIND)
    combo = delegate.createEditor(panel.table, QStyleOptionViewItem(), model.index(row, KIND))
    assert isinstance(combo, QComboBox)
    kinds = [combo.itemText(i) for i in range(combo.count())]
    assert kinds == list(rubric_format.KINDS) and "word_count" in kinds
    combo.deleteLater()

    assert model.setData(model.index(row, PARAMS), "max_words = 0, cuont = 'regex'")
    messages = [p.message for p in view.validate().for_criterion(row)]
    assert messages == [
        "unknown field 'cuont' for kind 'word_count' (did you mean 'count'?); its fields: count, "
        "description, kind, max_words, min_words, name, weight",
        "'max_words' must be at least 1, not 0",
    ]
    assert model.data(model.index(row, PARAMS), Qt.ItemDataRole.ToolTipRole).count("\n") == 2

    assert model.setData(model.index(row, PARAMS), "min_words = 3")
    messages = [p.message for p in view.validate().for_criterion(row)]
    assert messages == ["a word_count criterion needs 'max_words'", "min_words goes with max_words"]


def test_a_misspelt_field_gets_the_engines_message_inline(qtbot, view: RubricEditorView) -> None:
    from engine.rewards import RubricError
    from engine.rewards.rubric import rubric_from_text

    text = 'name = "r"\n[[criteria]]\nname = "c"\nkind = "python"\nsourse = "rewards.py:ok"\n'
    view.session.load_document(RubricDocument(text), None, "typed")
    (problem,) = view.validate().for_criterion(0)
    assert problem.message.startswith("unknown field 'sourse' for kind 'python' (did you mean 'source'?)")
    with pytest.raises(RubricError) as info:
        rubric_from_text(text, Path("."))
    assert str(info.value) == f"criterion 'c': {problem.message}"
