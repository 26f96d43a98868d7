"""The edited rubric: TOML writing, the kinds the editor offers, table edits and static checks, each
checked against the real engine loader (tests may import engine.rewards; the studio never does)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from engine.contract.paths import DEMO_DIR
from engine.contract.rubric_format import KINDS, key_parameters, new_criterion
from engine.rewards.errors import RubricError
from engine.rewards.rubric import load_rubric
from studio.models.criteria_model import KIND, NAME, PARAMS, WEIGHT, CriteriaModel, parse_parameters
from studio.state import rubric_checks, rubric_toml
from studio.state.rubric_doc import RubricDocument, read_rubric_file
from studio.state.rubric_session import RubricSession
from studio.state.studio_state import StudioState

DEMO_COLUMNS = {"prompt", "answer", "reference"}


def engine_load(doc: RubricDocument, folder: Path) -> list[str]:
    """Load the document with the engine, as `rubric test` would; returns the criteria names."""
    rubric = load_rubric(doc.write_to(folder))
    try:
        return [c.name for c in rubric.criteria]
    finally:
        rubric.close()


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "it's",
        'say "hi"',
        r"^<answer>-?\d+</answer>$",
        "back\\slash and 'quote'",
        "tab\there",
        "line one\nline two\n",
        "def f():\n    return '''x'''\n",
        'ends with a quote"\n"',
        "ends with '\n'",
        'three """ quotes\n',
        "control \x01 char\n",
        "unicode ✓ é",
        "",
    ],
)
def test_toml_writer_round_trips_strings(text: str) -> None:
    data = {
        "name": "t",
        "criteria": [{"name": "c", "kind": "python", "code": text, "grader": {"source": text}}],
    }
    assert tomllib.loads(rubric_toml.dumps(data)) == data


def test_toml_writer_round_trips_numbers_lists_and_nested_tables() -> None:
    data: dict[str, Any] = {
        "name": "arith",
        "total": "correct + 0.2 * format",
        "criteria": [
            {"name": "a", "kind": "length", "target": 19, "weight": 0.0, "tolerance": 1e-6},
            {"name": "b", "kind": "regex", "pattern": "x", "flags": ["IGNORECASE", "DOTALL"], "weight": -0.5},
            {
                "name": "c",
                "kind": "openai_grader",
                "grader": {
                    "type": "multi",
                    "graders": {
                        "x": {"type": "string_check", "input": "a", "reference": "b", "operation": "eq"}
                    },
                    "calculate_output": "x",
                },
            },
            {"name": "d", "kind": "judge", "model": "m", "range": [0, 10], "normalize": True, "cache": False},
            {"name": "e", "kind": "json_schema", "schema": {"type": "object", "properties": {}}},
        ],
    }
    text = rubric_toml.dumps(data)
    assert tomllib.loads(text) == data
    assert "[criteria.grader]" in text and "range = [0, 10]" in text  # tables as sections, arrays inline
    assert rubric_toml.update("# a header\n# two lines\n" + text, data, []).startswith("# a header\n")


def test_every_kind_template_and_every_field_example_loads_in_the_engine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")  # the judge template names it; nothing is sent
    rewards = (DEMO_DIR / "rewards.py").read_text()
    count = 0
    for kind_name, kind in KINDS.items():
        variants: list[dict[str, Any]] = [new_criterion(kind_name, "c")]
        for f in kind.fields:
            if f.example is None:
                continue
            c = new_criterion(kind_name, "c")
            for rule in kind.rules:
                if rule.kind in ("exactly_one", "at_most_one") and f.name in rule.fields:
                    for other in rule.fields:
                        c.pop(other, None)
            if f.name == "source":
                c.pop("function", None)
            c[f.name] = f.example
            variants.append(c)
        for c in variants:
            doc = RubricDocument('name = "t"\n', {"rewards.py": rewards})
            doc.criteria.append(c)
            doc.regenerate()
            assert rubric_checks.check(doc, DEMO_COLUMNS).errors == [], c
            assert engine_load(doc, tmp_path / f"k{count}") == ["c"], c
            count += 1
    assert count > 40


def test_static_checks_catch_what_the_engine_rejects(tmp_path: Path) -> None:
    cases: dict[str, dict[str, Any]] = {
        "unknown kind": {"name": "c", "kind": "regexp", "pattern": "x"},
        "unknown field": {"name": "c", "kind": "regex", "pattern": "x", "wieght": 1},
        "missing field": {"name": "c", "kind": "length"},
        "bad choice": {"name": "c", "kind": "regex", "pattern": "x", "mode": "anywhere"},
        "bad type": {"name": "c", "kind": "length", "target": "long"},
        "both sources": {
            "name": "c",
            "kind": "python",
            "source": "rewards.py:correct",
            "code": "x",
            "function": "f",
        },
        "no source": {"name": "c", "kind": "python"},
        "reserved": {"name": "total", "kind": "json_valid"},
        "bad name": {"name": "my score", "kind": "json_valid"},
        "tag and extract": {"name": "c", "kind": "exact_match", "tag": "a", "extract": "(x)"},
        "bad signature": {
            "name": "c",
            "kind": "python",
            "code": "def f(x):\n    return 1\n",
            "function": "f",
        },
        "syntax": {"name": "c", "kind": "python", "code": "def f(completions:\n", "function": "f"},
    }
    for label, criterion in cases.items():
        doc = RubricDocument('name = "t"\n', {"rewards.py": (DEMO_DIR / "rewards.py").read_text()})
        doc.criteria.append(criterion)
        doc.regenerate()
        report = rubric_checks.check(doc, DEMO_COLUMNS)
        assert report.errors and all(p.criterion == 0 for p in report.errors), label
        with pytest.raises(RubricError):
            engine_load(doc, tmp_path / label.replace(" ", "_"))


