"""Kill the engine at every phase of a run, resume until it finishes, and check nothing was lost or doubled.

    python scripts/fault_matrix.py                 # every phase x {kill -9, SIGTERM}, 1 trial each
    python scripts/fault_matrix.py --trials 3 --steps 40 --checkpoint-every 4

Each trial trains the bundled demo (tiny model, CPU) in a fresh workspace, delivers the fault when the
engine reaches the phase (read from its own events and log), then runs `resume` until the run is
`finished`. A trial is clean when:
  - the run is `finished` at max_steps, with the adapter on disk;
  - metrics: `loss` recorded once for each of steps 1..max_steps, and no (step, key) twice;
  - evaluations: `eval/reward/mean` once for each evaluation step (0, every eval_every, max_steps),
    and eval_limit samples at each;
  - rollouts: prompts_per_step x num_generations at each of steps 1..max_steps.
Prints each failure, then "N clean out of M trials".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.contract.paths import DEMO_DIR  # noqa: E402

PROMPTS, GENERATIONS, EVAL_LIMIT = 2, 4, 8

# phase -> predicate over (event dict | None, stderr line | None), and a delay after it (seconds)
PHASES: dict[str, tuple[Callable[[dict | None, str | None, dict], bool], float]] = {
    # the config is printed, the model is being loaded
    "model loading": (lambda e, line, a: line is not None and "config:" in line, 0.3),
    # the step-0 evaluation (the baseline) is under way
    "step 0 eval": (
        lambda e, line, a: (
            e is not None and e["type"] == "progress" and e.get("phase") == "eval" and e.get("step") == 0
        ),
        0.0,
    ),
    "mid-training": (
        lambda e, line, a: (
            e is not None and e["type"] == "rollouts_written" and e.get("step") == a["steps"] // 2 + 1
        ),
        0.0,
    ),
    # the Trainer is writing the checkpoint files (the step's metrics arrive just before on_save)
    "mid-checkpoint": (
        lambda e, line, a: (
            e is not None and e["type"] == "metrics_written" and e.get("step") == a["checkpoint_every"] * 2
        ),
        0.02,
    ),
    "mid-evaluation": (
        lambda e, line, a: (
            e is not None and e["type"] == "progress" and e.get("phase") == "eval" and e.get("step", 0) > 0
        ),
        0.0,
    ),
    "after final checkpoint": (
        lambda e, line, a: e is not None and e["type"] == "checkpoint_saved" and e.get("step") == a["steps"],
        0.0,
    ),
}
SIGNALS = {"kill -9": signal.SIGKILL, "SIGTERM": signal.SIGTERM}


def write_config(folder: Path, steps: int, checkpoint_every: int, eval_every: int) -> Path:
    path = folder / "run.toml"
    path.write_text(
        f"""algorithm = "grpo"
