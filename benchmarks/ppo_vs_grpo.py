"""PPO against GRPO on the bundled demo: seconds per training step and the training process's peak memory.

Both run through `rl-studio-engine run` with their demo configs (engine/assets/demo/run.toml and
run_ppo.toml: 64 completions per step on each side, GRPO as 8 prompts x 8, PPO as 16 prompts x 4),
evaluation and checkpoints off, alternating so a busy spell on the machine hits both sides. A step's time
is measured from the end of the first step to the end of the last (progress event times; model loading,
imports and the first step's warm-up excluded). Peak memory is the engine process's maximum resident set
(os.wait4), reward worker processes not included.

    python benchmarks/ppo_vs_grpo.py [--steps 40] [--repeats 1]

PPO does more per step than GRPO: a value pass and a reference pass over the rollouts, and per minibatch
a policy and a value forward and backward (two adapters); expect it to take longer per step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.contract.config import load_run_config  # noqa: E402
from engine.contract.paths import DEMO_CONFIG  # noqa: E402

CONFIGS = {"grpo": DEMO_CONFIG, "ppo": DEMO_CONFIG.with_name("run_ppo.toml")}


def bench_config(tmp: Path, algorithm: str, steps: int) -> Path:
    cfg = load_run_config(CONFIGS[algorithm])
    cfg.training.max_steps = steps
    cfg.training.checkpoint_every = 0
    cfg.training.device = "cpu"
    cfg.data.eval = ""
    path = tmp / f"{algorithm}.toml"
    path.write_text(cfg.to_toml(absolute_paths=True))
    return path


def run(config_path: Path, tmp: Path) -> tuple[float, float]:
    """(seconds per step, peak resident MiB) of one engine run."""
    db = tmp / f"{config_path.stem}-{len(list(tmp.iterdir()))}.sqlite"
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "run", str(config_path), "--db", str(db)],
            stdout=out,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{config_path.stem} run failed ({proc.returncode}); run it by hand to see why")
        out.seek(0)
        events = [json.loads(line) for line in out]
    ends = [e["time"] for e in events if e["type"] == "progress" and e.get("phase") == "train"]
    peak_mib = usage.ru_maxrss / 1024  # kilobytes on Linux
    return (ends[-1] - ends[0]) / (len(ends) - 1), peak_mib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"grpo": [], "ppo": []}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        configs = {name: bench_config(tmp, name, args.steps) for name in CONFIGS}
        for _ in range(args.repeats):
            for name, path in configs.items():
                results[name].append(run(path, tmp))
    seconds = {name: statistics.median(s for s, _ in runs) for name, runs in results.items()}
    memory = {name: max(m for _, m in runs) for name, runs in results.items()}
    print(f"demo, {args.steps} steps x {args.repeats} run(s) each, 64 completions per step, 1 CPU thread")
    for name in CONFIGS:
        per_run = [round(s, 3) for s, _ in results[name]]
        print(f"{name:>5}: {seconds[name]:.3f} s/step {per_run}, peak {memory[name]:.0f} MiB")
    print(
        f"ppo / grpo: {seconds['ppo'] / seconds['grpo']:.2f}x seconds per step, "
        f"{memory['ppo'] / memory['grpo']:.2f}x peak memory"
    )


if __name__ == "__main__":
    main()
