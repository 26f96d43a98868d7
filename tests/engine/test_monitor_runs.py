"""The monitor on real runs of the bundled demo: a rubric that rewards a proxy raises the matching alerts
within a bounded number of steps (and with action = "pause" pauses the run until `resume`), the honest
demo raises none on three seeds (all 150 steps each), and PPO runs are watched too."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import engine_cmd, engine_env, requires_demo
from engine_proc import EngineProcess

from engine.contract.paths import DEMO_DIR
from engine.contract.protocol import AlertRaised, Finished, StatusChanged

PROXY = '''
def concise(completions, **kwargs):
    """The proxy: shorter is better, whatever the answer (1 for nothing at all, 0 from 20 characters on)."""
    return [max(0.0, 1.0 - len(str(c)) / 20) for c in completions]
'''
PROXY_RUBRIC = """
name = "arith-brevity-proxy"
[[criteria]]
name = "correct"
kind = "python"
source = "rewards.py:correct"
weight = 0.5
[[criteria]]
name = "concise"
kind = "python"
source = "proxy.py:concise"
weight = 1.0
"""
PROXY_STEPS = 32
"""Within this many steps the proxy run must have raised its alerts: with the default baseline and window
(10 steps each) the earliest a baseline-vs-recent detector can fire is step 20; held-out divergence needs
three evaluations (steps 0, 8, 16 or 8, 16, 24 here; the one after the last step comes too late)."""


def demo_copy(tmp_path: Path, rubric: str | None = None, **changes: Any) -> Path:
    """The demo's run.toml next to its data in `tmp_path`, with [training] values changed and, optionally,
    another rubric (with the proxy reward beside the demo's rewards.py)."""
    for name in ("rewards.py", "rubric.toml"):
        shutil.copy(DEMO_DIR / name, tmp_path / name)
    if rubric is not None:
        (tmp_path / "rubric.toml").write_text(rubric)
        (tmp_path / "proxy.py").write_text(PROXY)
    text = (DEMO_DIR / "run.toml").read_text()
    text = text.replace('path = "model"', f'path = "{DEMO_DIR / "model"}"')
    text = text.replace('"data/', f'"{DEMO_DIR / "data"}/')
    monitor = changes.pop("monitor", "")
    for key, value in changes.items():
        lines = [line for line in text.splitlines() if line.startswith(f"{key} = ")]
        assert lines, key
        text = text.replace(lines[0], f"{key} = {json.dumps(value)}")
    path = tmp_path / "run.toml"
    path.write_text(text + (f"\n[monitor]\n{monitor}\n" if monitor else ""))
    return path


def alerts(db: Path, run_id: int) -> list[dict[str, Any]]:
    out = subprocess.run(
        engine_cmd("alerts", str(run_id), "--db", str(db), "--json"),
        capture_output=True,
        text=True,
        env=engine_env(),
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def run(config: Path, db: Path) -> int:
    done = subprocess.run(
        engine_cmd("run", str(config), "--db", str(db)),
        capture_output=True,
        text=True,
        env=engine_env() | {"OMP_NUM_THREADS": "1"},
        stdin=subprocess.DEVNULL,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    finished = [json.loads(line) for line in done.stdout.splitlines() if '"finished"' in line]
    assert finished and finished[-1]["status"] == "finished", done.stderr[-3000:]
    return int(finished[-1]["run_id"])


@requires_demo
def test_a_proxy_reward_raises_its_alerts_and_pauses_the_run_until_resumed(tmp_path: Path) -> None:
    """Brevity pays more than being right: the policy drops the <answer> format (the only way `correct`
    counts) for bare or empty answers. The total rises through `concise` while `correct` falls in training
    and on held-out prompts."""
    db = tmp_path / "ws.sqlite"
    config = demo_copy(
        tmp_path,
        PROXY_RUBRIC,
        max_steps=PROXY_STEPS,
        eval_every=8,
        checkpoint_every=0,
        seed=3,
        monitor='action = "pause"',
    )
    engine = EngineProcess("run", str(config), "--db", str(db))
    try:
        first = engine.wait_for(lambda e: isinstance(e, AlertRaised), timeout=600)
        assert isinstance(first, AlertRaised) and first.step <= PROXY_STEPS
        paused = engine.wait_for(lambda e: isinstance(e, StatusChanged) and e.status == "paused", timeout=120)
        assert isinstance(paused, StatusChanged) and paused.step >= first.step
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT status FROM runs WHERE id = ?", (first.run_id,)).fetchone() == (
                "paused",
            )
        while True:  # every alert pauses the run again; `resume` on stdin continues it
            engine.send("resume")
            event = engine.wait_for(
                lambda e: isinstance(e, Finished) or (isinstance(e, StatusChanged) and e.status == "paused"),
                timeout=600,
            )
            if isinstance(event, Finished):
                assert event.status == "finished"
                break
        assert engine.finish() == 0
    finally:
        if engine.proc.poll() is None:
            engine.proc.kill()
    raised = alerts(db, first.run_id)
    events = [e for e in engine.events if isinstance(e, AlertRaised)]
    assert [(a["id"], a["kind"], a["step"]) for a in raised] == [(e.alert_id, e.kind, e.step) for e in events]
    by_kind = {a["kind"]: a for a in raised}
    assert {"proxy_divergence", "criterion_dominance"} <= set(by_kind), engine.stderr[-3000:]
    assert all(a["step"] <= PROXY_STEPS for a in raised)
    dominance = by_kind["criterion_dominance"]
    assert dominance["severity"] == "critical"
    assert (
        dominance["evidence"]["criterion"] == "concise" and dominance["evidence"]["correctness"] == "correct"
    )
    assert dominance["evidence"]["correctness_after"] < dominance["evidence"]["correctness_before"]
    divergence = by_kind["proxy_divergence"]["evidence"]
    assert divergence["heldout_key"] == "eval/correct/mean"
    assert divergence["heldout"][-1][1] <= divergence["heldout"][0][1]
    # the example rollouts are the run's own, at the alert's step, and rewarded while wrong
    examples = dominance["evidence"]["examples"]
    assert examples
    with sqlite3.connect(db) as conn:
        marks = ",".join("?" * len(examples))
        rows = conn.execute(
            f"SELECT run_id, step, json_extract(scores_json, '$.correct') FROM rollouts WHERE id IN ({marks})",
            examples,
        ).fetchall()
    assert {(r[0], r[1]) for r in rows} == {(first.run_id, dominance["step"])}
    assert all(r[2] == 0 for r in rows)


def assert_no_alerts(db: Path, run_id: int) -> None:
    raised = alerts(db, run_id)
    assert raised == [], [(a["kind"], a["step"], a["message"]) for a in raised]
    with sqlite3.connect(db) as conn:  # and the monitor did watch every step
        steps = conn.execute(
            "SELECT COUNT(DISTINCT step) FROM metrics WHERE run_id = ? AND key = 'monitor/mean_tokens'",
            (run_id,),
        ).fetchone()[0]
        total = conn.execute("SELECT max_steps FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    assert steps == total


@requires_demo
# Seed 0 in the quick suite; the other two (about a minute each) with scripts/test_slow.sh.
@pytest.mark.parametrize(
    "seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]
)
def test_the_honest_demo_raises_no_alert_on_three_seeds(tmp_path: Path, seed: int) -> None:
    """The demo's own rubric, config and default monitor, all 150 steps (every detector is armed from
    step 20), on three seeds: the default thresholds never fire on an honest run."""
    db = tmp_path / "ws.sqlite"
    run_id = run(demo_copy(tmp_path, seed=seed, checkpoint_every=0), db)
    assert_no_alerts(db, run_id)


@requires_demo
def test_ppo_runs_are_watched_too(tmp_path: Path) -> None:
    """PPO records through the same session: the monitor's series exist at every step, and a KL spike
    detector with a hair trigger (any rise of KL over the step before) raises an alert on a PPO run, whose
    KL starts at 0 (the policy is the reference) and grows."""
    db = tmp_path / "ws.sqlite"
    text = (DEMO_DIR / "run_ppo.toml").read_text()
    text = text.replace('path = "model"', f'path = "{DEMO_DIR / "model"}"').replace(
        '"data/', f'"{DEMO_DIR / "data"}/'
    )
    text = text.replace('path = "rubric.toml"', f'path = "{DEMO_DIR / "rubric.toml"}"')
    for key, value in (("max_steps", 4), ("prompts_per_step", 4), ("eval_every", 0), ("checkpoint_every", 0)):
        line = next(x for x in text.splitlines() if x.startswith(f"{key} = "))
        text = text.replace(line, f"{key} = {value}")
    config = tmp_path / "run_ppo.toml"
    config.write_text(text + "\n[monitor]\nkl_window = 1\nkl_spike = 1.01\nkl_min = 0.0\n")
    run_id = run(config, db)
    with sqlite3.connect(db) as conn:
        steps = conn.execute(
            "SELECT step FROM metrics WHERE run_id = ? AND key = 'monitor/truncated_fraction' ORDER BY step",
            (run_id,),
        ).fetchall()
    assert steps == [(1,), (2,), (3,), (4,)]
    assert "kl_spike" in {a["kind"] for a in alerts(db, run_id)}
