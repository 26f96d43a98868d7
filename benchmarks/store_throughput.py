"""Workspace write and read speed.

Prints rollouts written per second through Workspace.write_rollouts (groups, rollouts, three
per-criterion scores each, and the full-text index, in one transaction per step), and the time to read
the first 500 rows of filtered queries on a run with N rollouts. Then the same writes with token-level
evidence (a token_stats blob per rollout: ids, texts, log-prob, entropy and loss share of each token,
as a GRPO run with beta = 0 records them), and what packing those blobs costs the engine.

    python benchmarks/store_throughput.py [--rollouts 1000000] [--blob-rollouts 200000]

Goals: >= 50,000 rollouts/s written (rows without blobs); <= 20 ms for the first 500 rows of a filtered
query.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.contract.token_stats import ENTROPY, LOGPROB, LOSS, pack
from engine.store import GroupRecord, RolloutRecord, Workspace

WORDS = [
    "the",
    "answer",
    "is",
    "think",
    "step",
    "carry",
    "sum",
    "digit",
    "so",
    "we",
    "get",
    "result",
    "therefore",
    "final",
]


def token_blob(rng: random.Random, text: str, tokens: int) -> bytes:
    """A completion's token stats as GRPO records them: ids, texts and three float16 statistics."""
    words = (text.split(" ") * tokens)[:tokens]
    texts = [w if i == 0 else " " + w for i, w in enumerate(words)]
    ids = [rng.randrange(150_000) for _ in texts]
    stats = {
        LOGPROB: [-rng.expovariate(2.0) for _ in texts],
        ENTROPY: [rng.expovariate(1.0) for _ in texts],
        LOSS: [rng.gauss(0, 0.05)] * tokens,
    }
    return pack(ids, texts, stats)


def make_step(rng: random.Random, prompts: int, generations: int, blobs: bool = False) -> list[GroupRecord]:
    groups = []
    for p in range(prompts):
        rollouts = []
        for _ in range(generations):
            correct = float(rng.random() < 0.4)
            text = " ".join(rng.choices(WORDS, k=12)) + f" <answer>{rng.randint(0, 99)}</answer>"
            tokens = rng.randint(5, 40)
            rollouts.append(
                RolloutRecord(
                    completion=text,
                    reward=correct + 0.2,
                    advantage=rng.gauss(0, 1),
                    completion_tokens=tokens,
                    truncated=rng.random() < 0.05,
                    scores={"correct": correct, "format": 1.0, "length": float(len(text))},
                    errors={"correct": "TimeoutError: took more than 10s"} if rng.random() < 0.01 else {},
                    token_stats=token_blob(rng, text, tokens) if blobs else None,
                )
            )
        groups.append(
            GroupRecord(prompt=f"{p}+{p}=", prompt_index=p, columns={"answer": str(2 * p)}, rollouts=rollouts)
        )
    return groups


def timed_query(ws: Workspace, sql: str, args: tuple) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        rows = ws.conn.execute(sql, args).fetchall()
        best = min(best, time.perf_counter() - t0)
    assert len(rows) == 500, (sql, len(rows))
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=1_000_000)
    parser.add_argument("--per-step", type=int, default=512, help="rollouts per step (64 prompts x 8)")
    parser.add_argument(
        "--blob-rollouts", type=int, default=200_000, help="rollouts written with token stats (0: skip)"
    )
    args = parser.parse_args()
    write_and_query(args)
    if args.blob_rollouts:
        write_with_token_stats(args)


