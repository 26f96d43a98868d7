"""OpenAI RFT graders taken as-is and the safe expression evaluator (the text-similarity metrics:
test_rewards_similarity.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.rewards import RewardBatch, load_rubric
from engine.rewards.expr import ExprError, Expression
from engine.rewards.similarity import fuzzy_match

GRADERS = Path(__file__).parent / "reward_fixtures" / "graders.toml"
COMPLETIONS = ["Paris", "paris is the capital", "Lyon", '{"city": "Paris"}']
COLUMNS = {"answer": ["Paris"] * 4}


@pytest.fixture(scope="module")
def scored():
    with load_rubric(GRADERS) as rubric:
        yield rubric.score(RewardBatch(["Capital of France?"] * 4, COMPLETIONS, dict(COLUMNS)))


def test_string_check_operations(scored):
    assert scored.scores["eq"] == [1.0, 0.0, 0.0, 0.0]
    assert scored.scores["ne"] == [0.0, 1.0, 1.0, 1.0]
    assert scored.scores["like"] == [1.0, 0.0, 0.0, 1.0]
    assert scored.scores["ilike"] == [1.0, 1.0, 0.0, 1.0]


def test_output_json_template(scored):
    assert scored.scores["json_field"] == [0.0, 0.0, 0.0, 1.0]


def test_text_similarity(scored):
    expected = [fuzzy_match(c, "Paris") for c in COMPLETIONS]
    assert scored.scores["similar"] == pytest.approx(expected)
    assert scored.scores["similar"][0] == 1.0


def test_python_grader_runs_in_a_worker(scored):
    assert scored.scores["py"] == [1.0, 1.0, 0.0, 1.0]


def test_multi_grader_expression(scored):
    # 0.5 * like + 0.5 * py ^ 2, min'ed with 1
    assert scored.scores["multi"] == [1.0, 0.5, 0.0, 1.0]
    assert scored.errors["multi"] == [None] * 4


def test_grader_file_holds_the_json_as_openai_writes_it(scored):
    assert scored.scores["from_file"] == [1.0, 0.0, 0.0, 0.0]


def test_python_grader_failure_is_a_row_error(tmp_path):
    grader = {
        "type": "python",
        "name": "g",
        "source": "def grade(sample, item):\n    return 1 / len(sample['output_text'])\n",
    }
    (tmp_path / "g.json").write_text(json.dumps(grader))
    (tmp_path / "r.toml").write_text(
        'name = "r"\n[[criteria]]\nname = "g"\nkind = "openai_grader"\ngrader_file = "g.json"\n'
    )
    with load_rubric(tmp_path / "r.toml") as rubric:
        scored = rubric.score(RewardBatch(["p", "p"], ["ab", ""], {}))
    assert scored.scores["g"] == [0.5, None]
    assert scored.errors["g"][1].startswith("raised ZeroDivisionError")


# ---- the expression evaluator ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("-2 ^ 2", -4.0),
        ("2 ** 3", 8.0),
        ("a / b - 1", 1.0),
        ("min(a, b, 0.5) + max(a, b)", 4.5),
        ("abs(-a) + floor(2.7) + ceil(2.1)", 9.0),
        ("sqrt(16) + log(exp(1)) + log(8, 2)", 8.0),
        (".5e1 + 1.", 6.0),
    ],
)
def test_expressions(text, expected):
    assert Expression(text, {"a", "b"})({"a": 4.0, "b": 2.0}) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a +", "ends too early"),
        ("a b", "unexpected 'b'"),
        ("__import__(a)", "unknown function '__import__'"),
        ("__import__('os')", "unexpected character"),
        ("a.__class__", "unexpected character '.'"),
        ("open", "unknown name 'open'"),
        ("max()", r"max\(\) takes 1 to 64"),
        ("sqrt(1, 2)", r"sqrt\(\) takes 1 argument"),
        ("(a", r"expected '\)'"),
        ("a; b", "unexpected character ';'"),
        ("[a]", "unexpected character '\\['"),
    ],
)
def test_bad_expressions_are_rejected(text, message):
    with pytest.raises(ExprError, match=message):
        Expression(text, {"a", "b"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a / 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ^ 0.5", "not a real number"),
        ("10 ^ 400", "too large"),
    ],
)
def test_expressions_that_cannot_be_computed(text, message):
    with pytest.raises(ExprError, match=message):
        Expression(text, {"a"})({"a": 1.0})
