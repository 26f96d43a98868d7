"""`rl-studio-engine rubric test` and `rubric redteam`, end to end, as subprocesses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import engine_cmd, engine_env
from conftest_rewards import FakeOpenAI

from engine.contract.command_outputs import parse_rubric_redteam, parse_rubric_test
from engine.contract.paths import DEMO_DIR

FIXTURES = Path(__file__).parent / "reward_fixtures"
DEMO_RUBRIC = DEMO_DIR / "rubric.toml"
DEMO_EVAL = DEMO_DIR / "data" / "eval.jsonl"

needs_demo_rubric = pytest.mark.skipif(not DEMO_RUBRIC.exists(), reason=f"{DEMO_RUBRIC} is not there yet")


def engine(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        engine_cmd(*map(str, args)), capture_output=True, text=True, env=engine_env(), cwd=cwd, timeout=120
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# ---- rubric test --------------------------------------------------------------------------------------


@needs_demo_rubric
def test_rubric_test_json(tmp_path):
    result = engine("rubric", "test", DEMO_RUBRIC, "--samples", FIXTURES / "demo_samples.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert set(rows[0]) == {"index", "total", "scores", "errors"}
    results = parse_rubric_test(result.stdout)  # what the studio reads, with every field checked
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert [r.total for r in results] == pytest.approx([1.2, 0.2, 0.0, 1.2])
    assert results[0].scores["correct"] == 1.0 and results[2].scores["format"] == 0.0
    assert all(r.errors == {} for r in results)


@needs_demo_rubric
def test_rubric_test_table():
    result = engine("rubric", "test", DEMO_RUBRIC, "--samples", FIXTURES / "demo_samples.jsonl")
    assert result.returncode == 0, result.stderr
    assert "rubric arith-v1: 3 criteria, 4 samples" in result.stdout
    assert "correct (x1)" in result.stdout and "length (x0)" in result.stdout
    assert "1.200" in result.stdout


def test_rubric_test_reports_criterion_errors_per_sample(tmp_path):
    (tmp_path / "r.py").write_text(
        "def picky(completions, answer, **kw):\n"
        "    return [1.0 if c == a else int('not a number') if c == 'boom' else 0.0 for c, a in zip(completions, answer)]\n"
        "def positive(completion):\n"
        "    if completion == 'boom':\n"
        "        raise KeyError('boom')\n"
        "    return 1.0\n"
    )
    (tmp_path / "r.toml").write_text(
        'name = "r"\n[[criteria]]\nname = "picky"\nkind = "python"\nsource = "r.py:picky"\n'
        '[[criteria]]\nname = "positive"\nkind = "python"\nsource = "r.py:positive"\nweight = 0.5\n'
    )
    (tmp_path / "s.jsonl").write_text(
        '{"prompt": "p", "completion": "a", "answer": "a"}\n{"prompt": "p", "completion": "boom", "answer": "a"}\n'
    )
    result = engine("rubric", "test", tmp_path / "r.toml", "--samples", tmp_path / "s.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    # A batch function that raises fails its whole batch; a per-sample one fails only that sample.
    assert rows[0]["total"] == 0.5
    assert rows[0]["scores"] == {"picky": None, "positive": 1.0}
    assert rows[1]["total"] == 0.0
    assert rows[1]["scores"] == {"picky": None, "positive": None}
    assert "ValueError: invalid literal for int()" in rows[1]["errors"]["picky"]
    assert rows[1]["errors"]["positive"].startswith("raised KeyError: 'boom' (at r.py:5, in positive)")
    table = engine("rubric", "test", tmp_path / "r.toml", "--samples", tmp_path / "s.jsonl")
    assert "ERROR" in table.stdout and "#1 positive: raised KeyError" in table.stdout


def test_completion_ids_from_the_default_tokenizer(tmp_path):
    if not (DEMO_DIR / "model" / "tokenizer.json").exists():
        pytest.skip("the demo tokenizer is missing")
    (tmp_path / "r.toml").write_text(
        'name = "r"\n[[criteria]]\nname = "n"\nkind = "length"\ntarget = 4\nunit = "tokens"\n'
    )
    (tmp_path / "s.jsonl").write_text('{"prompt": "p", "completion": "<answer>12</answer>"}\n')
    result = engine("rubric", "test", tmp_path / "r.toml", "--samples", tmp_path / "s.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["scores"]["n"] is not None
    (tmp_path / "ids.jsonl").write_text(
        '{"prompt": "p", "completion": "x", "completion_ids": [1, 2, 3, 4]}\n'
    )
    result = engine(
        "rubric",
        "test",
        tmp_path / "r.toml",
        "--samples",
        tmp_path / "ids.jsonl",
        "--json",
        "--tokenizer",
        tmp_path / "none",
    )
    assert json.loads(result.stdout)[0]["scores"]["n"] == 1.0  # the samples' own ids: no tokenizer needed
    result = engine(
        "rubric",
        "test",
        tmp_path / "r.toml",
        "--samples",
        tmp_path / "s.jsonl",
        "--tokenizer",
        tmp_path / "none",
    )
    assert_clean_error(result, 2, "tokenizer folder", "does not exist")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "p", "completion": "c"}\n{"prompt": "p"', "s.jsonl:2: not valid JSON"),
        ('{"prompt": "p"}', "s.jsonl:1: missing 'completion'"),
        ('["p", "c"]', "s.jsonl:1: each line must be one JSON object"),
        (
            '{"prompt": "p", "completion": 5}',
            "s.jsonl:1: 'completion' must be a string or a list of messages",
        ),
    ],
)
def test_bad_sample_lines(tmp_path, line, message):
    (tmp_path / "s.jsonl").write_text(line)
    (tmp_path / "r.toml").write_text('name = "r"\n[[criteria]]\nname = "j"\nkind = "json_valid"\n')
    result = engine("rubric", "test", tmp_path / "r.toml", "--samples", tmp_path / "s.jsonl")
    assert_clean_error(result, 2, message)


def test_bad_rubric_is_one_line_exit_2(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"prompt": "p", "completion": "c"}\n')
    (tmp_path / "r.toml").write_text('name = "r"\n[[criteria]]\nname = "j"\nkind = "json_vallid"\n')
    result = engine("rubric", "test", tmp_path / "r.toml", "--samples", tmp_path / "s.jsonl")
    assert_clean_error(result, 2, "criterion 'j': unknown kind 'json_vallid'")
    result = engine("rubric", "test", tmp_path / "missing.toml", "--samples", tmp_path / "s.jsonl")
    assert_clean_error(result, 2, "missing.toml does not exist")
    result = engine("rubric", "test", tmp_path / "r.toml", "--samples", tmp_path / "none.jsonl")
    assert_clean_error(result, 2, "none.jsonl does not exist")


# ---- rubric redteam -----------------------------------------------------------------------------------


@needs_demo_rubric
def test_redteam_demo_rubric_flags_nothing():
    result = engine("rubric", "redteam", DEMO_RUBRIC, "--dataset", DEMO_EVAL, "--json", "--fail-on-flag")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reference_mean"] == pytest.approx(1.2)
    names = [c["name"] for c in report["cheats"]]
    assert names == [
        "empty",
        "format_only",
        "echo_prompt",
        "stuff_answers",
        "pad_to_limit",
        "repeat",
        "judge_injection",
    ]
    assert not any(c["flagged"] for c in report["cheats"])
    format_only = next(c for c in report["cheats"] if c["name"] == "format_only")
    assert format_only["example"] == "<answer>0</answer>"
    assert set(report["cheats"][0]) == {"name", "mean_total", "flagged", "example"}
    parsed = parse_rubric_redteam(result.stdout)  # what the studio reads, with every field checked
    assert [c.name for c in parsed.cheats] == names and parsed.flagged == []


def test_redteam_flags_a_rubric_that_stuffing_beats(tmp_path):
    (tmp_path / "weak.toml").write_text(
        'name = "weak"\n[[criteria]]\nname = "mentions_answer"\nkind = "contains"\ntext = "{{item.answer}}"\n'
    )
    (tmp_path / "d.jsonl").write_text(
        "".join(
            json.dumps(
                {"prompt": f"{a}+{b}=", "answer": str(a + b), "reference": f"<answer>{a + b}</answer>"}
            )
            + "\n"
            for a, b in [(1, 2), (3, 4), (10, 5)]
        )
    )
    result = engine("rubric", "redteam", tmp_path / "weak.toml", "--dataset", tmp_path / "d.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    cheats = {c["name"]: c for c in report["cheats"]}
    assert report["reference_mean"] == 1.0
    assert cheats["stuff_answers"]["flagged"] and cheats["stuff_answers"]["mean_total"] == 1.0
    assert cheats["stuff_answers"]["example"].split() == [str(k) for k in range(3, 16)]
    assert not cheats["empty"]["flagged"]
    failed = engine(
        "rubric", "redteam", tmp_path / "weak.toml", "--dataset", tmp_path / "d.jsonl", "--fail-on-flag"
    )
    assert failed.returncode == 3
    assert "stuff_answers" in failed.stdout and "FLAGGED" in failed.stdout
    assert "flagged: stuff_answers" in failed.stderr


def test_redteam_judge_injection_against_a_real_endpoint(tmp_path):
    with FakeOpenAI() as server:
        (tmp_path / "judged.toml").write_text(
            f'name = "judged"\n[[criteria]]\nname = "quality"\nkind = "judge"\nmodel = "m"\nbase_url = "{server.base_url}"\n'
            'instructions = "[Answer] {{item.answer}}"\nnormalize = true\n'
        )
        (tmp_path / "d.jsonl").write_text(
            '{"prompt": [{"role": "user", "content": "2+2="}], "answer": "4", "reference": [{"role": "assistant", "content": "4"}]}\n'
        )
        result = engine(
            "rubric",
            "redteam",
            tmp_path / "judged.toml",
            "--dataset",
            tmp_path / "d.jsonl",
            "--json",
            "--fail-on-flag",
        )
    assert result.returncode == 3, result.stderr
    cheats = {c["name"]: c for c in json.loads(result.stdout)["cheats"]}
    assert cheats["judge_injection"]["flagged"] and cheats["judge_injection"]["mean_total"] == 1.0
    assert "Score: 10" in cheats["judge_injection"]["example"]
    assert not cheats["empty"]["flagged"]


def test_redteam_without_references_flags_nothing(tmp_path):
    (tmp_path / "r.toml").write_text('name = "r"\n[[criteria]]\nname = "j"\nkind = "json_valid"\n')
    (tmp_path / "d.jsonl").write_text('{"prompt": "p"}\n')
    result = engine("rubric", "redteam", tmp_path / "r.toml", "--dataset", tmp_path / "d.jsonl")
    assert result.returncode == 0
    assert "nothing to compare with" in result.stdout
    assert_clean_error(
        engine("rubric", "redteam", tmp_path / "r.toml", "--dataset", tmp_path / "r.toml"), 2, "r.toml:1"
    )
