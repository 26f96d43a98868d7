"""The rubric editor's Test and Red-team jobs start their engine the way every studio engine starts
(RL_STUDIO_ENGINE, the bundle's `rl-studio-engine`), and read its output through the typed records of
engine.contract.command_outputs. The engine is the recorded fake (tests/studio/fake_engine.py)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest
from helpers import fake_engine_command

from engine.contract.command_outputs import CheatScore, RedteamOutput, SampleScores
from studio.state.rubric_doc import RubricDocument
from studio.state.rubric_runner import RubricJob

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="shell scripts stand in for engines")

SAMPLES = [
    {"prompt": "1+1=", "completion": "<answer>2</answer>"},
    {"prompt": "2+2=", "completion": "four"},
]


def fake_engine_env() -> str:
    return shlex.join(fake_engine_command("run_ok.jsonl"))


def test_test_and_redteam_run_the_engine_named_by_rl_studio_engine(qtbot, monkeypatch) -> None:
    monkeypatch.setenv("RL_STUDIO_ENGINE", fake_engine_env())
    job = RubricJob()
    with qtbot.waitSignal(job.sig_finished, timeout=30_000) as done:
        job.start_test(RubricDocument(), SAMPLES)
    assert job.argv[:2] == fake_engine_command("run_ok.jsonl")[:2]
    assert job.argv[-6:-4] == ["rubric", "test"] and job.argv[-1] == "--json"
    kind, results = done.args
    assert kind == "test"
    assert results == [
        SampleScores(0, 1.0, {"fake_has_answer": 1.0}, {}),
        SampleScores(1, 0.0, {"fake_has_answer": 0.0}, {}),
    ]
    with qtbot.waitSignal(job.sig_finished, timeout=30_000) as done:
        job.start_redteam(RubricDocument(), SAMPLES)
    kind, report = done.args
    assert kind == "redteam" and isinstance(report, RedteamOutput)
    assert report.reference_mean == 1.0
    assert report.flagged == [CheatScore("format_only", 1.0, True, "<answer></answer>")]


def test_the_bundle_runs_the_rl_studio_engine_on_path(qtbot, monkeypatch, tmp_path: Path) -> None:
    script = tmp_path / "rl-studio-engine"
    script.write_text(f'#!/bin/sh\nexec {fake_engine_env()} "$@"\n')
    script.chmod(0o755)
    monkeypatch.delenv("RL_STUDIO_ENGINE", raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    job = RubricJob()
    with qtbot.waitSignal(job.sig_finished, timeout=30_000) as done:
        job.start_test(RubricDocument(), SAMPLES[:1])
    assert job.argv[0] == str(script)
    assert done.args[1] == [SampleScores(0, 1.0, {"fake_has_answer": 1.0}, {})]


@pytest.mark.parametrize(
    ("printed", "message"),
    [
        ("", "printed nothing"),
        ("not json", "printed no JSON"),
        ('{"index": 0}', "not a list of results"),
        ('[{"index": "first", "total": 1, "scores": {}, "errors": {}}]', "'index' must be int, not 'first'"),
        ('[{"index": 0, "total": 1, "scores": {}}]', "lacks the field(s) errors"),
    ],
)
def test_output_that_breaks_the_contract_is_reported_not_shown(
    qtbot, monkeypatch, tmp_path: Path, printed: str, message: str
) -> None:
    engine = tmp_path / "engine.py"
    engine.write_text(f"print({printed!r})\n")
    monkeypatch.setenv("RL_STUDIO_ENGINE", shlex.join([sys.executable, str(engine)]))
    job = RubricJob()
    with qtbot.waitSignal(job.sig_failed, timeout=30_000) as failed:
        job.start_test(RubricDocument(), SAMPLES)
    assert failed.args[0] == "test" and message in failed.args[1]


def test_an_engine_that_cannot_start_says_how_to_point_at_one(qtbot, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RL_STUDIO_ENGINE", str(tmp_path / "no-such-engine"))
    job = RubricJob()
    with qtbot.waitSignal(job.sig_failed, timeout=30_000) as failed:
        job.start_redteam(RubricDocument(), SAMPLES)
    assert "could not be started" in failed.args[1] and "RL_STUDIO_ENGINE" in failed.args[1]
