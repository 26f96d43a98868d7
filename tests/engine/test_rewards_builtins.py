"""Built-in checks: each kind with the parameters a user expects, placeholders reading dataset columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.rewards import RewardBatch
from engine.rewards.rubric import rubric_from_text


def score(body: str, completions: list, columns: dict | None = None, ids=None, tmp: Path | None = None):
    text = f'name = "r"\n[[criteria]]\nname = "c"\n{body}\n'
    with rubric_from_text(text, tmp or Path(".")) as rubric:
        n = len(completions)
        scored = rubric.score(RewardBatch(["prompt"] * n, completions, columns or {}, completion_ids=ids))
    return scored.scores["c"], scored.errors["c"]


def test_exact_match_reads_the_answer_column():
    values, errors = score('kind = "exact_match"', ["42", " 42 \n", "41", "42!"], {"answer": ["42"] * 4})
    assert values == [1.0, 1.0, 0.0, 0.0]
    assert errors == [None] * 4


def test_exact_match_options():
    body = 'kind = "exact_match"\nreference = "{{item.gold}}"\ncase_sensitive = false\ntag = "answer"'
    values, _ = score(
        body, ["<answer>PARIS</answer>", "paris", "<answer>Lyon</answer>"], {"gold": ["Paris"] * 3}
    )
    assert values == [1.0, 0.0, 0.0]


def test_exact_match_missing_column_is_a_row_error():
    values, errors = score('kind = "exact_match"', ["x"], {"solution": ["x"]})
    assert values == [None]
    assert errors[0] == "the row has no column 'answer' (columns: solution)"


def test_numeric_match_last_number_and_tolerance():
    body = 'kind = "numeric_match"\ntolerance = 0.01'
    completions = ["so it is 3.14", "1,234 apples", "-7", "no number", "2 then 3"]
    answers = ["3.141", "1234", -7, "3", "2"]
    values, errors = score(body, completions, {"answer": answers})
    assert values == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert errors == [None] * 5


def test_numeric_match_in_a_tag_and_unparseable_gold_is_not_applicable():
    body = 'kind = "numeric_match"\ntag = "answer"'
    values, _ = score(
        body, ["<answer>5</answer> 6", "6", "<answer>5</answer>"], {"answer": ["5", "6", "five"]}
    )
    assert values == [1.0, 0.0, None]


def test_numeric_match_relative_tolerance():
    values, _ = score(
        'kind = "numeric_match"\nrelative_tolerance = 0.1', ["105", "120"], {"answer": ["100", "100"]}
    )
    assert values == [1.0, 0.0]


def test_regex_search_flags_and_fullmatch():
    values, _ = score(
        'kind = "regex"\npattern = "^answer: \\\\d+$"\nflags = ["IGNORECASE", "MULTILINE"]',
        ["x\nANSWER: 5", "answer: five"],
    )
    assert values == [1.0, 0.0]
    values, _ = score('kind = "regex"\npattern = "\\\\d+"\nmode = "fullmatch"', ["123", "123a"])
    assert values == [1.0, 0.0]


def test_regex_with_a_column_escapes_the_value():
    values, _ = score(
        'kind = "regex"\npattern = "= {{item.answer}}$"', ["x = 1.5", "x = 105"], {"answer": ["1.5", "1.5"]}
    )
    assert values == [1.0, 0.0]


def test_contains_any_all_and_case():
    values, _ = score('kind = "contains"\ntext = ["because", "therefore"]', ["because x", "so", "therefore"])
    assert values == [1.0, 0.0, 1.0]
    values, _ = score('kind = "contains"\ntext = ["a", "b"]\nmatch = "all"', ["ab", "a"])
    assert values == [1.0, 0.0]
    values, _ = score(
        'kind = "contains"\ntext = "{{item.answer}}"\ncase_sensitive = false',
        ["PARIS!"],
        {"answer": ["Paris"]},
    )
    assert values == [1.0]


def test_json_valid():
    values, _ = score('kind = "json_valid"', ['{"a": 1}', "```json\n[1, 2]\n```", "{a: 1}", "null"])
    assert values == [1.0, 1.0, 0.0, 1.0]
    values, _ = score('kind = "json_valid"\nallow_fence = false', ["```json\n[1]\n```", "[1]"])
    assert values == [0.0, 1.0]


def test_json_schema_inline_and_from_file(tmp_path):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer", "minimum": 0}, "unit": {"enum": ["m", "s"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    completions = [
        '{"answer": 3, "unit": "m"}',
        '{"answer": -1}',
        '{"answer": 3, "extra": 1}',
        "not json",
        '{"unit": "m"}',
    ]
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    from_file, _ = score('kind = "json_schema"\nschema_file = "schema.json"', completions, tmp=tmp_path)
    inline, _ = score(
        'kind = "json_schema"\nschema = { type = "object", properties = { answer = { type = "integer", minimum = 0 }, '
        'unit = { enum = ["m", "s"] } }, required = ["answer"], additionalProperties = false }',
        completions,
    )
    assert from_file == inline == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_a_bad_json_schema_is_refused_at_load_with_where_and_what():
    from engine.rewards import RubricError

    with pytest.raises(
        RubricError, match=r"criterion 'c': bad JSON schema at properties/n/type: 'integr' is not valid"
    ):
        score(
            'kind = "json_schema"\nschema = { type = "object", properties = { n = { type = "integr" } } }',
            ["{}"],
        )
    with pytest.raises(RubricError, match="bad JSON schema at minimum: 'zero' is not of type 'number'"):
        score('kind = "json_schema"\nschema = { minimum = "zero" }', ["1"])


# (schema, JSON texts): booleans are not numbers in JSON Schema (True == 1 in Python, not in JSON)
SCHEMA_CASES = [
    ({"const": True}, ["true", "1", "1.0", "false"]),
    ({"const": 1}, ["1", "1.0", "true"]),
    ({"enum": [1, 2]}, ["1", "true", "2.0", "false", "0"]),
    ({"enum": [True]}, ["true", "1"]),
    ({"const": [1, {"a": 0}]}, ['[1, {"a": 0}]', '[true, {"a": false}]', '[1.0, {"a": 0.0}]']),
    ({"type": "integer"}, ["1", "1.0", "true", "1.5"]),
    ({"type": "number", "multipleOf": 0.1}, ["0.3", "0.35", "true"]),
    ({"uniqueItems": True}, ["[1, true]", "[1, 1.0]", "[0, false]", "[[1], [true]]"]),
    ({"type": "array", "prefixItems": [{"type": "string"}], "items": False}, ['["a"]', '["a", 1]', "[1]"]),
    (
        {
            "type": "object",
            "dependentSchemas": {"a": {"required": ["b"]}},
            "unevaluatedProperties": False,
            "properties": {"a": {}, "b": {}},
        },
        ['{"a": 1, "b": 2}', '{"a": 1}', '{"c": 1}', "{}"],
    ),
    (
        {"$defs": {"pos": {"type": "integer", "minimum": 1}}, "items": {"$ref": "#/$defs/pos"}},
        ["[1, 2]", "[0]", "[true]"],
    ),
    ({"type": "string", "minLength": 2, "pattern": "^a"}, ['"ab"', '"a"', '"ba"', '"\\ud83d\\ude00a"']),
]


@pytest.mark.parametrize(("schema", "texts"), SCHEMA_CASES)
def test_json_schema_agrees_with_the_reference_validator(schema, texts):
    """Each verdict is the reference Draft 2020-12 validator's, bools and ints kept apart."""
    from jsonschema import Draft202012Validator

    toml_schema = json.dumps(schema)  # JSON objects are TOML inline tables once keys are quoted the TOML way
    body = f'kind = "json_schema"\nallow_fence = false\nschema = {_toml_inline(schema)}'
    values, errors = score(body, texts)
    expected = [float(Draft202012Validator(schema).is_valid(json.loads(t))) for t in texts]
    assert values == expected, toml_schema
    assert errors == [None] * len(texts)


