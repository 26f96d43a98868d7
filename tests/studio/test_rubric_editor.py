"""The rubric editor view on a real workspace seeded with the demo: validation as you type, and the test
and red-team panes against the real `rubric test` / `rubric redteam` engine subprocesses."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import add_run
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from studio.models.criteria_model import KIND, NAME, PARAMS, WEIGHT
from studio.state.authored import seed_demo
from studio.state.studio_state import StudioState
from studio.widgets.rubric_editor import RubricEditorView

ENGINE_TIMEOUT_MS = 120_000  # two shared CPU cores; a test run takes about a second


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


def add_inline(view: RubricEditorView, code: str, function: str = "f", name: str = "extra") -> int:
    row = view.criteria.add("python")
    model = view.criteria.model
    model.setData(model.index(row, NAME), name)
    model.setData(model.index(row, PARAMS), f'function = "{function}"')
    view.code.show_criterion(row)
    view.code.editor.setPlainText(code)
    return row


def wait_for_results(qtbot, pane) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: not pane.job.running and pane.run_button.isEnabled(), timeout=ENGINE_TIMEOUT_MS)


def cell(view: RubricEditorView, row: int, header: str) -> str:
    table = view.test.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    column = next(i for i, h in enumerate(headers) if h == header or h.startswith(header + " ×"))
    return table.item(row, column).text()


def test_opens_the_newest_version_with_the_demo_dataset(view: RubricEditorView) -> None:
    assert view.session.doc.name == "arith-v1" and not view.session.dirty
    assert view.version_label.text().startswith("v1 · saved")
    assert view.criteria.model.rowCount() == 3
    assert view.session.dataset is not None and view.session.dataset.name == "demo-eval"
    assert view.code.entry is not None and view.code.entry.path == "rewards.py"
    assert "def correct(" in view.code.editor.toPlainText()
    line = view.code.editor.textCursor().block().text()
    assert line.startswith("def correct(")  # the selected criterion's own function is shown
    assert "no problems" in view.problem_label.text()
    assert view.toml.editor.toPlainText() == view.session.doc.text


def test_validation_as_you_type_marks_syntax_signature_and_column_problems(
    qtbot, view: RubricEditorView
) -> None:
    row = add_inline(view, "def f(completions, **kwargs):\n    return [1.0 for c in completions]\n")
    qtbot.waitUntil(lambda: view.code.convention.text() == "f: trl", timeout=3000)
    assert view.code.editor.diagnostics == []

    editor = view.code.editor
    editor.setPlainText("def f(completions, **kwargs):\n    return [1.0 for c in completions\n")
    qtbot.waitUntil(lambda: bool(editor.diagnostics), timeout=3000)
    (d,) = editor.diagnostics
    assert d.message.startswith("syntax error") and d.line == 2
    assert (
        view.criteria.model.data(view.criteria.model.index(row, NAME), Qt.ItemDataRole.BackgroundRole)
        is not None
    )
    assert "1 error" in view.problem_label.text()
    assert view.code.problems.item(0).text().startswith("✖  line 2:")

    editor.setPlainText("def f(x):\n    return 1.0\n")
    qtbot.waitUntil(
        lambda: bool(editor.diagnostics) and "fits no convention" in editor.diagnostics[0].message,
        timeout=3000,
    )
    assert editor.diagnostics[0].line == 1

    editor.setPlainText("def f(completion, solution):\n    return 1.0\n")  # demo-eval has no 'solution'
    qtbot.waitUntil(
        lambda: bool(editor.diagnostics) and "solution" in editor.diagnostics[0].message, timeout=3000
    )
    d = editor.diagnostics[0]
    assert editor.toPlainText().splitlines()[0][d.col : d.end_col] == "solution"
    assert "not a column of dataset 'demo-eval'" in d.message

    # Typing, not just setPlainText: the debounced check follows keystrokes.
    cursor = editor.textCursor()
    cursor.setPosition(editor.toPlainText().index("solution"))
    cursor.movePosition(QTextCursor.MoveOperation.Right, QTextCursor.MoveMode.KeepAnchor, len("solution"))
    editor.setTextCursor(cursor)
    qtbot.keyClicks(editor, "answer")
    qtbot.waitUntil(lambda: editor.diagnostics == [], timeout=3000)
    assert view.code.convention.text() == "f: verifiers"
    assert "no problems" in view.problem_label.text()
    # The inline code is in the TOML, which the engine will read.
    assert "def f(completion, answer):" in view.session.doc.text
    # Renaming the criterion keeps its code on screen.
    view.criteria.model.setData(view.criteria.model.index(row, NAME), "renamed")
    assert view.code.entry is not None and view.code.entry.key == "inline:renamed"
    assert editor.toPlainText().startswith("def f(completion, answer):")


def test_editing_the_toml_updates_the_table_and_a_parse_error_is_marked(
    qtbot, view: RubricEditorView
) -> None:
    toml = view.toml.editor
    toml.setPlainText(view.session.doc.text.replace("weight = 0.2", "weight = 0.7"))
    qtbot.waitUntil(
        lambda: view.criteria.model.data(view.criteria.model.index(1, WEIGHT)) == "0.7", timeout=3000
    )
    assert view.session.dirty and "edited from v1" in view.version_label.text()
    toml.setPlainText(toml.toPlainText().replace("[[criteria]]", "[[criteria]", 1))
    qtbot.waitUntil(lambda: bool(toml.diagnostics), timeout=3000)
    assert toml.diagnostics[0].line == 5 and "not valid TOML" in toml.diagnostics[0].message
    assert view.criteria.model.rowCount() == 3  # the table keeps the last valid state
    assert not view.run_test()
    assert "TOML" in view.test.message.text()


def test_table_edits_show_in_the_toml_pane_and_kind_changes_reset_fields(
    qtbot, view: RubricEditorView
) -> None:
    model = view.criteria.model
    assert model.setData(model.index(2, KIND), "repetition_penalty")
    assert 'kind = "repetition_penalty"' in view.toml.editor.toPlainText()
    assert "target = 19" not in view.toml.editor.toPlainText()
    view.criteria.select(2)
    view.criteria.remove_selected()
    assert model.rowCount() == 2 and "repetition_penalty" not in view.toml.editor.toPlainText()


def test_run_test_scores_dataset_rows_in_the_real_engine(qtbot, view: RubricEditorView) -> None:
    view.test.row_list.clearSelection()
    for i in (0, 1, 2):
        view.test.row_list.item(i).setSelected(True)
    assert view.test.completion_from.currentText() == "reference"
    with qtbot.waitSignal(view.test.sig_ran, timeout=ENGINE_TIMEOUT_MS):
        assert view.run_test()
        assert view.test.status.isVisible()
    assert not view.test.status.isVisible()
    assert view.test.table.rowCount() == 3
    for row in range(3):
        assert cell(view, row, "Total") == "1.200"
        assert cell(view, row, "correct") == "1.000" and cell(view, row, "format") == "1.000"
    assert "3 samples scored" in view.test.message.text()


def test_a_typed_sample_with_columns(qtbot, view: RubricEditorView) -> None:
    view.test.from_typed.setChecked(True)
    view.test.prompt.setText("2+3=")
    view.test.completion.setPlainText("<answer>6</answer>")
    view.test.columns.setText('answer = "5"')
    view.test.completion.setFocus()
    with qtbot.waitSignal(view.test.sig_ran, timeout=ENGINE_TIMEOUT_MS):  # Ctrl+Enter runs the test
        qtbot.keyClick(view.test.completion, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert view.test.completion.toPlainText() == "<answer>6</answer>"  # no newline typed
    assert cell(view, 0, "correct") == "0.000" and cell(view, 0, "format") == "1.000"
    assert cell(view, 0, "Total") == "0.200"


def test_errors_per_sample_are_shown_in_red_with_their_message(qtbot, view: RubricEditorView) -> None:
    add_inline(
        view,
        "def picky(completion, answer):\n"
        "    if answer.startswith('-'):\n"
        "        raise ValueError('no negative answers')\n"
        "    return 0.5\n",
        function="picky",
    )
    view.test.row_list.clearSelection()
    for i in range(6):
        view.test.row_list.item(i).setSelected(True)
    answers = [view.test.rows[i]["answer"] for i in range(6)]
    assert any(a.startswith("-") for a in answers) and not all(a.startswith("-") for a in answers)
    with qtbot.waitSignal(view.test.sig_ran, timeout=ENGINE_TIMEOUT_MS):
        view.run_test()
    for row, answer in enumerate(answers):
        text = cell(view, row, "extra")
        assert text == ("error" if answer.startswith("-") else "0.500")
    bad = answers.index(next(a for a in answers if a.startswith("-")))
    table = view.test.table
    item = next(
        table.item(bad, c) for c in range(table.columnCount()) if table.item(bad, c).text() == "error"
    )
    assert "no negative answers" in item.toolTip() and item.background().color().name() == "#fed7d7"
    table.selectRow(bad)
    assert "ValueError: no negative answers" in view.test.details.text()
    assert "error" in view.test.message.text()


def test_a_rubric_the_engine_rejects_shows_the_engines_message(qtbot, view: RubricEditorView) -> None:
    model = view.criteria.model
    model.setData(model.index(0, PARAMS), 'source = "missing.py:correct"')
    with qtbot.waitSignal(view.test.job.sig_failed, timeout=ENGINE_TIMEOUT_MS):
        view.run_test()
    text = view.test.message.text()
    assert "did not run" in text and "missing.py" in text and "correct" in text


def test_cancel_stops_a_running_test(qtbot, view: RubricEditorView) -> None:
    model = view.criteria.model
    row = add_inline(
        view,
        "import time\n\ndef slow(completions, **kw):\n    time.sleep(60)\n    return [0.0] * len(completions)\n",
        "slow",
    )
    model.setData(model.index(row, PARAMS), 'function = "slow", timeout_s = 120')
    view.run_test()
    qtbot.waitUntil(lambda: view.test.job.elapsed_s > 1.0, timeout=10_000)
    assert view.test.job.running and view.test.status.isVisible()
    with qtbot.waitSignal(view.test.job.sig_cancelled, timeout=10_000):
        qtbot.keyClick(view.test, Qt.Key.Key_Escape)
    assert not view.test.job.running and view.test.run_button.isEnabled()
    assert "cancelled" in view.test.message.text()


def test_red_team_flags_cheats_that_score_high(qtbot, view: RubricEditorView) -> None:
    with qtbot.waitSignal(view.redteam.sig_ran, timeout=ENGINE_TIMEOUT_MS):
        assert view.run_redteam()
    table = view.redteam.table
    names = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert {"empty", "format_only", "echo_prompt", "stuff_answers", "judge_injection"} <= set(names)
    assert all(table.item(r, 2).text() == "" for r in range(table.rowCount()))
    assert "No cheat pays" in view.redteam.summary.text()

    # Optimise only the format: the format_only cheat now earns as much as a right answer.
    model = view.criteria.model
    model.setData(model.index(0, WEIGHT), 0.0)
    with qtbot.waitSignal(view.redteam.sig_ran, timeout=ENGINE_TIMEOUT_MS):
        qtbot.keyClick(
            view, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        )
    flagged = [
        table.item(r, 0).text() for r in range(table.rowCount()) if table.item(r, 2).text() == "FLAGGED"
    ]
    assert "format_only" in flagged
    row = names.index("format_only")
    assert table.item(row, 0).background().color().name() == "#fed7d7"
    assert "Flagged: " in view.redteam.summary.text() and "format_only" in view.redteam.summary.text()
    assert table.currentRow() == row or table.selectedItems()[0].row() == row  # the first flagged is shown
    assert re.search(r"<answer>.*</answer>", view.redteam.example.toPlainText())


def test_ctrl_s_saves_a_version_and_versions_can_be_diffed_and_restored(
    qtbot, view: RubricEditorView
) -> None:
    qtbot.keyClick(view, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert [v.version for v in view.versions.versions] == [1]  # unchanged: v1 is reused
    assert "unchanged" in view.version_label.text()
    view.code.editor.setFocus()  # the shortcut works while typing code too
    qtbot.keyClick(view.code.editor, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert [v.version for v in view.versions.versions] == [1]
    model = view.criteria.model
    model.setData(model.index(1, WEIGHT), 0.5)
    view.note_edit.setText("more weight on format")
    qtbot.keyClick(view, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert [v.version for v in view.versions.versions] == [2, 1]
    assert view.versions.versions[0].note == "more weight on format"
    assert view.version_label.text().startswith("v2") and not view.session.dirty

    view.versions.select_version(view.versions.versions[1].id)
    lines = view.versions.show_diff_with_current()
    assert "-weight = 0.2" in lines and "+weight = 0.5" in lines
    html = view.versions.diff.toHtml()
    assert "#f0fff4" in html and "#fff5f5" in html  # additions green, removals red
    view.versions.restore.click()
    assert view.session.base is not None and view.session.base.version == 1
    assert view.criteria.model.data(view.criteria.model.index(1, WEIGHT)) == "0.2"


def test_a_run_that_starts_on_a_version_shows_under_it(qtbot, view: RubricEditorView, ws_path: Path) -> None:
    version_id = view.versions.versions[0].id
    assert view.versions.list.topLevelItem(0).text(3) == "—"
    run_id = add_run(ws_path, name="demo-arith", steps=2)
    conn = sqlite3.connect(ws_path)
    with conn:  # what the engine does when a run loads the rubric
        conn.execute("UPDATE runs SET rubric_version_id = ? WHERE id = ?", (version_id, run_id))
    conn.close()
    view.state.refresh()
    qtbot.waitUntil(
        lambda: view.versions.list.topLevelItem(0).text(3) == f"#{run_id} demo-arith", timeout=5000
    )
    assert "used by 1 run" in view.version_label.text()


def test_unsaved_changes_are_not_lost_without_asking(qtbot, view: RubricEditorView) -> None:
    asked: list[str] = []
    view.confirm = lambda title, question: asked.append(title) is not None  # always "no"
    model = view.criteria.model
    model.setData(model.index(1, WEIGHT), 0.9)
    view.new_rubric()
    assert asked == ["New rubric"] and view.session.doc.name == "arith-v1"
    assert not view.open_version(view.versions.versions[0].id)


def test_import_and_export_from_the_view(qtbot, view: RubricEditorView, tmp_path: Path) -> None:
    out = view.export_to(tmp_path / "exported")
    assert out is not None and (tmp_path / "exported" / "rewards.py").is_file()
    assert view.import_file(out)
    assert view.session.base is not None and view.session.base.version == 1  # same content as v1


def test_sidebar_click_opens_the_version_in_the_window(qtbot, state: StudioState, window) -> None:  # type: ignore[no-untyped-def]
    assert state.db is not None
    seed_demo(state.db)
    state.sig_authored_changed.emit()
    editor = window.rubric_editor
    assert isinstance(editor, RubricEditorView)
    asked: list[str] = []
    editor.confirm = lambda title, question: asked.append(title) is None
    version_id = state.db.rubric_versions()[0].id
    state.sig_show_rubric_version.emit(version_id)
    state.sig_show_view.emit("rubric")
    assert window.tabs.currentWidget() is editor
    assert editor.session.base is not None and editor.session.base.id == version_id
    assert editor.session.doc.name == "arith-v1"
    assert asked == []  # the untouched new rubric it showed before had nothing to lose


def test_screenshot_of_the_rubric_view(qtbot, state: StudioState, tmp_path: Path) -> None:
    from studio.app import main

    assert state.db is not None
    seed_demo(state.db)
    out = tmp_path / "rubric.png"
    assert main(["--workspace", state.db.path, "--screenshot", str(out), "--view", "rubric"]) == 0
    assert out.stat().st_size > 20_000


def test_the_editor_never_imports_reward_code_or_the_engine_rewards(
    state: StudioState, tmp_path: Path
) -> None:
    """Validation is static and tests run in a subprocess: the GUI process holds no user code."""
    import json
    import os
    import subprocess
    import sys

    assert state.db is not None
    seed_demo(state.db)
    code = (
        "import sys, json\n"
        "from studio.app import main\n"
        f"assert main(['--workspace', {state.db.path!r}, '--screenshot', {str(tmp_path / 's.png')!r},"
        " '--view', 'rubric']) == 0\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('engine.rewards') or m == 'rewards')))\n"
    )
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
