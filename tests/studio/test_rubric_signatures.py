"""Static validation of reward code (engine.contract.reward_signatures) agrees with the engine's own
convention analysis of the live function, and says where each problem is."""

from __future__ import annotations

import textwrap

import pytest

from engine.contract import reward_signatures as static
from engine.rewards import conventions

# Each convention in its own style, as users write them (docs/rewards.md#conventions).
ACCEPTED = {
    "trl_kwargs": ("def f(completions, **kwargs):\n    return [1.0 for _ in completions]", "trl", False),
    "trl_named": ("def f(prompts, completions, answer):\n    return [0.0] * len(completions)", "trl", False),
    "trl_ids": ("def f(completion_ids, **kw):\n    return [len(i) for i in completion_ids]", "trl", False),
    "trl_async": ("async def f(completions, **kwargs):\n    return [1.0] * len(completions)", "trl", False),
    "open_r1": (
        "def f(completions, solution, **kwargs):\n"
        "    return [float(c[0]['content'] == s) for c, s in zip(completions, solution)]",
        "conversational",
        False,
    ),
    "verifiers_sample": (
        "def f(completion, answer):\n    return float(answer in completion)",
        "verifiers",
        False,
    ),
    "verifiers_parser": ("def f(parser, completion, answer, **kwargs):\n    return 1.0", "verifiers", False),
    "verifiers_group": (
        "def f(completions, answers):\n    return [1.0 for _ in completions]",
        "verifiers",
        True,
    ),
    "verifiers_async": ("async def f(prompt, completion, state):\n    return 0.5", "verifiers", False),
    "openai_grade": ("def grade(sample, item):\n    return 1.0", "openai-python", False),
    "openai_named": ("def f(sample, item) -> float:\n    return 1.0", "openai-python", False),
}


def _live(code: str, name: str) -> object:
    namespace: dict[str, object] = {}
    exec(compile(code, "<test>", "exec"), namespace)
    return namespace[name]


def _name(code: str) -> str:
    return code.split("def ", 1)[1].split("(", 1)[0]


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_each_convention_is_accepted_and_detected_like_the_engine(case: str) -> None:
    code, style, group = ACCEPTED[case]
    name = _name(code)
    result = static.analyse(code, name, columns={"prompt", "answer", "solution", "info"})
    assert result.ok, result.diagnostics
    assert result.diagnostics == []
    assert (result.style, result.group) == (style, group)
    engine = conventions.analyse(_live(code, name), None, code)
    assert (engine["style"], engine["group"]) == (style, group)


@pytest.mark.parametrize(
    ("code", "style"),
    [
        ("def f(x):\n    return 1.0", None),
        ("def f(a, b, c):\n    return 1.0", None),
        ("def f(prompts, completions, /):\n    return []", None),
        ("def f(completions, answers, prompt):\n    return []", "verifiers"),
        ("def f():\n    return []", "trl"),
        ("def grade(sample):\n    return 1.0", "openai-python"),
        ("def f(completions):\n    return []", "no-such-style"),
    ],
)
def test_a_signature_that_fits_no_convention_is_an_error_at_the_def_like_the_engine(
    code: str, style: str | None
) -> None:
    name = _name(code)
    result = static.analyse(code, name, style)
    assert not result.ok
    (d,) = result.diagnostics
    assert d.line == 1 and code.splitlines()[0][d.col : d.end_col] == name  # underlines the name
    with pytest.raises(conventions.ConventionError) as engine_error:
        conventions.analyse(_live(code, name), style, code)
    # Same verdict, same words where the engine has a fixed message.
    assert str(engine_error.value).split(";")[0][:30] == d.message.split(";")[0][:30]


def test_a_syntax_error_points_at_its_line_and_column() -> None:
    code = "def f(completions, **kw):\n    x = [1,\n    return x\n"
    result = static.analyse(code, "f")
    (d,) = result.diagnostics
    assert d.severity == "error" and d.message.startswith("syntax error")
    assert d.line in (2, 3)
    code = "def f(completions, **kw):\n    return [1.0 for c in completions]]\n"
    (d,) = static.analyse(code, "f").diagnostics
    assert d.line == 2 and "]" in d.message


def test_errors_only_compile_finds_are_reported_too() -> None:
    (d,) = static.analyse("return 1\ndef f(completions):\n    return []\n", "f").diagnostics
    assert d.line == 1 and "outside function" in d.message


def test_a_missing_function_is_an_error_and_an_assigned_one_a_warning() -> None:
    (d,) = static.analyse("def g(completions):\n    return []\n", "f").diagnostics
    assert d.severity == "error" and "no function named 'f'" in d.message
    code = "import functools\ndef g(completions, scale):\n    return []\nf = functools.partial(g, scale=2)\n"
    (d,) = static.analyse(code, "f").diagnostics
    assert d.severity == "warning"


def test_an_unknown_column_is_marked_on_the_parameter() -> None:
    code = textwrap.dedent(
        """
        def f(completions, answr, hint=None, **kwargs):
            return [1.0] * len(completions)
        """
    ).lstrip()
    result = static.analyse(code, "f", columns={"prompt", "answer", "reference"}, dataset="dataset 'demo'")
    by_name = {code.splitlines()[d.line - 1][d.col : d.end_col]: d for d in result.diagnostics}
    assert set(by_name) == {"answr", "hint"}
    assert by_name["answr"].severity == "error"
    assert "'answr' is not a column of dataset 'demo'" in by_name["answr"].message
    assert "answer, reference" in by_name["answr"].message
    assert by_name["hint"].severity == "warning"  # it has a default: never passed, never fails
    # Without a dataset, columns are not checked; with the right one, the name is fine.
    assert static.analyse(code, "f").ok
    assert static.analyse(code, "f", columns={"answr", "hint"}).diagnostics == []


def test_convention_names_are_never_unknown_columns() -> None:
    trl = "def f(prompts, completions, completion_ids, trainer_state, log_metric, log_extra):\n    return []"
    assert static.analyse(trl, "f", columns=set()).diagnostics == []
    verifiers = "def f(prompt, completion, answer, info, state, task, parser):\n    return 1.0"
    assert static.analyse(verifiers, "f", columns=set()).diagnostics == []
    group = "def f(prompts, completions, answers, infos, states, tasks):\n    return []"
    assert static.analyse(group, "f", columns=set()).diagnostics == []
    grade = "def grade(sample, item):\n    return 1.0"
    assert static.analyse(grade, "grade", columns=set()).diagnostics == []


def test_the_demo_rewards_pass(tmp_path) -> None:
    from engine.contract.paths import DEMO_DIR

    code = (DEMO_DIR / "rewards.py").read_text()
    for name in ("correct", "well_formatted"):
        result = static.analyse(code, name, columns={"prompt", "answer", "reference"})
        assert result.ok and result.style == "trl", result.diagnostics
