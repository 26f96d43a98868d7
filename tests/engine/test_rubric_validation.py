"""A malformed rubric is rejected at load with a message naming the criterion and the problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.rewards import RubricError, load_rubric

GOOD_PY = "def ok(completions, **kwargs):\n    return [1.0] * len(completions)\n"


def load(tmp_path: Path, text: str, py: str | None = GOOD_PY):
    if py is not None:
        (tmp_path / "rewards.py").write_text(py)
    (tmp_path / "rubric.toml").write_text(text)
    with load_rubric(tmp_path / "rubric.toml") as rubric:
        return rubric


def rejects(tmp_path: Path, text: str, message: str, py: str | None = GOOD_PY) -> str:
    with pytest.raises(RubricError) as info:
        load(tmp_path, text, py)
    assert re.search(message, str(info.value)), str(info.value)
    return str(info.value)


def crit(body: str, name: str = "c") -> str:
    return f'name = "r"\n[[criteria]]\nname = "{name}"\n{body}\n'


def test_missing_file(tmp_path):
    with pytest.raises(RubricError, match="does not exist"):
        load_rubric(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path):
    rejects(tmp_path, "name = \n", "is not valid TOML")


def test_missing_name_and_criteria(tmp_path):
    rejects(tmp_path, "[[criteria]]\nname='a'\nkind='json_valid'\n", r'needs name = "\.\.\." at the top')
    rejects(tmp_path, 'name = "r"\n', r"at least one \[\[criteria\]\]")


def test_unknown_top_level_key(tmp_path):
    rejects(
        tmp_path,
        'name = "r"\nweight = 1\n[[criteria]]\nname="a"\nkind="json_valid"\n',
        "unknown top-level key",
    )


def test_unknown_kind(tmp_path):
    rejects(
        tmp_path,
        crit('kind = "magic"'),
        r"criterion 'c': unknown kind 'magic'; use one of python, exact_match",
    )


def test_missing_kind_and_name(tmp_path):
    rejects(tmp_path, crit("weight = 1"), "criterion 'c': needs kind")
    rejects(tmp_path, 'name = "r"\n[[criteria]]\nkind = "json_valid"\n', "criterion #1 needs a name")


def test_bad_names(tmp_path):
    rejects(tmp_path, crit('kind = "json_valid"', name="has space"), "must be a word")
    rejects(tmp_path, crit('kind = "json_valid"', name="total"), "reserved")


def test_duplicate_name(tmp_path):
    text = crit('kind = "json_valid"') + '[[criteria]]\nname = "c"\nkind = "json_valid"\n'
    rejects(tmp_path, text, "criterion 'c': the name is used by two criteria")


def test_missing_field(tmp_path):
    rejects(tmp_path, crit('kind = "regex"'), "criterion 'c': a regex criterion needs 'pattern'")
    rejects(tmp_path, crit('kind = "length"'), "criterion 'c': a length criterion needs 'target'")


def test_unknown_field_is_a_typo(tmp_path):
    rejects(
        tmp_path,
        crit('kind = "json_valid"\nwieght = 2'),
        r"criterion 'c': unknown field 'wieght' for kind 'json_valid'",
    )


def test_wrong_types(tmp_path):
    rejects(tmp_path, crit('kind = "json_valid"\nweight = "high"'), "'weight' must be a number")
    rejects(tmp_path, crit('kind = "length"\ntarget = 1.5'), "'target' must be a whole number")
    rejects(tmp_path, crit('kind = "length"\ntarget = 10\nshape = "cubic"'), "'shape' must be one of")


def test_bad_regex(tmp_path):
    rejects(
        tmp_path,
        crit('kind = "regex"\npattern = "(unclosed"'),
        "criterion 'c': 'pattern' is not a valid regular expression",
    )


def test_bad_placeholder(tmp_path):
    rejects(tmp_path, crit('kind = "exact_match"\nreference = "{{itme.answer}}"'), "unknown placeholder")


def test_bad_total_expression(tmp_path):
    text = 'name = "r"\ntotal = "c +"\n[[criteria]]\nname = "c"\nkind = "json_valid"\n'
    rejects(tmp_path, text, "total: bad expression")
    text = 'name = "r"\ntotal = "c + missing"\n[[criteria]]\nname = "c"\nkind = "json_valid"\n'
    rejects(tmp_path, text, "unknown name 'missing'")


def test_source_file_missing(tmp_path):
    rejects(
        tmp_path,
        crit('kind = "python"\nsource = "nope.py:f"'),
        "criterion 'c': source file nope.py not found",
    )


def test_source_needs_a_function(tmp_path):
    rejects(
        tmp_path, crit('kind = "python"\nsource = "rewards.py"'), 'must be "path/to/file.py:function_name"'
    )
    rejects(tmp_path, crit('kind = "python"'), "give either source")


def test_function_missing(tmp_path):
    rejects(
        tmp_path,
        crit('kind = "python"\nsource = "rewards.py:nope"'),
        r"criterion 'c': rewards.py has no function 'nope' \(it defines: ok\)",
    )


def test_syntax_error_in_source(tmp_path):
    rejects(
        tmp_path,
        crit('kind = "python"\nsource = "rewards.py:ok"'),
        "rewards.py line 1: invalid syntax",
        py="def ok(:\n",
    )


def test_source_that_raises_on_import(tmp_path):
    rejects(
        tmp_path,
        crit('kind = "python"\nsource = "rewards.py:ok"'),
        r"importing rewards.py raised ModuleNotFoundError: No module named 'not_installed'",
        py="import not_installed\n",
    )


def test_source_that_exits_on_import(tmp_path):
    rejects(
        tmp_path,
        crit('kind = "python"\nsource = "rewards.py:ok"'),
        "tried to exit",
        py="raise SystemExit(2)\n",
    )


def test_signature_fits_no_convention(tmp_path):
    py = "def f(x, y):\n    return 0.0\n"
    rejects(
        tmp_path,
        crit('kind = "python"\nsource = "rewards.py:f"'),
        r"criterion 'c': f in rewards.py: the signature \(x, y\) fits no convention",
        py=py,
    )


def test_signature_does_not_fit_the_named_style(tmp_path):
    py = "def f(sample):\n    return 0.0\n"
    rejects(
        tmp_path,
        crit('kind = "python"\nsource = "rewards.py:f"\nstyle = "openai-python"'),
        r"grade\(sample, item\)",
        py=py,
    )
    rejects(
        tmp_path,
        crit('kind = "python"\nsource = "rewards.py:ok"\nstyle = "pytorch"'),
        "'style' must be one of",
    )


def test_inline_code(tmp_path):
    ok = load(
        tmp_path,
        crit(
            'kind = "python"\ncode = "def f(completions, **kw):\\n    return [2.0] * len(completions)\\n"\nfunction = "f"'
        ),
    )
    assert ok.criteria[0].kind == "python"
    rejects(tmp_path, crit('kind = "python"\ncode = "x = 1"'), "needs 'function'")


def test_openai_grader_problems(tmp_path):
    base = 'kind = "openai_grader"\n'
    rejects(
        tmp_path,
        crit(
            base
            + 'grader = {type = "string_check", input = "{{sample.output_text}}", reference = "x", operation = "regex"}'
        ),
        r"grader.operation: must be one of eq, ne, like, ilike",
    )
    rejects(
        tmp_path,
        crit(
            base
            + 'grader = {type = "text_similarity", input = "a", reference = "b", evaluation_metric = "cosine"}'
        ),
        "cosine metric needs an embedding model",
    )
    rejects(tmp_path, crit(base + 'grader = {type = "teleport"}'), "unknown grader type 'teleport'")
    rejects(
        tmp_path,
        crit(
            base
            + 'grader = {type = "multi", graders = {a = {type = "string_check", input = "x", reference = "y", operation = "eq"}}, calculate_output = "a ** "}'
        ),
        "grader.calculate_output",
    )
    rejects(
        tmp_path,
        crit(base + 'grader = {type = "string_check", input = "x"}'),
        "a string_check grader needs operation, reference",
    )


def test_judge_problems(tmp_path, monkeypatch):
    monkeypatch.delenv("RL_STUDIO_TEST_KEY", raising=False)
    rejects(tmp_path, crit('kind = "judge"\nmodel = "no-such-folder"'), "is not a local model folder")
    text = crit(
        'kind = "judge"\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "RL_STUDIO_TEST_KEY"'
    )
    rejects(tmp_path, text, "the environment variable RL_STUDIO_TEST_KEY .* is not set")
    rejects(tmp_path, crit('kind = "judge"\nmodel = "m"\nbase_url = "ftp://x"'), "must start with http")
    rejects(
        tmp_path, crit('kind = "judge"\nmodel = "m"\nbase_url = "http://x/v1"\nrange = [10, 0]'), "low < high"
    )
    rejects(
        tmp_path,
        crit('kind = "judge"\nmodel = "m"\nbase_url = "http://x/v1"\napi_key_env = "sk-abc123-secret"'),
        "never put the key itself",
    )


def test_no_worker_is_left_behind_when_loading_fails(tmp_path):
    psutil = pytest.importorskip("psutil")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    text = (
        crit('kind = "python"\nsource = "rewards.py:ok"')
        + '[[criteria]]\nname = "d"\nkind = "python"\nsource = "rewards.py:nope"\n'
    )
    rejects(tmp_path, text, "criterion 'd'")
    after = {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}
    assert after <= before
