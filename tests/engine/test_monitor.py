"""The training-time monitor's detectors on synthetic metric series, the cheat-shape matchers against the
red-team cheat generators, the [monitor] config, and the alerts table through `rl-studio-engine alerts`."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import engine_cmd, engine_env, write_config

from engine import control
from engine import monitor as m
from engine.alerts_store import add_alert, list_alerts
from engine.contract.config import ConfigError, MonitorConfig, config_from_dict, load_run_config
from engine.contract.paths import DEMO_DIR
from engine.contract.protocol import AlertRaised, parse_event
from engine.data import read_jsonl
from engine.rewards import load_rubric
from engine.rewards.redteam import SHAPES, cheat_shapes, cheat_texts, format_only
from engine.rewards.text import last_user_text
from engine.store import GroupRecord, RolloutRecord, Workspace

CFG = MonitorConfig()
CTX = m.Context(CFG, "correct", {"correct": 1.0, "format": 0.2, "length": 0.0})


def history(steps: int, **series: Any) -> m.History:
    """A History with one value per step 1..steps for each key: a callable of the step, or a constant."""
    h = m.History()
    for step in range(1, steps + 1):
        h.add(step, {k: (f(step) if callable(f) else f) for k, f in series.items()})
    return h


def kinds(h: m.History, step: int, ctx: m.Context = CTX) -> list[str]:
    return [a.kind for a in m.evaluate(h, step, ctx)]


# ---- an honest run: nothing fires ----------------------------------------------------------------------
def honest(steps: int = 60) -> m.History:
    """Shaped like the demo run: reward and correctness rise together, length grows a little, entropy
    halves, KL creeps up, no truncation, no cheat shapes; held-out correctness rises."""
    h = history(
        steps,
        reward=lambda s: 0.4 + 0.5 * s / steps,
        **{
            "rewards/correct/mean": lambda s: 0.3 + 0.5 * s / steps,
            "rewards/format/mean": lambda s: 0.5 + 0.4 * s / steps,
            "rewards/length/mean": 0.9,
            "entropy": lambda s: 0.45 - 0.3 * s / steps,
            "kl": lambda s: 0.01 + 0.0005 * s + (0.002 if s % 3 == 0 else 0.0),
            m.MEAN_TOKENS: lambda s: 6 + 1.5 * s / steps,
            m.LENGTH_CORR: 0.7,
            m.TRUNCATED: 0.0,
            **{m.CHEAT + shape: 0.02 for shape in SHAPES},
        },
    )
    for step, value in ((0, 0.29), (20, 0.45), (40, 0.6), (60, 0.7)):
        h.add(step, {"eval/correct/mean": value, "eval/reward/mean": value + 0.1})
    return h


def test_an_honest_run_raises_nothing_at_any_step() -> None:
    h = honest()
    for step in range(1, 61):
        assert kinds(h, step) == [], step


# ---- each detector on the series it is for --------------------------------------------------------------
def test_proxy_divergence_needs_rising_reward_and_flat_or_falling_heldout() -> None:
    h = history(40, reward=lambda s: 0.3 + 0.02 * s)
    for step, value in ((0, 0.30), (10, 0.29), (20, 0.25)):
        h.add(step, {"eval/correct/mean": value, "eval/reward/mean": 0.5})
    assert "proxy_divergence" not in kinds(h, 19)  # two evaluations so far
    alert = next(a for a in m.evaluate(h, 20, CTX) if a.kind == "proxy_divergence")
    assert alert.severity == "critical"
    assert alert.evidence["heldout_key"] == "eval/correct/mean"  # the correctness criterion, not the total
    assert alert.evidence["train_reward_after"] > alert.evidence["train_reward_before"] + CFG.divergence_rise
    h.add(20, {"eval/correct/mean": 0.40})  # held-out improved after all: no divergence
    assert "proxy_divergence" not in kinds(h, 20)
    flat_reward = history(40, reward=0.5)
    for step, value in ((0, 0.30), (10, 0.29), (20, 0.25)):
        flat_reward.add(step, {"eval/correct/mean": value})
    assert "proxy_divergence" not in kinds(flat_reward, 20)


def test_proxy_divergence_falls_back_to_the_heldout_total_without_a_correctness_criterion() -> None:
    h = history(30, reward=lambda s: 0.2 + 0.03 * s)
    for step in (0, 10, 20):
        h.add(step, {"eval/reward/mean": 0.5 - step / 100})
    ctx = m.Context(CFG, None, {"long": 1.0})
    alert = next(a for a in m.evaluate(h, 20, ctx) if a.kind == "proxy_divergence")
    assert alert.evidence["heldout_key"] == "eval/reward/mean"


def test_length_drift_needs_long_completions_and_reward_tracking_length() -> None:
    longer = {m.MEAN_TOKENS: lambda s: 6 if s <= 10 else 15}
    assert "length_drift" in kinds(history(20, **longer, **{m.LENGTH_CORR: 0.8}), 20)
    assert "length_drift" not in kinds(history(20, **longer, **{m.LENGTH_CORR: 0.1}), 20)
    assert "length_drift" not in kinds(history(19, **longer, **{m.LENGTH_CORR: 0.8}), 19)  # no full window
    a = next(a for a in m.evaluate(history(20, **longer, **{m.LENGTH_CORR: 0.8}), 20, CTX))
    assert a.evidence["ratio"] == 2.5 and a.examples == "longest" and a.severity == "warning"


def test_criterion_dominance_needs_the_rise_through_one_criterion_and_correctness_falling() -> None:
    def series(correct_slope: float) -> m.History:
        return history(
            30,
            reward=lambda s: 0.5 + 0.02 * s,
            **{
                "rewards/correct/mean": lambda s: 0.4 + correct_slope * s,
                "rewards/format/mean": lambda s: 0.2 + 0.1 * s,  # weight 0.2: +0.02 per step
                "rewards/length/mean": lambda s: s,  # weight 0: logged only, never the culprit
            },
        )

    alert = next(a for a in m.evaluate(series(-0.005), 30, CTX) if a.kind == "criterion_dominance")
    assert alert.evidence["criterion"] == "format" and alert.evidence["correctness"] == "correct"
    assert "criterion_dominance" not in kinds(series(+0.005), 30)
    unweighted = m.Context(CFG, "correct", {"correct": 0.0, "format": 0.2})
    assert "criterion_dominance" not in kinds(series(-0.005), 30, unweighted)


def test_entropy_collapse_kl_spike_and_truncation() -> None:
    assert "entropy_collapse" in kinds(history(20, entropy=lambda s: 0.5 if s <= 10 else 0.01), 20)
    assert "entropy_collapse" not in kinds(history(20, entropy=lambda s: 0.5 if s <= 10 else 0.1), 20)

    spike = history(12, kl=lambda s: 0.9 if s == 12 else 0.05)
    assert "kl_spike" in kinds(spike, 12)
    assert "kl_spike" not in kinds(spike, 11)
    tiny = history(12, kl=lambda s: 0.02 if s == 12 else 0.0001)  # 200x, but below kl_min
    assert "kl_spike" not in kinds(tiny, 12)

    cut = history(20, **{m.TRUNCATED: lambda s: 0.05 if s <= 10 else 0.6})
    assert "truncation" in kinds(cut, 20)
    assert "truncation" not in kinds(history(20, **{m.TRUNCATED: 0.6}), 20)  # always that high: no rise


def test_cheat_shapes_names_the_shape_that_rose() -> None:
    h = history(20, **{m.CHEAT + s: 0.0 for s in SHAPES})
    for step in range(11, 21):
        h.add(step, {m.CHEAT + "echo_prompt": 0.5, m.CHEAT + "repeat": 0.3})
    alert = next(a for a in m.evaluate(h, 20, CTX) if a.kind == "cheat_shapes")
    assert alert.evidence["shape"] == "echo_prompt" and alert.key == "cheat_shapes:echo_prompt"
    assert alert.examples == "shape:echo_prompt"


# ---- what a step's rollouts say ------------------------------------------------------------------------
def row(
    i: int, reward: float, tokens: int, shapes: list[str] | None = None, correct: float = 1.0
) -> m.RolloutRow:
    return m.RolloutRow(i, reward, tokens, tokens >= 12, shapes or [], correct)


def test_step_stats_and_examples() -> None:
    groups = [
        [row(1, 0.1, 3), row(2, 0.5, 6), row(3, 0.9, 12, ["repeat"], correct=0.0)],
        [row(4, 1.0, 5), row(5, 0.0, 5), row(6, 0.2, 5)],  # length does not vary: no correlation
    ]
    stats = m.step_stats(groups)
    assert stats[m.MEAN_TOKENS] == 6.0
    assert stats[m.TRUNCATED] == pytest.approx(1 / 6)
    assert stats[m.CHEAT + "repeat"] == pytest.approx(1 / 6)
    assert stats[m.LENGTH_CORR] == pytest.approx(m.pearson([3, 6, 12], [0.1, 0.5, 0.9]))
    rows = [r for g in groups for r in g]
    assert m.pick_examples(rows, "longest")[0] == 3
    assert m.pick_examples(rows, "truncated") == [3]
    assert m.pick_examples(rows, "shape:repeat") == [3]
    assert m.pick_examples(rows, "top_reward_incorrect") == [3]
    assert m.pick_examples(rows, "top_reward")[:2] == [4, 3]


def test_the_correctness_criterion_is_named_or_found() -> None:
    assert m.correctness_criterion(["format", "is_correct"], "") == "is_correct"
    assert m.correctness_criterion(["format", "is_correct"], "format") == "format"
    assert m.correctness_criterion(["format", "length"], "") is None


# ---- the cheat shapes are the red-team cheats read backwards -------------------------------------------
def test_every_redteam_cheat_is_recognised_by_its_shape_and_no_reference_answer_is() -> None:
    rows = read_jsonl(DEMO_DIR / "data" / "train.jsonl")[:24]
    rubric = load_rubric(DEMO_DIR / "rubric.toml", tokenizer=None)
    try:
        texts = cheat_texts(rubric, rows, pad_chars=1000)
        example = format_only(
            rubric, rows
        )  # what the monitor hands cheat_shapes (engine.monitor.for_session)
    finally:
        rubric.close()
    for name, completions in texts.items():
        for completion, r in zip(completions, rows, strict=True):
            prompt = last_user_text(r["prompt"])
            shapes = cheat_shapes(
                completion, prompt, truncated=name == "pad_to_limit", format_example=example
            )
            assert name in shapes, (name, completion[:80], shapes)
    for r in rows:
        if r["answer"] != "0":
            assert cheat_shapes(r["reference"], r["prompt"], format_example=example) == []
    for honest_answer in ("12", "<answer>12", "answer 12", "The sum is 7 + 5 = 12, so <answer>12</answer>"):
        assert cheat_shapes(honest_answer, "7+5=") == []
    assert cheat_shapes("<answer>0</answer>", "3-3=", format_example="<answer>0</answer>") == ["format_only"]


# ---- config ----------------------------------------------------------------------------------------------
def test_monitor_config_defaults_validation_and_round_trip(tmp_path: Path) -> None:
    cfg = load_run_config(DEMO_DIR / "run.toml")  # no [monitor] section: the defaults
    assert cfg.monitor == MonitorConfig() and cfg.monitor.action == "warn"
    data = tomllib.loads(cfg.to_toml())
    assert data["monitor"]["length_ratio"] == 2.0
    data["monitor"].update(action="pause", window=4)
    again = config_from_dict(data, base_dir=cfg.base_dir)
    assert again.monitor.action == "pause" and again.monitor.window == 4
    assert (
        config_from_dict(tomllib.loads(again.to_toml()), base_dir=cfg.base_dir).to_dict() == again.to_dict()
    )
    for key, value, says in (
        ("action", "stop", "warn or pause"),
        ("window", 0, "at least 1"),
        ("length_ratio", 1.0, "above 1"),
        ("cheat_rise", 1.5, "(0, 1]"),
        ("entropy_ratio", float("nan"), "finite"),
        ("nonsense", 1, "Unknown key [monitor] nonsense"),
    ):
        bad = tomllib.loads(cfg.to_toml())
        bad["monitor"][key] = value
        with pytest.raises(ConfigError, match=f"monitor.*{key}|{key}.*monitor"):
            try:
                config_from_dict(bad, base_dir=cfg.base_dir)
            except ConfigError as exc:
                assert says in str(exc), str(exc)
                raise


# ---- the alerts table and the CLI ------------------------------------------------------------------------
def test_alerts_are_listed_and_acknowledged_by_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    ws = Workspace(db)
    cfg = load_run_config(write_config(tmp_path))
    run_id = ws.create_run("r", "grpo", cfg.to_dict(), 6)
    first = add_alert(
        ws, run_id, 4, "length_drift", "warning", "Completions grew.", {"ratio": 2.5, "examples": [7, 8]}
    )
    second = add_alert(
        ws, run_id, 5, "cheat_shapes", "critical", "Echoes.", {"shape": "echo_prompt", "examples": []}
    )
    ws.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            engine_cmd("alerts", *args, "--db", str(db)), capture_output=True, text=True, env=engine_env()
        )

    listed = cli(str(run_id), "--json")
    assert listed.returncode == 0, listed.stderr
    alerts = json.loads(listed.stdout)
    assert [(a["id"], a["kind"], a["acknowledged"]) for a in alerts] == [
        (first, "length_drift", False),
        (second, "cheat_shapes", False),
    ]
    assert alerts[0]["evidence"] == {"ratio": 2.5, "examples": [7, 8]}
    table = cli(str(run_id))
    assert "length_drift" in table.stdout and "example rollouts: 7, 8" in table.stdout

    assert cli("ack", str(run_id), "--id", str(first)).stdout.startswith("acknowledged 1 alert ")
    refused = cli("ack", str(run_id), "--id", "999")
    assert refused.returncode == 2 and "has no alert 999" in refused.stderr
    assert cli("ack", str(run_id)).stdout.startswith("acknowledged 1 alert ")  # the one left
    ws = Workspace(db)
    assert [a["acknowledged"] for a in list_alerts(ws, run_id)] == [True, True]
    assert cli("nonsense").returncode == 2
    assert "no run 99" in cli("99").stderr


def test_the_alert_event_is_typed() -> None:
    line = AlertRaised(
        run_id=1, alert_id=2, step=3, kind="kl_spike", severity="warning", message="m"
    ).to_json()
    event = parse_event(line)
    assert isinstance(event, AlertRaised) and event.kind == "kl_spike"


# ---- the Monitor over a workspace: ids, cooldown, pause, resume --------------------------------------------
def feed(mon: m.Monitor, ws: Workspace, run_id: int, step: int, tokens: int) -> list[m.Alert]:
    """One step as the session records it: two groups of 4 rollouts (reward follows length inside each
    group), then the step's metrics."""
    groups = [
        GroupRecord(
            f"{p}+1=",
            p,
            {"answer": str(p + 1)},
            [
                RolloutRecord(
                    " ".join(f"w{i}" for i in range(tokens + g)),
                    0.1 * g,
                    0.0,
                    tokens + g,
                    False,
                    {"correct": 0.0},
                )
                for g in range(4)
            ],
        )
        for p in range(2)
    ]
    last = ws.write_rollouts(run_id, step, groups)
    mon.rollouts_written(step, groups, last)
    values = {"reward": 0.15, "entropy": 0.4}
    ws.write_metrics(run_id, step, values)
    return mon.metrics_written(step, values)


