"""Token-level evidence: the blob format both processes read (engine/contract/token_stats.py), and its
table in the workspace (written with the rollout, forgotten with it on a resume)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.contract import token_stats as ts
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
