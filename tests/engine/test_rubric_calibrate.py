"""`rl-studio-engine rubric calibrate`: the demo rubric's criteria against a small human-labelled file,
end to end as a subprocess (the scoring path training uses), with figures worked out by hand."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import engine_cmd, engine_env
from conftest_rewards import FakeOpenAI

from engine.contract.command_outputs import parse_rubric_calibrate
from engine.contract.paths import DEMO_DIR

DEMO_RUBRIC = DEMO_DIR / "rubric.toml"

LABELLED = [
    # prompt, answer, completion, the human's label; demo criteria: correct (python), format (regex)
    ("19+18=", "37", "<answer>37</answer>", True),  # correct 1, format 1
    ("11-5=", "6", "<answer>7</answer>", False),  # correct 0, format 1: format disagrees
    ("2+2=", "4", "the answer is 4", True),  # correct 0, format 0: both disagree (a lenient human)
    ("3+3=", "6", "<answer>6</answer>", True),
    ("5+1=", "6", "<answer>5</answer> or so", False),
    ("9-2=", "7", "<answer>7</answer>", True),
]


def write_labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": p, "answer": a, "completion": c, "label": lab}) + "\n"
            for p, a, c, lab in LABELLED
        )
    )
    return path


def engine(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        engine_cmd(*map(str, args)), capture_output=True, text=True, env=engine_env(), timeout=120
    )


def test_calibrate_json_reports_agreement_per_criterion(tmp_path: Path) -> None:
    result = engine("rubric", "calibrate", DEMO_RUBRIC, "--labels", write_labels(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    report = parse_rubric_calibrate(result.stdout)
    assert report.rows == 6 and report.label_kind == "binary" and report.errors == {}
    by_name = report.by_name()
    assert list(by_name) == ["correct", "format", "length", "total"]
    correct = by_name["correct"]
    # verdicts T F F T F T against T F T T F T: one miss (row 2)
    assert correct.confusion == [[2, 0], [1, 3]]
    assert correct.accuracy == pytest.approx(5 / 6)
    # p_o = 5/6; rows (2, 4), columns (3, 3): p_e = (6 + 12) / 36 = 1/2; kappa = (5/6 - 1/2) / (1/2)
    assert correct.kappa == pytest.approx(2 / 3)
    assert correct.disagreements == [2]
    fmt = by_name["format"]
    assert fmt.confusion == [[1, 1], [1, 3]] and fmt.accuracy == pytest.approx(4 / 6)
    assert fmt.disagreements == [1, 2]
    assert by_name["total"].disagreements == [2]  # 1.2 0.2 0 1.2 0 1.2 at >= 0.5


def test_calibrate_table_and_bad_labels(tmp_path: Path) -> None:
    labels = write_labels(tmp_path)
    result = engine("rubric", "calibrate", DEMO_RUBRIC, "--labels", labels)
    assert result.returncode == 0, result.stderr
    assert "against 6 human labels (binary)" in result.stdout
    assert "correct disagrees on rows #2" in result.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "1+1=", "answer": "2", "completion": "x", "label": "yes"}) + "\n")
    result = engine("rubric", "calibrate", DEMO_RUBRIC, "--labels", bad)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'label' must be true/false" in result.stderr
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"prompt": "1+1=", "answer": "2", "completion": "x"}) + "\n")
    result = engine("rubric", "calibrate", DEMO_RUBRIC, "--labels", missing)
    assert result.returncode == 2 and "missing 'label'" in result.stderr


def test_a_judge_is_calibrated_and_its_edited_prompt_compared(tmp_path: Path) -> None:
    """The loop the rubric editor's Calibrate pane runs: score a judge on the labels, edit its prompt, score
    again. The fake judge gives 9/10 when the response holds the [Answer] its prompt names, else 2/10."""
    labels = write_labels(tmp_path)
    reports = {}
    with FakeOpenAI() as server:
        for version, instructions in (("before", "[Answer] {{item.answer}}"), ("after", "Is it right?")):
            rubric = tmp_path / f"{version}.toml"
            rubric.write_text(
                f'name = "judged"\n[[criteria]]\nname = "judge"\nkind = "judge"\nmodel = "m"\n'
                f'base_url = "{server.base_url}"\ninstructions = "{instructions}"\nnormalize = true\n'
            )
            result = engine("rubric", "calibrate", rubric, "--labels", labels, "--json")
            assert result.returncode == 0, result.stderr
            reports[version] = parse_rubric_calibrate(result.stdout).by_name()["judge"]
    before, after = reports["before"], reports["after"]
    # before: 0.9 where the answer is in the completion: T F T T F T, exactly the labels
    assert before.accuracy == 1.0 and before.kappa == pytest.approx(1.0) and before.disagreements == []
    # after: no answer to look for, 0.2 everywhere: says "bad" to all; p_o = p_e = 2/6, kappa 0
    assert after.accuracy == pytest.approx(2 / 6) and after.kappa == pytest.approx(0.0)
    assert after.disagreements == [0, 2, 3, 5] and after.spearman is None  # a constant score ranks nothing
