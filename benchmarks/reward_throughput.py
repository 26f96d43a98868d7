"""Reward throughput, measured in one run:

1. completions scored per second by a regex criterion in-process, through Rubric.score (goal >= 100,000/s);
2. the per-batch overhead of a trivial python criterion run in its worker process, against the same
   function called in-process through the same convention adapter (goal <= 2 ms per batch of 64).

    python benchmarks/reward_throughput.py [--batches N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.rewards import RewardBatch, load_rubric
from engine.rewards.conventions import CallGuard, analyse, call

TRIVIAL = """
def trivial(completions, **kwargs):
    return [1.0] * len(completions)
"""

RUBRIC = """
name = "bench"

[[criteria]]
name = "format"
kind = "regex"
pattern = '^<answer>-?\\d+</answer>$'
weight = 1.0
"""

PYTHON_RUBRIC = """
name = "bench-python"

[[criteria]]
name = "trivial"
kind = "python"
source = "trivial.py:trivial"
"""


def batch_of(n: int) -> RewardBatch:
    completions = [f"<answer>{i % 37}</answer>" if i % 3 else f"the answer is {i}" for i in range(n)]
    return RewardBatch(
        prompts=[f"{i}+1=" for i in range(n)],
        completions=completions,
        columns={"answer": [str(i + 1) for i in range(n)]},
    )


def best_of(repeats: int, fn: object, *args: object) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300, help="batches of 64 timed per python measurement")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "rubric.toml").write_text(RUBRIC)
        (root / "python.toml").write_text(PYTHON_RUBRIC)
        (root / "trivial.py").write_text(TRIVIAL)

        # ---- 1. regex in-process ------------------------------------------------------------------------
        big = batch_of(8192)
        with load_rubric(root / "rubric.toml") as rubric:
            rubric.score(big)
            seconds = best_of(20, rubric.score, big)
        regex_rate = len(big) / seconds

        # ---- 2. trivial python criterion: worker vs in-process -----------------------------------------
        batch = batch_of(64)
        namespace: dict[str, object] = {}
        exec(TRIVIAL, namespace)
        fn = namespace["trivial"]
        info = analyse(fn, None)
        payload = {
            "prompts": batch.prompts,
            "completions": batch.completions,
            "columns": batch.columns,
            "completion_ids": None,
            "step": 0,
        }
        rows = list(range(len(batch)))
        guard = CallGuard()
        for _ in range(100):
            call(fn, info, payload, rows, guard)
        in_process = []
        for _ in range(args.batches):
            start = time.perf_counter()
            call(fn, info, payload, rows, guard)
            in_process.append(time.perf_counter() - start)

        with load_rubric(root / "python.toml") as rubric:
            for _ in range(50):
                rubric.score(batch)
            through_worker = []
            for _ in range(args.batches):
                start = time.perf_counter()
                scored = rubric.score(batch)
                through_worker.append(time.perf_counter() - start)
            assert scored.scores["trivial"] == [1.0] * 64, scored.errors

    in_ms = statistics.median(in_process) * 1e3
    worker_ms = statistics.median(through_worker) * 1e3
    overhead_ms = worker_ms - in_ms
    print(
        f"regex criterion, in-process via Rubric.score: {regex_rate:,.0f} completions/s "
        f"(goal >= 100,000/s: {'met' if regex_rate >= 100_000 else 'MISSED'}; {regex_rate / 100_000:.1f}x the goal)"
    )
    print(
        f"trivial python criterion, batch of 64: in-process {in_ms:.3f} ms, through the worker {worker_ms:.3f} ms "
        f"(median of {args.batches})"
    )
    print(
        f"worker overhead per batch of 64: {overhead_ms:.3f} ms (goal <= 2 ms: {'met' if overhead_ms <= 2 else 'MISSED'}; "
        f"{overhead_ms / 2:.2f} of the budget); p90 through the worker "
        f"{statistics.quantiles(through_worker, n=10)[-1] * 1e3:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