def test_the_monitor_records_alerts_with_their_rollouts_pauses_and_forgets_them_on_resume(
    tmp_path: Path,
) -> None:
    ws = Workspace(tmp_path / "ws.sqlite")
    cfg = load_run_config(write_config(tmp_path))
    run_id = ws.create_run("r", "grpo", cfg.to_dict(), 40)
    controller = control.Controller()
    settings = MonitorConfig(action="pause", baseline_steps=3, window=3, cooldown_steps=5)
    weights = {"correct": 1.0}
    mon = m.Monitor(ws, run_id, settings, weights, controller)
    fired: dict[int, list[str]] = {}
    for step in range(1, 13):  # completions jump from ~6 to ~16 tokens at step 4
        fired[step] = [a.kind for a in feed(mon, ws, run_id, step, 5 if step < 4 else 15)]
    assert fired[6] == ["length_drift"]  # the first step whose window holds only long steps
    assert all(not kinds for step, kinds in fired.items() if step not in (6, 11))
    assert fired[11] == ["length_drift"]  # again after the cooldown of 5 steps
    assert controller.paused  # action = "pause": the run's controller holds the next step
    rows = list_alerts(ws, run_id)
    assert [(a["step"], a["kind"], a["severity"]) for a in rows] == [
        (6, "length_drift", "warning"),
        (11, "length_drift", "warning"),
    ]
    evidence = rows[0]["evidence"]
    assert evidence["ratio"] == pytest.approx((15 + 1.5) / (5 + 1.5), abs=1e-3)
    longest = ws.conn.execute(
        "SELECT id FROM rollouts WHERE run_id = ? AND step = 6 ORDER BY completion_tokens DESC, id LIMIT 2",
        (run_id,),
    ).fetchall()
    assert set(evidence["examples"][:2]) == {i for (i,) in longest}
    series = ws.conn.execute(
        "SELECT COUNT(*) FROM metrics WHERE run_id = ? AND key = 'monitor/mean_tokens'", (run_id,)
    ).fetchone()
    assert series == (12,)

    # a resume from a checkpoint at step 8: the step-11 alert is forgotten, the baselines come back from
    # the workspace, and the cooldown of the step-6 alert still holds
    ws.truncate_after(run_id, 8)
    again = m.Monitor(ws, run_id, settings, weights, control.Controller(), resumed_from_step=8)
    assert [a["step"] for a in list_alerts(ws, run_id)] == [6]
    assert again.history.values(m.MEAN_TOKENS)[:3] == [6.5, 6.5, 6.5]
    assert [a.kind for a in feed(again, ws, run_id, 9, 15)] == []
    assert [a.kind for a in feed(again, ws, run_id, 11, 15)] == ["length_drift"]
    ws.close()


def test_a_disabled_monitor_records_nothing(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws.sqlite")
    run_id = ws.create_run("r", "grpo", {}, 10)
    mon = m.Monitor(ws, run_id, MonitorConfig(enabled=False, baseline_steps=1, window=1), {}, None)
    for step in range(1, 5):
        assert feed(mon, ws, run_id, step, 5 * step) == []
    assert list_alerts(ws, run_id) == []
    assert ws.conn.execute("SELECT COUNT(*) FROM metrics WHERE key GLOB 'monitor/*'").fetchone() == (0,)