def test_json_schema_bool_int_cases_the_old_checker_got_wrong():
    values, _ = score('kind = "json_schema"\nschema = { const = true }', ["true", "1"])
    assert values == [1.0, 0.0]
    values, _ = score('kind = "json_schema"\nschema = { enum = [1] }', ["1", "true"])
    assert values == [1.0, 0.0]


def test_json_schema_remote_refs_are_row_errors_not_fetches():
    values, errors = score('kind = "json_schema"\nschema = { "$ref" = "https://example.com/s.json" }', ["{}"])
    assert values == [None]
    assert errors[0] is not None and "put its definition in the schema's $defs" in errors[0]


def _toml_inline(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    return json.dumps(value)  # strings, numbers, true/false: the same in TOML


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("linear", [0.5, 1.0, 0.5]),
        ("over", [1.0, 1.0, 0.5]),
        ("under", [0.5, 1.0, 1.0]),
        ("gaussian", [math.exp(-0.5 * 0.25), 1.0, math.exp(-0.5 * 0.25)]),
    ],
)
def test_length_shapes(shape, expected):
    values, _ = score(f'kind = "length"\ntarget = 10\nshape = "{shape}"', ["x" * 5, "x" * 10, "x" * 15])
    assert values == pytest.approx(expected)


def test_length_soft_overlong_in_tokens():
    body = 'kind = "length"\ntarget = 8\nbuffer = 4\nshape = "soft_overlong"\nunit = "tokens"'
    values, _ = score(body, ["a", "b", "c"], ids=[[1] * 4, [1] * 6, [1] * 9])
    assert values == [0.0, -0.5, -1.0]


