"""The rubric format (engine/contract/rubric_format.py) is what the loader enforces: unknown fields get
the closest known one, every kind has an implementation, and the module stays importable without the
engine's dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.contract import rubric_format
from engine.contract.rubric_format import KINDS, criterion_problems
from engine.rewards import RubricError, load_rubric
from engine.rewards.builtins import BUILTIN_KINDS

GOOD_PY = "def ok(completions, **kwargs):\n    return [1.0] * len(completions)\n"


def load_error(tmp_path: Path, body: str) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "rewards.py").write_text(GOOD_PY)
    (tmp_path / "rubric.toml").write_text(f'name = "r"\n[[criteria]]\nname = "c"\n{body}\n')
    with pytest.raises(RubricError) as info:
        load_rubric(tmp_path / "rubric.toml").close()
    return str(info.value)


def test_a_misspelt_field_is_named_with_its_closest_known_field(tmp_path):
    message = load_error(tmp_path, 'kind = "python"\nsourse = "rewards.py:ok"')
    assert message.startswith(
        "criterion 'c': unknown field 'sourse' for kind 'python' (did you mean 'source'?)"
    )
    assert "give either source" not in message
    message = load_error(tmp_path, 'kind = "regex"\npattern = "x"\nflag = ["IGNORECASE"]')
    assert "unknown field 'flag' for kind 'regex' (did you mean 'flags'?)" in message
    message = load_error(tmp_path, 'kind = "json_valid"\nwieght = 2')
    assert "unknown field 'wieght' for kind 'json_valid' (did you mean 'weight'?)" in message
    message = load_error(tmp_path, 'kind = "json_valid"\nzzz = 2')
    assert "unknown field 'zzz' for kind 'json_valid'; its fields: allow_fence, description" in message
    message = load_error(tmp_path, 'kind = "regexp"\npattern = "x"')
    assert "unknown kind 'regexp' (did you mean 'regex'?); use one of python, exact_match" in message


def test_the_studio_and_the_engine_share_each_message(tmp_path):
    """criterion_problems is what the editor shows; the loader refuses with its first entry, word for word."""
    cases: list[dict[str, Any]] = [
        {"kind": "python", "sourse": "rewards.py:ok"},
        {"kind": "python"},
        {"kind": "python", "source": "rewards.py"},
        {"kind": "python", "code": "x = 1"},
        {"kind": "length", "target": 0},
        {"kind": "length", "target": 10, "tolerance": 0},
        {"kind": "repetition_penalty", "max_penalty": 0.5},
        {"kind": "judge", "model": "m", "range": [5, 1]},
        {"kind": "exact_match", "tag": "a", "extract": "(x)"},
        {"kind": "json_schema"},
        {"kind": "numeric_match", "tolerance": float("inf")},
        {"kind": "python", "source": "rewards.py:ok", "style": "pytorch"},
    ]
    for k, table in enumerate(cases):
        body = "\n".join(f"{key} = {json.dumps(value)}" for key, value in table.items())
        body = body.replace("Infinity", "inf")
        problems = criterion_problems({"name": "c", **table})
        assert problems, table
        assert load_error(tmp_path / str(k), body) == f"criterion 'c': {problems[0]}"


def test_every_kind_in_the_format_has_an_implementation_and_the_right_builtin_flag():
    for name, kind in KINDS.items():
        assert kind.builtin == (name in BUILTIN_KINDS), name
        assert name in BUILTIN_KINDS or name in ("python", "openai_grader", "judge"), name
        assert set(kind.template) - {"kind", "weight"} <= set(kind.field_names), name
        for field in kind.fields:
            assert field.type in rubric_format.FIELD_TYPES, (name, field.name)
            assert field.help.strip(), (name, field.name)
            if field.default is not None:
                assert rubric_format.value_problem(field, field.default) is None, (name, field.name)
            if field.example is not None:
                assert rubric_format.value_problem(field, field.example) is None, (name, field.name)
    assert set(BUILTIN_KINDS) <= set(KINDS)


def test_a_new_kind_in_the_format_without_an_engine_class_is_refused_plainly(tmp_path, monkeypatch):
    kind = rubric_format.Kind("word_count", "Word count", "Counts words.", (), {"kind": "word_count"})
    monkeypatch.setitem(KINDS, "word_count", kind)
    message = load_error(tmp_path, 'kind = "word_count"')
    assert "this engine has no implementation of kind 'word_count'" in message


def test_the_rubric_format_imports_only_the_standard_library():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import engine.contract.rubric_format\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(m for m in new if m not in sys.stdlib_module_names and m != 'engine'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
