"""Engine overhead: the same GRPO config and seed, bare trl.GRPOTrainer vs the RL Studio engine.

Bare: trl.GRPOTrainer with the demo's reward functions called in-process, nothing recorded.
Engine: `rl-studio-engine run` with full recording (the rubric through its worker processes, every
rollout, score and metric written to SQLite, events on stdout). Evaluation is off in both, and each
side's time is its training loop only (model loading, imports and the first step's warm-up excluded):
from the end of the first step to the end of the last, the same clock points on both sides.

    python benchmarks/engine_overhead.py [--steps 60] [--repeats 3]

Goal: engine / bare <= 1.05.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.contract.config import load_run_config  # noqa: E402
from engine.contract.paths import DEMO_CONFIG  # noqa: E402


def bench_config(tmp: Path, steps: int) -> Path:
    cfg = load_run_config(DEMO_CONFIG)
    cfg.training.max_steps = steps
    cfg.training.checkpoint_every = 0
    cfg.training.device = "cpu"
    cfg.data.eval = ""
    path = tmp / "bench.toml"
    path.write_text(cfg.to_toml(absolute_paths=True))
    return path


def bare(config_path: str) -> None:
    """Child process: bare TRL with the same settings, timing trainer.train() from its first step."""
    import importlib.util
    import re

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOTrainer

    from engine.algos.grpo import RecordingGRPOTrainer, grpo_args, lora_config  # noqa: F401 - same args builder
    from engine.data import read_jsonl
    from engine.modeling import plan_device, set_cpu_threads

    cfg = load_run_config(config_path)
    spec = importlib.util.spec_from_file_location(
        "demo_rewards", Path(cfg.resolve(cfg.rubric.path)).parent / "rewards.py"
    )
    assert spec and spec.loader
    rewards = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rewards)
    import tomllib

    rubric = tomllib.loads(Path(cfg.resolve(cfg.rubric.path)).read_text())
    pattern = next(c["pattern"] for c in rubric["criteria"] if c["kind"] == "regex")
    weights = {c["name"]: c["weight"] for c in rubric["criteria"]}

    def fmt(completions, **kwargs):  # type: ignore[no-untyped-def]
        return [1.0 if re.search(pattern, c) else 0.0 for c in completions]

    class FakeSession:  # grpo_args and lora_config read only these
        def __init__(self) -> None:
            self.cfg = cfg
            self.files = Path(tempfile.mkdtemp())

    session = FakeSession()
    plan = plan_device(cfg)
    tok = AutoTokenizer.from_pretrained(cfg.resolved_model())
    model = AutoModelForCausalLM.from_pretrained(cfg.resolved_model())
    set_cpu_threads(cfg, plan, model)  # the same thread count the engine picks
    rows = read_jsonl(cfg.resolve(cfg.data.train))
    args = grpo_args(session, plan)  # type: ignore[arg-type]
    args.reward_weights = [weights["correct"], weights["format"]]
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):  # type: ignore[no-untyped-def]
            ends.append(time.time())

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[rewards.correct, fmt],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=lora_config(session),
        callbacks=[Clock()],
    )  # type: ignore[arg-type]
    trainer.train()
    print(json.dumps({"seconds": ends[-1] - ends[0]}))


def engine(config_path: Path, tmp: Path) -> float:
    db = tmp / "ws.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(config_path), "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    ends = [e["time"] for e in events if e["type"] == "progress" and e.get("phase") == "train"]
    return ends[-1] - ends[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bare-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        bare(args.bare_child)
        return
    bare_runs, engine_runs = [], []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        cfg = bench_config(tmp, args.steps)
        for i in range(args.repeats):  # alternate, so a busy spell on the machine hits both sides
            out = subprocess.run(
                [sys.executable, __file__, "--bare-child", str(cfg)],
                capture_output=True,
                text=True,
                cwd=REPO,
                check=True,
            ).stdout
            bare_runs.append(json.loads(out.strip().splitlines()[-1])["seconds"])
            run_dir = tmp / f"engine{i}"
            run_dir.mkdir()
            engine_runs.append(engine(cfg, run_dir))
    bare_s, engine_s = statistics.median(bare_runs), statistics.median(engine_runs)
    print(
        f"{args.steps} steps x {args.repeats} runs each (median): bare trl.GRPOTrainer {bare_s:.2f}s "
        f"{[round(x, 2) for x in bare_runs]}, engine with full recording {engine_s:.2f}s "
        f"{[round(x, 2) for x in engine_runs]}"
    )
    print(f"engine / bare = {engine_s / bare_s:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
