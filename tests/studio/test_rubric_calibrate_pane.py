"""The rubric editor's Calibrate pane against the real `rubric calibrate` engine subprocess: a criterion
edited in the editor is scored on a labelled set before (the stored version) and after (the edit), side by
side, with the figures worked out by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.state.authored import seed_demo
from studio.state.studio_state import StudioState
from studio.widgets.rubric_editor import RubricEditorView

ENGINE_TIMEOUT_MS = 120_000
LABELLED = [  # prompt, answer, completion, label (as in tests/engine/test_rubric_calibrate.py)
    ("19+18=", "37", "<answer>37</answer>", True),
    ("11-5=", "6", "<answer>7</answer>", False),
    ("2+2=", "4", "the answer is 4", True),
    ("3+3=", "6", "<answer>6</answer>", True),
    ("5+1=", "6", "<answer>5</answer> or so", False),
    ("9-2=", "7", "<answer>7</answer>", True),
]


@pytest.fixture
def view(qtbot, state: StudioState) -> Iterator[RubricEditorView]:
    assert state.db is not None
    seed_demo(state.db)
    state.sig_authored_changed.emit()
    v = RubricEditorView(state)
    v.confirm = lambda title, question: True
    qtbot.addWidget(v)
    v.resize(1200, 800)
    v.show()
    yield v
    v.cancel_jobs()


def test_an_edited_criterion_is_scored_before_and_after(
    qtbot, view: RubricEditorView, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"prompt": p, "answer": a, "completion": c, "label": lab}) + "\n"
            for p, a, c, lab in LABELLED
        )
    )
    pane = view.calibrate
    assert view.session.doc.name == "arith-v1" and not view.session.dirty
    # the edit: `format` accepts an answer tag anywhere (the stored pattern is anchored at both ends)
    index = view.session.doc.names().index("format")
    view.session.doc.set_field(index, "pattern", r"<answer>-?\d+</answer>")
    view.session.changed("test")
    assert view.session.dirty

    pane.labels_edit.setText(str(labels))
    assert pane.run()
    qtbot.waitUntil(lambda: pane.after is not None and pane.run_button.isEnabled(), timeout=ENGINE_TIMEOUT_MS)
    assert pane.before is not None and pane.before.rows == 6
    row = pane.figures("format")
    # before: says T T F T F T vs labels T F T T F T: 4/6, kappa (4/6 - 20/36) / (16/36) = 0.25
    # after: also "<answer>5</answer> or so": T T F T T T: 3/6, kappa (3/6 - 22/36) / (14/36) = -2/7
    assert (row["Accuracy before"], row["Accuracy after"]) == ("0.67", "0.50")
    assert (row["Kappa before"], row["Kappa after"]) == ("0.25", "-0.29")
    assert row["Disagree before → after"] == "2 → 3"
    assert pane.figures("correct")["Accuracy before"] == pane.figures("correct")["Accuracy after"] == "0.83"
    assert "stored arith-v1" in pane.summary.text()

    # scoring again without a stored version to compare with: the previous score is "before"
    view.session.base = None
    assert pane.run()
    qtbot.waitUntil(lambda: pane.run_button.isEnabled() and not pane.job.running, timeout=ENGINE_TIMEOUT_MS)
    assert pane.figures("format")["Accuracy before"] == "0.50" and "previous score" in pane.summary.text()


def test_a_missing_labels_file_says_what_to_do(view: RubricEditorView) -> None:
    view.calibrate.labels_edit.setText("/nowhere/labels.jsonl")
    assert not view.calibrate.run()
    assert "Pick a labelled set" in view.calibrate.summary.text()