def test_duplicate_names_and_a_bad_total_are_reported() -> None:
    doc = RubricDocument(
        'name = "t"\ntotal = "a + b"\n[[criteria]]\nname = "a"\nkind = "json_valid"\n'
        '[[criteria]]\nname = "a"\nkind = "json_valid"\n'
    )
    messages = [p.message for p in rubric_checks.check(doc).problems]
    assert any("used by two criteria" in m for m in messages)
    assert any("'b' is not a criterion name" in m for m in messages)
    broken = RubricDocument('name = "t"\n[[criteria]\n')
    (problem,) = rubric_checks.check(broken).problems
    assert "not valid TOML" in problem.message and problem.line == 2


def test_unknown_item_columns_in_templates_are_warnings() -> None:
    doc = RubricDocument(
        'name = "t"\n[[criteria]]\nname = "m"\nkind = "exact_match"\nreference = "{{item.solution}}"\n'
    )
    (problem,) = rubric_checks.check(doc, DEMO_COLUMNS, "dataset 'demo'").problems
    assert problem.severity == "warning" and "no column 'solution'" in problem.message


def test_an_unchanged_document_keeps_its_text_byte_for_byte() -> None:
    text = (DEMO_DIR / "rubric.toml").read_text()
    doc = read_rubric_file(DEMO_DIR / "rubric.toml")
    assert doc.text == text and set(doc.sources) == {"rewards.py"}
    doc.set_field(1, "weight", 0.5)
    assert tomllib.loads(doc.text)["criteria"][1]["weight"] == 0.5
    changed = [(a, b) for a, b in zip(text.splitlines(), doc.text.splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and changed[0][1].startswith("weight = 0.5"), changed


def test_criteria_table_edits_round_trip_to_toml_the_engine_loads(
    qtbot, state: StudioState, tmp_path: Path
) -> None:
    session = RubricSession(state)
    session.load_document(read_rubric_file(DEMO_DIR / "rubric.toml"), None, "demo")
    model = CriteriaModel(session)
    assert model.rowCount() == 3
    assert model.data(model.index(0, PARAMS)) == 'source = "rewards.py:correct", timeout_s = 10'

    assert model.setData(model.index(1, WEIGHT), 0.5)
    assert model.setData(model.index(1, NAME), "fmt")
    assert model.setData(model.index(1, PARAMS), "pattern = '<answer>\\d+</answer>', mode = \"search\"")
    assert model.setData(model.index(2, KIND), "think_answer_format")  # name and weight stay
    assert not model.setData(model.index(0, NAME), "fmt")  # taken
    assert not model.setData(model.index(0, PARAMS), "source = ")  # not TOML
    rows = {kind: model.add(kind) for kind in ("contains", "json_valid", "repetition_penalty", "python")}
    model.remove(rows["json_valid"])
    assert model.move(0, 1) == 1

    data = tomllib.loads(session.doc.text)
    assert data == session.doc.data
    names = [c["name"] for c in data["criteria"]]
    assert names == ["fmt", "correct", "length", "contains", "repetition_penalty", "python"]
    fmt = data["criteria"][0]
    assert fmt == {
        "name": "fmt",
        "kind": "regex",
        "pattern": r"<answer>\d+</answer>",
        "weight": 0.5,
        "mode": "search",
    }
    assert data["criteria"][2] == {"name": "length", "kind": "think_answer_format", "weight": 0.0}
    assert rubric_checks.check(session.doc, DEMO_COLUMNS).problems == []
    assert engine_load(session.doc, tmp_path / "edited") == names


def test_renaming_a_criterion_updates_the_total(qtbot, state: StudioState) -> None:
    session = RubricSession(state)
    session.load_document(
        RubricDocument(
            'name = "t"\ntotal = "ok + 0.5 * ok_long"\n[[criteria]]\nname = "ok"\nkind = "json_valid"\n'
            '[[criteria]]\nname = "ok_long"\nkind = "json_valid"\n'
        ),
        None,
        "t",
    )
    model = CriteriaModel(session)
    assert model.setData(model.index(0, NAME), "valid")
    assert session.doc.data["total"] == "valid + 0.5 * ok_long"


def test_key_parameters_parse_and_display() -> None:
    assert parse_parameters('a = 1, b = "x", c = [1, 2], d = { e = true }') == {
        "a": 1,
        "b": "x",
        "c": [1, 2],
        "d": {"e": True},
    }
    assert parse_parameters("  ") == {}
    with pytest.raises(ValueError, match="not valid TOML"):
        parse_parameters("a = ")
    c = {"name": "x", "kind": "python", "weight": 1.0, "code": "...", "function": "f", "timeout_s": 5}
    assert list(key_parameters(c)) == ["function", "timeout_s"]
