"""Token-level evidence: the blob format both processes read (engine/contract/token_stats.py), and its
table in the workspace (written with the rollout, forgotten with it on a resume)."""

from __future__ import annotations

import math
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import engine_cmd, engine_env, requires_demo, write_config

from engine.contract import token_stats as ts
from engine.contract.paths import DEMO_DIR
from engine.store import GroupRecord, RolloutRecord, Workspace


def test_pack_and_unpack_round_trip_ids_texts_and_every_stat() -> None:
    ids = [15, 70000, 0, 4294967295]
    texts = ["The", " answer", "\n", "é🙂<|im_end|>"]
    stats = {
        ts.LOGPROB: [-0.125, -3.5, 0.0, -12.75],
        ts.ENTROPY: [0.5, 2.0, 0.0078125, 1.25],
        ts.KL: [1e9, float("nan"), -1e9, float("inf")],  # beyond float16: clamped; NaN and inf kept
    }
    back = ts.unpack(ts.pack(ids, texts, stats))
    assert back.ids == ids and back.texts == texts and len(back) == 4
    assert list(back.stats) == [ts.LOGPROB, ts.ENTROPY, ts.KL]
    assert back.stats[ts.LOGPROB] == stats[ts.LOGPROB]  # exact in float16
    assert back.stats[ts.ENTROPY] == stats[ts.ENTROPY]
    kl = back.stats[ts.KL]
    assert kl[0] == ts.FLOAT16_MAX and math.isnan(kl[1]) and kl[2] == -ts.FLOAT16_MAX and kl[3] == math.inf


def test_float16_keeps_three_significant_digits() -> None:
    values = [-0.000123, -0.3333, -7.77, -123.4]
    back = ts.unpack(ts.pack([1, 2, 3, 4], ["a", "b", "c", "d"], {ts.LOGPROB: values})).stats[ts.LOGPROB]
    for v, b in zip(values, back, strict=True):
        assert b == pytest.approx(v, rel=1e-3)


def test_an_empty_completion_packs_and_a_foreign_or_cut_blob_is_refused() -> None:
    empty = ts.unpack(ts.pack([], [], {ts.LOGPROB: []}))
    assert empty.ids == [] and empty.stats == {ts.LOGPROB: []}
    blob = ts.pack([1, 2], ["a", "b"], {ts.LOGPROB: [-1.0, -2.0]})
    with pytest.raises(ts.TokenStatsError, match="not token stats"):
        ts.unpack(b"JSON" + blob[4:])
    with pytest.raises(ts.TokenStatsError, match="damaged"):
        ts.unpack(blob[:-1])
    with pytest.raises(ts.TokenStatsError, match="past the end"):
        ts.unpack(blob + b"\0")
    with pytest.raises(ValueError, match="3 values of logprob for 2 tokens"):
        ts.pack([1, 2], ["a", "b"], {ts.LOGPROB: [-1.0, -2.0, -3.0]})


def _group(step: int, blobs: list[bytes | None]) -> GroupRecord:
    rollouts = [
        RolloutRecord(completion=f"c{i}", reward=1.0, advantage=0.0, completion_tokens=2, truncated=False)
        for i in range(len(blobs))
    ]
    for record, blob in zip(rollouts, blobs, strict=True):
        record.token_stats = blob
    return GroupRecord(prompt=f"p{step}", prompt_index=0, columns={}, rollouts=rollouts)


def test_the_workspace_keeps_a_blob_per_rollout_and_a_resume_forgets_them_with_the_rollouts(
    tmp_path: Path,
) -> None:
    ws = Workspace(tmp_path / "ws.sqlite")
    run = ws.create_run("r", "grpo", {}, max_steps=2)
    blob = ts.pack([7, 8], ["x", "y"], {ts.LOGPROB: [-0.5, -1.5]})
    ws.write_rollouts(run, 1, [_group(1, [blob, None])])  # a rollout may have none
    last = ws.write_rollouts(run, 2, [_group(2, [blob, blob])])
    rows = ws.conn.execute(
        "SELECT r.step, t.data FROM rollouts r JOIN token_stats t ON t.rollout_id = r.id ORDER BY r.id"
    ).fetchall()
    assert [step for step, _ in rows] == [1, 2, 2]
    assert ts.unpack(rows[-1][1]).stats[ts.LOGPROB] == [-0.5, -1.5]
    assert ws.conn.execute("SELECT data FROM token_stats WHERE rollout_id = ?", (last,)).fetchone()[0] == blob
    ws.truncate_after(run, 1)
    left = ws.conn.execute("SELECT rollout_id FROM token_stats").fetchall()
    assert left == ws.conn.execute("SELECT id FROM rollouts WHERE step = 1 LIMIT 1").fetchall()


