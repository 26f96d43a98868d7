"""Difficulty-aware sampling (engine/sampling.py): the per-prompt estimates and weights on synthetic
groups, the draw, the sampler's layout, rebuilding the estimates from recorded rollouts, and a short real
GRPO run on the demo with sampling = "difficulty" that trains, records, evaluates pass@k and resumes."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from conftest import requires_demo, write_config
from engine_proc import EngineProcess

from engine.contract.passk import PassRule, pass_at_k
from engine.contract.protocol import CheckpointSaved, Finished, RunStarted
from engine.sampling import (
    EMA_ALPHA,
    MIN_WEIGHT,
    PRIOR_FAILURE,
    ZERO_VARIANCE_WEIGHT,
    DifficultyStats,
    make_sampler,
    weighted_sample,
)
from engine.store import GroupRecord, RolloutRecord, Workspace

RULE = PassRule("correct", 1.0)


def group(*correct: float) -> tuple[list[float], list[dict[str, float]]]:
    """Totals (correct + 0.2 format, format always 1) and scores of one group."""
    return [c + 0.2 for c in correct], [{"correct": c, "format": 1.0} for c in correct]


def test_estimates_and_weights_on_synthetic_groups() -> None:
    stats = DifficultyStats(4, RULE, difficulty=True, skip_zero_variance=True)
    stats.observe_group(0, *group(1, 1, 1, 1))  # solved, and no signal
    stats.observe_group(1, *group(0, 0, 0, 1))  # fails 3 of 4
    stats.observe_group(2, *group(0, 0, 0, 0))  # never solved, no signal
    assert [stats.failure(i) for i in range(4)] == [0.0, 0.75, 1.0, PRIOR_FAILURE]  # prompt 3 unseen
    assert stats.weights() == pytest.approx(
        [
            MIN_WEIGHT * ZERO_VARIANCE_WEIGHT,
            MIN_WEIGHT + 0.75,
            (MIN_WEIGHT + 1.0) * ZERO_VARIANCE_WEIGHT,
            MIN_WEIGHT + 0.5,
        ]
    )
    stats.observe_group(1, *group(1, 1, 0, 1))  # the running estimate moves toward 0.25
    assert stats.failure(1) == pytest.approx((1 - EMA_ALPHA) * 0.75 + EMA_ALPHA * 0.25)
    stats.observe_group(0, *group(1, 0, 1, 1))  # signal again: no longer skipped
    assert stats.weight(0) == pytest.approx(MIN_WEIGHT + EMA_ALPHA * 0.25)

    uniform = DifficultyStats(3, RULE, difficulty=False, skip_zero_variance=True)
    uniform.observe_group(0, *group(1, 1))
    uniform.observe_group(1, *group(0, 1))
    assert uniform.weights() == [ZERO_VARIANCE_WEIGHT, 1.0, 1.0]


def test_a_failed_criterion_fails_and_breaks_no_variance_rule() -> None:
    stats = DifficultyStats(1, RULE, skip_zero_variance=True)
    stats.observe_group(0, [0.2, float("nan")], [{"correct": None}, {"correct": float("nan")}])
    assert stats.failure(0) == 1.0 and not stats.estimates[0].zero_variance


def test_weighted_draw_follows_the_weights() -> None:
    rng = random.Random(3)
    counts = Counter(weighted_sample([3.0, 1.0, 0.0], 1, rng)[0] for _ in range(8000))
    assert counts[2] == 0
    assert counts[0] / 8000 == pytest.approx(0.75, abs=0.02)
    drawn = weighted_sample([1.0] * 10, 4, rng)
    assert len(set(drawn)) == 4  # without replacement


def test_the_sampler_keeps_trls_repeat_layout() -> None:
    stats = DifficultyStats(6, RULE)
    sampler = make_sampler(stats, mini_repeat_count=2, batch_size=3, repeat_count=2, seed=0)
    out = list(sampler)
    assert len(out) == len(sampler) == 6 // 3 * 3 * 2 * 2
    for start in range(0, len(out), 12):  # a chunk of 3 prompts x 2 completions, repeated twice
        block = out[start : start + 12]
        assert block[:6] == block[6:]
        assert block[0:2] == [block[0]] * 2 and len(set(block[:6])) == 3
    assert list(make_sampler(stats, 2, 3, 2, seed=0)) == out  # seeded


def test_estimates_are_rebuilt_from_recorded_rollouts(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws.sqlite")
    run_id = ws.create_run("r", "grpo", {}, max_steps=4)
    batches = {1: [(0, (1, 1, 0, 0)), (1, (0, 0, 0, 0))], 2: [(0, (1, 1, 1, 0)), (2, (1, 1, 1, 1))]}
    live = DifficultyStats(3, RULE, skip_zero_variance=True)
    for step, groups in batches.items():
        records = []
        for index, correct in groups:
            totals, scores = group(*correct)
            live.observe_group(index, totals, scores)
            records.append(
                GroupRecord(
                    prompt=f"p{index}",
                    prompt_index=index,
                    columns={},
                    rollouts=[
                        RolloutRecord(
                            completion="x",
                            reward=t,
                            advantage=0.0,
                            completion_tokens=3,
                            truncated=False,
                            scores=s,
                        )
                        for t, s in zip(totals, scores, strict=True)
                    ],
                )
            )
        ws.write_rollouts(run_id, step, records)
    rebuilt = DifficultyStats(3, RULE, skip_zero_variance=True)
    assert rebuilt.load_recorded(ws.conn, run_id) == 4
    assert rebuilt.weights() == pytest.approx(live.weights())
    assert rebuilt.failure(0) == pytest.approx((1 - EMA_ALPHA) * 0.5 + EMA_ALPHA * 0.25)


# ---- a real run ---------------------------------------------------------------------------------------
def query(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


@requires_demo
def test_a_difficulty_sampled_run_trains_records_evaluates_pass_at_k_and_resumes(tmp_path: Path) -> None:
    from engine.contract.paths import DEMO_DIR

    rows = [json.loads(line) for line in (DEMO_DIR / "data" / "eval.jsonl").read_text().splitlines()[:6]]
    evals = tmp_path / "eval.jsonl"
    evals.write_text(
        "".join(json.dumps(r | {"tier": "easy" if i < 3 else "hard"}) + "\n" for i, r in enumerate(rows))
    )
    cfg = write_config(tmp_path, max_steps=4, checkpoint_every=2)
    text = cfg.read_text().replace(
        f'eval = "{DEMO_DIR / "data" / "eval.jsonl"}"',
        f'eval = "{evals}"\nsampling = "difficulty"\nskip_zero_variance = true',
    )
    cfg.write_text(text + "[eval]\neval_samples = 4\npass_k = [1, 4]\neval_greedy = true\n")
    db = tmp_path / "ws.sqlite"

    engine = EngineProcess("run", str(cfg), "--db", str(db))
    run_id = engine.wait_for(lambda e: isinstance(e, RunStarted)).run_id
    engine.wait_for(lambda e: isinstance(e, CheckpointSaved) and e.step == 2)
    engine.send("stop")
    assert engine.wait_for(lambda e: isinstance(e, Finished)).status == "stopped"
    assert engine.finish() == 0, engine.stderr

    resumed = EngineProcess("resume", str(run_id), "--db", str(db))
    assert (
        resumed.wait_for(lambda e: isinstance(e, RunStarted)).resumed_from_step >= 2
    )  # the stop checkpoints
    assert resumed.wait_for(lambda e: isinstance(e, Finished)).status == "finished"
    assert resumed.finish() == 0, resumed.stderr
    assert "difficulty sampling: estimates of" in resumed.stderr  # rebuilt from the recorded groups

    # trains and records: every step's 2 groups x 4 completions, each group a training prompt
    assert query(db, "SELECT step, COUNT(*) FROM rollouts WHERE run_id = ? GROUP BY step", run_id) == [
        (s, 8) for s in range(1, 5)
    ]
    assert query(db, "SELECT COUNT(*) FROM groups WHERE run_id = ? AND prompt_index IS NULL", run_id) == [
        (0,)
    ]

    # pass@k at step 0 and at the end, from the 4 recorded samples of each held-out prompt
    for step in (0, 4):
        metrics = dict(
            query(db, "SELECT key, value FROM metrics WHERE run_id = ? AND step = ?", run_id, step)
        )
        samples = query(
            db, "SELECT prompt_index, scores FROM evaluations WHERE run_id = ? AND step = ?", run_id, step
        )
        assert len(samples) == 6 * 4
        passes: dict[int, list[bool]] = {}
        for index, scores in samples:
            passes.setdefault(index, []).append((json.loads(scores).get("correct") or 0.0) >= 0.5)
        for k in (1, 4):
            expected = sum(pass_at_k(4, sum(p), k) for p in passes.values()) / 6
            assert metrics[f"eval/pass@{k}"] == pytest.approx(expected)
            hard = [pass_at_k(4, sum(passes[i]), k) for i in (3, 4, 5)]
            assert metrics[f"eval/pass@{k}/tier=hard"] == pytest.approx(sum(hard) / 3)
        assert 0.0 <= metrics["eval/greedy_pass@1"] <= 1.0 and "eval/greedy_pass@1/tier=easy" in metrics
        assert math.isfinite(metrics["eval/mean@4"]) and "eval/reward/mean" in metrics
