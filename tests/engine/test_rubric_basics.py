"""The demo rubric loads as written and scores on the same code path training uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.contract.paths import DEMO_DIR
from engine.rewards import RewardBatch, Rubric, load_rubric

DEMO_RUBRIC = DEMO_DIR / "rubric.toml"


@pytest.fixture(scope="module")
def demo():
    if not DEMO_RUBRIC.exists():
        pytest.skip(f"the demo rubric {DEMO_RUBRIC} is not there yet")
    with load_rubric(DEMO_RUBRIC) as rubric:
        yield rubric


def test_demo_rubric_loads(demo: Rubric):
    assert demo.name == "arith-v1"
    assert [(c.name, c.kind, c.weight) for c in demo.criteria] == [
        ("correct", "python", 1.0),
        ("format", "regex", 0.2),
        ("length", "length", 0.0),
    ]


def test_demo_rubric_scores(demo: Rubric):
    batch = RewardBatch(
        prompts=["2+3=", "2+3=", "9-4="],
        completions=["<answer>5</answer>", "<answer>6</answer>", "5"],
        columns={"answer": ["5", "5", "5"]},
    )
    scored = demo.score(batch)
    assert scored.scores["correct"] == [1.0, 0.0, 0.0]
    assert scored.scores["format"] == [1.0, 1.0, 0.0]
    assert scored.totals == pytest.approx([1.2, 0.2, 0.0])  # length has weight 0: logged, not optimised
    assert all(v is not None for v in scored.scores["length"])


def test_snapshot_holds_the_toml_and_sources(demo: Rubric):
    toml_text, sources = demo.snapshot()
    assert toml_text == DEMO_RUBRIC.read_text()
    assert sources == {"rewards.py": (DEMO_DIR / "rewards.py").read_text()}


def test_summary_metrics(demo: Rubric):
    scored = demo.score(
        RewardBatch(
            prompts=["1+1="] * 2, completions=["<answer>2</answer>", "x"], columns={"answer": ["2", "2"]}
        )
    )
    summary = scored.summary()
    assert summary["rewards/correct/mean"] == 0.5
    assert summary["rewards/correct/error_rate"] == 0.0
    assert summary["reward"] == pytest.approx(0.6)


def test_close_is_idempotent(tmp_path: Path):
    (tmp_path / "r.py").write_text("def f(completions, **kw):\n    return [1.0] * len(completions)\n")
    (tmp_path / "rubric.toml").write_text(
        'name = "x"\n[[criteria]]\nname = "f"\nkind = "python"\nsource = "r.py:f"\n'
    )
    rubric = load_rubric(tmp_path / "rubric.toml")
    worker = rubric.criteria[0].code.worker
    assert worker.alive()
    rubric.close()
    rubric.close()
    assert not worker.alive()


def test_snapshot_holds_every_file_the_rubric_read(tmp_path: Path):
    (tmp_path / "schema.json").write_text('{"type": "object"}')
    (tmp_path / "grader.json").write_text(
        '{"type": "python", "name": "g", "source": "def grade(sample, item):\\n    return 1.0\\n"}'
    )
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "checks.py").write_text(
        "def f(completions, **kw):\n    return [0.0] * len(completions)\n"
    )
    text = (
        'name = "x"\n'
        '[[criteria]]\nname = "s"\nkind = "json_schema"\nschema_file = "schema.json"\n'
        '[[criteria]]\nname = "g"\nkind = "openai_grader"\ngrader_file = "grader.json"\n'
        '[[criteria]]\nname = "f"\nkind = "python"\nsource = "lib/checks.py:f"\n'
    )
    (tmp_path / "rubric.toml").write_text(text)
    with load_rubric(tmp_path / "rubric.toml") as rubric:
        toml_text, sources = rubric.snapshot()
    assert toml_text == text
    assert sorted(sources) == ["grader.json", "lib/checks.py", "schema.json"]
    assert sources["schema.json"] == '{"type": "object"}'


def test_a_bug_in_a_criterion_is_an_error_on_its_rows_not_an_exception(tmp_path: Path, capsys):
    from engine.rewards.rubric import rubric_from_text

    text = 'name = "x"\n[[criteria]]\nname = "a"\nkind = "json_valid"\n[[criteria]]\nname = "b"\nkind = "contains"\ntext = "x"\n'
    with rubric_from_text(text, tmp_path) as rubric:

        def broken(ctx):
            raise RuntimeError("a bug of ours")

        rubric.criteria[0].score = broken
        scored = rubric.score(RewardBatch(["p"], ["x"]))
    assert scored.scores == {"a": [None], "b": [1.0]}
    assert scored.errors["a"] == ["the json_valid criterion failed: RuntimeError: a bug of ours"]
    assert scored.totals == [1.0]
    assert "Traceback" in capsys.readouterr().err