def test_length_in_words_and_missing_tokens():
    values, _ = score('kind = "length"\ntarget = 2\nunit = "words"', ["one two", "one two three four"])
    assert values == [1.0, 0.0]
    values, errors = score('kind = "length"\ntarget = 2\nunit = "tokens"', ["x"])
    assert values == [None] and "needs completion_ids or a tokenizer" in errors[0]


def test_think_answer_format():
    good = "<think>\nreasoning\n</think>\n<answer>\n4\n</answer>"
    loose = "<think>r</think> <answer>4</answer>"
    values, _ = score('kind = "think_answer_format"', [good, loose, "<answer>4</answer>"])
    assert values == [1.0, 1.0, 0.0]
    values, _ = score('kind = "think_answer_format"\nstrict = true', [good, loose])
    assert values == [1.0, 0.0]
    values, _ = score(
        'kind = "think_answer_format"\npartial = true', [good, "<think>x</think>", "<think><think>"]
    )
    assert values == [1.0, 0.5, 0.0]


def test_repetition_penalty():
    values, _ = score('kind = "repetition_penalty"\nngram_size = 2', ["a b a b a b", "a b c d", "a"])
    assert values == pytest.approx([-(1 - 2 / 5), 0.0, 0.0])
    from engine.rewards import RubricError

    with pytest.raises(RubricError, match="'max_penalty' must be 0 or less"):
        score('kind = "repetition_penalty"\nmax_penalty = 0.5', ["x"])


def test_conversational_completions_are_read_as_text():
    completion = [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "<answer>"}, {"type": "text", "text": "7</answer>"}],
        }
    ]
    values, _ = score('kind = "numeric_match"\ntag = "answer"', [completion], {"answer": ["7"]})
    assert values == [1.0]


def test_weights_total_and_expression(tmp_path):
    text = """
name = "r"
[[criteria]]
name = "a"
kind = "contains"
text = "a"
weight = 2.0
[[criteria]]
name = "b"
kind = "contains"
text = "b"
weight = 0.0
[[criteria]]
name = "n"
kind = "numeric_match"
weight = 1.0
"""
    with rubric_from_text(text, tmp_path) as rubric:
        scored = rubric.score(RewardBatch(["p"] * 3, ["a b 1", "b", "a"], {"answer": ["1", "1", "x"]}))
    # weight 0 is logged, not optimised; n is None for the last row (answer 'x' has no number) and skipped
    assert scored.totals == [3.0, 0.0, 2.0]
    assert scored.scores["b"] == [1.0, 1.0, 0.0]
    with rubric_from_text('total = "a * (1 + b) / n"\n' + text, tmp_path) as rubric:
        scored = rubric.score(RewardBatch(["p"] * 2, ["a b 1", "a 2"], {"answer": ["1", "1"]}))
    assert scored.totals == [2.0, 0.0]
    assert scored.total_errors == [None, "total: 'a * (1 + b) / n': division by zero; scored 0.0"]