def write_rate(batches: list[list[GroupRecord]], rollouts: int, per_step: int) -> tuple[float, float, float]:
    """Rollouts written per second into a fresh workspace, per CPU-second of this process, and its size
    in MB."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "bench.sqlite")
        steps = rollouts // per_step
        run_id = ws.create_run("bench", "grpo", {}, max_steps=steps)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for step in range(1, steps + 1):
            ws.write_rollouts(run_id, step, batches[step % len(batches)])
        rate = steps * per_step / (time.perf_counter() - t0)
        cpu_rate = steps * per_step / (time.process_time() - cpu0)
        return rate, cpu_rate, Path(ws.path).stat().st_size / 1e6


def write_with_token_stats(args: argparse.Namespace) -> None:
    """The same rows with and without token-stats blobs, each into a fresh workspace, one after the other."""
    rng = random.Random(1)
    with_blobs = [make_step(rng, args.per_step // 8, 8, blobs=True) for _ in range(8)]
    without = [
        [
            GroupRecord(
                g.prompt, g.prompt_index, g.columns, [replace(r, token_stats=None) for r in g.rollouts]
            )
            for g in batch
        ]
        for batch in with_blobs
    ]
    blobs = [r.token_stats or b"" for g in with_blobs[0] for r in g.rollouts]
    tokens = sum(r.completion_tokens for g in with_blobs[0] for r in g.rollouts)
    t0 = time.process_time()
    for _ in range(5):  # what the engine pays to pack a step's blobs (the recorder thread writes them)
        make_step(random.Random(2), args.per_step // 8, 8, blobs=True)
    packing = time.process_time() - t0
    t0 = time.process_time()
    for _ in range(5):
        make_step(random.Random(2), args.per_step // 8, 8, blobs=False)
    pack_us = (packing - (time.process_time() - t0)) / (5 * args.per_step) * 1e6
    n = args.blob_rollouts // args.per_step * args.per_step
    plain, plain_cpu, plain_mb = write_rate(without, n, args.per_step)
    rate, cpu, size = write_rate(with_blobs, n, args.per_step)
    print(
        f"{n:,} rollouts without token stats: {plain:,.0f} rollouts/s ({plain_cpu:,.0f} per CPU-second, "
        f"{plain_mb:,.0f} MB); with them: {rate:,.0f} rollouts/s ({cpu:,.0f} per CPU-second, {size:,.0f} MB): "
        f"{rate / plain:.2f} of the rate without ({cpu / plain_cpu:.2f} per CPU-second)"
    )
    print(
        f"  blobs: {sum(map(len, blobs)) / len(blobs):,.0f} bytes per rollout on average "
        f"({sum(map(len, blobs)) / tokens:.1f} bytes per token, 3 statistics); packing one costs the "
        f"engine {pack_us:.0f} us"
    )


def write_and_query(args: argparse.Namespace) -> None:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "bench.sqlite")
        run_id = ws.create_run("bench", "grpo", {}, max_steps=args.rollouts // args.per_step)
        steps = args.rollouts // args.per_step
        batches = [make_step(rng, args.per_step // 8, 8) for _ in range(8)]  # data made before timing
        t0, cpu0 = time.perf_counter(), time.process_time()
        for step in range(1, steps + 1):
            ws.write_rollouts(run_id, step, batches[step % len(batches)])
        write_s = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
        total = steps * args.per_step
        rate = total / write_s
        print(
            f"wrote {total:,} rollouts in {write_s:.1f}s: {rate:,.0f} rollouts/s (goal >= 50,000; ratio {rate / 50_000:.2f})"
        )
        print(
            f"  {total / cpu_s:,.0f} rollouts per CPU-second; {max(0.0, write_s - cpu_s):.1f}s of the wall time was"
            " not this process on a CPU (waiting for the disk at WAL checkpoints, or other work on the machine)"
        )

        base = "SELECT r.id, r.step, r.reward, r.advantage, r.completion_tokens, r.truncated, g.prompt FROM rollouts r JOIN groups g ON g.id = r.group_id WHERE r.run_id = ?"
        order = " ORDER BY r.step, r.id LIMIT 500"  # the inspector's order: served by an index, no sort
        fts = base.replace("FROM rollouts r", "FROM rollouts_fts f JOIN rollouts r ON r.id = f.rowid")
        queries = {
            "step range": (base + " AND r.step BETWEEN ? AND ?" + order, (run_id, steps // 2, steps)),
            "reward >= 1": (base + " AND r.reward >= ?" + order, (run_id, 1.0)),
            "errors only": (base + " AND r.error_count > 0" + order, (run_id,)),
            "truncated only, second half": (
                base + " AND r.truncated = 1 AND r.step > ?" + order,
                (run_id, steps // 2),
            ),
            "full text 'therefore final'": (
                fts + " AND rollouts_fts MATCH ? ORDER BY f.rowid LIMIT 500",
                (run_id, "therefore final"),
            ),
        }
        for name, (sql, qargs) in queries.items():
            ms = timed_query(ws, sql, qargs)
            print(f"first 500 rows, {name}: {ms:.1f} ms (goal <= 20 ms; ratio {ms / 20:.2f})")
        size = Path(ws.path).stat().st_size / 1e6
        print(f"workspace size: {size:,.0f} MB for {total:,} rollouts")


if __name__ == "__main__":
    main()