[model]
path = "{DEMO_DIR / "model"}"
[data]
train = "{DEMO_DIR / "data" / "train.jsonl"}"
eval = "{DEMO_DIR / "data" / "eval.jsonl"}"
eval_limit = {EVAL_LIMIT}
[rubric]
path = "{DEMO_DIR / "rubric.toml"}"
[lora]
r = 8
alpha = 16
[training]
max_steps = {steps}
num_generations = {GENERATIONS}
prompts_per_step = {PROMPTS}
max_completion_length = 8
learning_rate = 0.005
checkpoint_every = {checkpoint_every}
eval_every = {eval_every}
keep_checkpoints = 2
device = "cpu"
seed = 1
"""
    )
    return path


def engine(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_until(proc: subprocess.Popen, phase: str, sig: int, a: dict, timeout: float = 600) -> bool:
    """Deliver `sig` when the engine reaches `phase`. False if it ended first."""
    lines: queue.Queue[tuple[dict | None, str | None]] = queue.Queue()

    def pump(stream, is_events: bool) -> None:
        for raw in stream:
            if is_events:
                with contextlib.suppress(json.JSONDecodeError):
                    lines.put((json.loads(raw), None))
            else:
                lines.put((None, raw))
        lines.put((None, None))

    threading.Thread(target=pump, args=(proc.stdout, True), daemon=True).start()
    threading.Thread(target=pump, args=(proc.stderr, False), daemon=True).start()
    predicate, delay = PHASES[phase]
    deadline, closed = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and closed < 2:
        try:
            event, line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if event is None and line is None:
            closed += 1
            continue
        if predicate(event, line, a):
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(sig)
                if sig == signal.SIGTERM and phase == "mid-checkpoint":
                    proc.send_signal(sig)  # a second SIGTERM stops at once, mid-write
            proc.wait(timeout=timeout)
            return True
    proc.wait(timeout=timeout)
    return False


def check(db: Path, a: dict) -> list[str]:
    steps = a["steps"]
    problems = []
    with sqlite3.connect(db) as conn:
        q = lambda sql: conn.execute(sql).fetchall()  # noqa: E731
        status = q("SELECT status, step FROM runs")
        if status != [("finished", steps)]:
            problems.append(f"run ends {status}, not finished at {steps}")
        loss_steps = [s for (s,) in q("SELECT step FROM metrics WHERE key = 'loss' ORDER BY step")]
        if loss_steps != list(range(1, steps + 1)):
            problems.append(f"loss recorded at steps {loss_steps}")
        dupes = q("SELECT step, key, COUNT(*) FROM metrics GROUP BY step, key HAVING COUNT(*) > 1 LIMIT 3")
        if dupes:
            problems.append(f"metrics twice: {dupes}")
        want = sorted({0, steps, *range(a["eval_every"], steps, a["eval_every"] or steps + 1)})
        evals = [s for (s,) in q("SELECT step FROM metrics WHERE key = 'eval/reward/mean' ORDER BY step")]
        if evals != want:
            problems.append(f"evaluations at {evals}, expected {want}")
        samples = q("SELECT step, COUNT(*) FROM evaluations GROUP BY step ORDER BY step")
        if samples != [(s, EVAL_LIMIT) for s in want]:
            problems.append(f"evaluation samples {samples}")
        per_step = q("SELECT step, COUNT(*) FROM rollouts GROUP BY step ORDER BY step")
        if per_step != [(s, PROMPTS * GENERATIONS) for s in range(1, steps + 1)]:
            bad = [r for r in per_step if r[1] != PROMPTS * GENERATIONS]
            problems.append(f"rollouts per step wrong: {len(per_step)} steps, off: {bad[:3]}")
    adapter = db.with_name(db.stem + "_files") / "runs" / "1" / "adapter" / "adapter_model.safetensors"
    if not adapter.is_file():
        problems.append("no adapter")
    return problems


def trial(folder: Path, phase: str, sig_name: str, a: dict) -> list[str]:
    db = folder / "ws.sqlite"
    cfg = write_config(folder, a["steps"], a["checkpoint_every"], a["eval_every"])
    hit = run_until(engine("run", str(cfg), "--db", str(db)), phase, SIGNALS[sig_name], a)
    notes = [] if hit else [f"(the run ended before {phase})"]
    for _attempt in range(4):
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = 1").fetchone()
        if row is None:
            return [*notes, "no run row"]
        if row[0] == "finished":
            break
        proc = engine("resume", "1", "--db", str(db))
        _, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            return [*notes, f"resume exited {proc.returncode}: {err.strip().splitlines()[-1:]}"]
    return notes + check(db, a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1, help="trials per (phase, signal)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--checkpoint-every", type=int, default=4)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--phases", nargs="*", default=list(PHASES), help="a subset of: " + ", ".join(PHASES))
    parser.add_argument("--signals", nargs="*", default=list(SIGNALS))
    args = parser.parse_args()
    a = {"steps": args.steps, "checkpoint_every": args.checkpoint_every, "eval_every": args.eval_every}
    clean = total = 0
    started = time.perf_counter()
    for phase in args.phases:
        for sig_name in args.signals:
            for i in range(args.trials):
                total += 1
                with tempfile.TemporaryDirectory(prefix="fault-") as tmp:
                    t0 = time.perf_counter()
                    problems = trial(Path(tmp), phase, sig_name, a)
                    failed = [p for p in problems if not p.startswith("(")]
                    clean += not failed
                    verdict = "clean" if not failed else "FAILED: " + "; ".join(failed)
                    notes = " ".join(p for p in problems if p.startswith("("))
                    print(
                        f"{sig_name:>8} at {phase:<24} #{i + 1}: {verdict} {notes} ({time.perf_counter() - t0:.0f}s)",
                        flush=True,
                    )
    print(f"{clean} clean out of {total} trials ({time.perf_counter() - started:.0f}s)")
    return 0 if clean == total else 1


if __name__ == "__main__":
    sys.exit(main())