@requires_demo
def test_a_real_grpo_run_records_each_rollouts_tokens_with_the_sampling_policys_log_probs(
    tmp_path: Path,
) -> None:
    """Two GRPO steps on the demo model with beta > 0. Before the first update the policy is the base
    model (LoRA's B starts at 0), so step 1's recorded log-probs and entropies must equal a plain
    transformers forward pass of the base model over prompt + completion."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=2, checkpoint_every=0, beta=0.04, temperature=0.9)
    done = subprocess.run(
        engine_cmd("run", str(cfg), "--db", str(db)),
        capture_output=True,
        text=True,
        env=engine_env() | {"OMP_NUM_THREADS": "1"},
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT r.step, r.completion, r.completion_tokens, r.advantage, g.prompt, t.data FROM rollouts r"
        " JOIN groups g ON g.id = r.group_id LEFT JOIN token_stats t ON t.rollout_id = r.id ORDER BY r.id"
    ).fetchall()
    assert len(rows) == 16 and all(data is not None for *_, data in rows)
    tokenizer = AutoTokenizer.from_pretrained(DEMO_DIR / "model")
    model = AutoModelForCausalLM.from_pretrained(DEMO_DIR / "model", dtype=torch.float32).eval()
    special = set(tokenizer.all_special_ids)
    kl_by_step: dict[int, list[float]] = {1: [], 2: []}
    for step, completion, n_tokens, advantage, prompt, data in rows:
        tokens = ts.unpack(data)
        assert len(tokens) == n_tokens and list(tokens.stats) == [ts.LOGPROB, ts.ENTROPY, ts.KL, ts.LOSS]
        shown = "".join(t for t, i in zip(tokens.texts, tokens.ids, strict=True) if i not in special)
        assert shown == completion  # the token texts make up the completion the inspector shows
        logprobs, entropy, kl = (tokens.stats[k] for k in (ts.LOGPROB, ts.ENTROPY, ts.KL))
        assert all(lp <= 0 for lp in logprobs) and all(h >= 0 for h in entropy) and all(k >= 0 for k in kl)
        assert 0 < math.exp(sum(logprobs)) <= 1  # the completion's probability under the policy
        kl_by_step[step].extend(kl)
        # the loss shares of a completion add up to its term of the loss: -advantage + beta x mean KL
        expected = -advantage + 0.04 * sum(kl) / n_tokens
        assert sum(tokens.stats[ts.LOSS]) == pytest.approx(expected, abs=2e-3 * n_tokens)
        if step != 1:
            continue
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([prompt_ids + tokens.ids])).logits[0, len(prompt_ids) - 1 : -1]
        dist = torch.log_softmax(logits.float() / 0.9, dim=-1)
        assert torch.allclose(dist.exp().sum(-1), torch.ones(n_tokens), atol=1e-4)  # exp-sum: a distribution
        want = dist.gather(-1, torch.tensor(tokens.ids).unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(torch.tensor(logprobs), want, atol=1e-2, rtol=1e-2), (logprobs, want.tolist())
        want_entropy = -(dist.exp() * dist).sum(-1)
        assert torch.allclose(torch.tensor(entropy), want_entropy, atol=1e-2, rtol=1e-2)
    assert max(kl_by_step[1]) < 1e-3  # the policy is the reference until the first update
    assert max(kl_by_step[2]) > 0  # after it, it has moved


@requires_demo
def test_a_real_ppo_step_records_its_per_token_advantages_values_and_kl(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    cfg = write_config(tmp_path, max_steps=1, checkpoint_every=0, beta=0.05)
    cfg.write_text(cfg.read_text().replace('algorithm = "grpo"', 'algorithm = "ppo"'))
    done = subprocess.run(
        engine_cmd("run", str(cfg), "--db", str(db)),
        capture_output=True,
        text=True,
        env=engine_env() | {"OMP_NUM_THREADS": "1"},
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = (
        sqlite3.connect(db)
        .execute(
            "SELECT r.completion_tokens, r.advantage, t.data FROM rollouts r"
            " LEFT JOIN token_stats t ON t.rollout_id = r.id ORDER BY r.id"
        )
        .fetchall()
    )
    assert len(rows) == 8
    for n_tokens, advantage, data in rows:
        tokens = ts.unpack(data)
        assert len(tokens) == n_tokens
        assert set(tokens.stats) == {ts.LOGPROB, ts.ENTROPY, ts.ADVANTAGE, ts.LOSS, ts.KL, ts.VALUE}
        assert all(lp <= 0 for lp in tokens.stats[ts.LOGPROB])
        assert tokens.stats[ts.ADVANTAGE][0] == pytest.approx(
            advantage, abs=1e-2
        )  # the row's: its first token's
        shares = tokens.stats[ts.LOSS]
        assert sum(shares) == pytest.approx(-sum(tokens.stats[ts.ADVANTAGE]) / n_tokens, abs=1e-2)
        assert (
            max(abs(k) for k in tokens.stats[ts.KL]) < 1e-3
        )  # the policy is the reference before its update
