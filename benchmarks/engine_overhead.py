"""Engine overhead: the same GRPO config and seed, bare trl.GRPOTrainer vs the RL Studio engine.

Bare: trl.GRPOTrainer with the demo's reward functions called in-process, nothing recorded.
Engine: `rl-studio-engine run` with full recording (the rubric through its worker processes, every
rollout, score and metric written to SQLite, events on stdout). Evaluation is off in both, and each
side's time is its training loop only (model loading, imports and the first step's warm-up excluded):
from the end of the first step to the end of the last, the same clock points on both sides.

    python benchmarks/engine_overhead.py [--steps 60] [--repeats 3]
    python benchmarks/engine_overhead.py --model SmolLM2-135M-Instruct.Q4_1.gguf --steps 4 --repeats 1

--model trains a real model (a model folder or a .gguf file) on the demo's task instead of the demo model;
its plain prompts are wrapped in the model's chat template on both sides (engine.prompts), and the engine's
seconds per step and measured peak memory (memory/peak_gb) are printed too.

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


def bench_config(
    tmp: Path,
    steps: int,
    model: str = "",
    prompts: int = 0,
    generations: int = 0,
    device: str = "cpu",
    completion_length: int = 0,
    load_in_4bit: bool = False,
) -> Path:
    cfg = load_run_config(DEMO_CONFIG)
    if model:
        cfg.model.path = str(Path(model).resolve())
    cfg.model.load_in_4bit = load_in_4bit
    cfg.training.max_completion_length = completion_length or cfg.training.max_completion_length
    cfg.training.prompts_per_step = prompts or cfg.training.prompts_per_step
    cfg.training.num_generations = generations or cfg.training.num_generations
    cfg.training.max_steps = steps
    cfg.training.checkpoint_every = 0
    cfg.training.device = device
    cfg.data.eval = ""
    path = tmp / "bench.toml"
    path.write_text(cfg.to_toml(absolute_paths=True))
    return path


def bare(config_path: str) -> None:
    """Child process: bare TRL with the same settings, timing trainer.train() from its first step."""
    import importlib.util
    import re

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from engine.algos.grpo import RecordingGRPOTrainer, grpo_args, lora_config  # noqa: F401 - same args builder
    from engine.data import read_jsonl
    from engine.modeling import load_model, load_tokenizer, plan_device, set_cpu_threads
    from engine.prompts import model_prompt

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

    def text(completions):  # type: ignore[no-untyped-def]  # a chat model's completions are message lists
        return [c if isinstance(c, str) else c[-1]["content"] for c in completions]

    def fmt(completions, **kwargs):  # type: ignore[no-untyped-def]
        return [1.0 if re.search(pattern, c) else 0.0 for c in text(completions)]

    def correct(completions, **kwargs):  # type: ignore[no-untyped-def]
        return rewards.correct(text(completions), **kwargs)

    class FakeSession:  # grpo_args and lora_config read only these
        def __init__(self) -> None:
            self.cfg = cfg
            self.files = Path(tempfile.mkdtemp())

    session = FakeSession()
    plan = plan_device(cfg)
    tok = load_tokenizer(cfg)  # the engine's loaders (a folder or a .gguf file); loading is not timed
    model = load_model(cfg, plan)
    set_cpu_threads(cfg, plan, model)  # the same thread count the engine picks
    rows = [
        r | {"prompt": model_prompt(r["prompt"], cfg.data, tok)}
        for r in read_jsonl(cfg.resolve(cfg.data.train))
    ]
    args = grpo_args(session, plan)  # type: ignore[arg-type]
    args.reward_weights = [weights["correct"], weights["format"]]
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):  # type: ignore[no-untyped-def]
            ends.append(time.time())

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[correct, fmt],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=lora_config(session),  # type: ignore[arg-type]
        callbacks=[Clock()],
    )  # type: ignore[arg-type]
    trainer.train()
    print(json.dumps({"seconds": ends[-1] - ends[0]}))


def engine(config_path: Path, tmp: Path) -> tuple[float, float, int, float]:
    """(seconds from the end of the first step to the end of the last, measured peak memory in GB, completion
    tokens generated in those steps, the engine's memory estimate in GB)."""
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
    import sqlite3

    with sqlite3.connect(db) as conn:
        peak = conn.execute("SELECT MAX(value) FROM metrics WHERE key = 'memory/peak_gb'").fetchone()[0]
        tokens = conn.execute("SELECT SUM(completion_tokens) FROM rollouts WHERE step > 1").fetchone()[0]
        query = "SELECT MAX(value) FROM metrics WHERE key = 'memory/estimate_gb'"
        estimate = conn.execute(query).fetchone()[0]
    return ends[-1] - ends[0], float(peak or "nan"), int(tokens or 0), float(estimate or "nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="", help="a model folder or .gguf file instead of the demo model")
    parser.add_argument("--prompts-per-step", type=int, default=0, help="override the demo's 8")
    parser.add_argument("--num-generations", type=int, default=0, help="override the demo's 8")
    parser.add_argument("--max-completion-length", type=int, default=0, help="override the demo's 12")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--load-in-4bit", action="store_true", help="QLoRA: the base in NF4 (CUDA)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line of the figures")
    parser.add_argument("--bare-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        bare(args.bare_child)
        return
    bare_runs: list[float] = []
    engine_runs: list[float] = []
    peaks: list[float] = []
    token_rates: list[float] = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        cfg = bench_config(
            tmp,
            args.steps,
            args.model,
            args.prompts_per_step,
            args.num_generations,
            args.device,
            args.max_completion_length,
            args.load_in_4bit,
        )
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
            seconds, peak, tokens, estimate = engine(cfg, run_dir)
            engine_runs.append(seconds)
            peaks.append(peak)
            token_rates.append(tokens / seconds if seconds else float("nan"))
    bare_s, engine_s = statistics.median(bare_runs), statistics.median(engine_runs)
    print(
        f"{args.steps} steps x {args.repeats} runs each (median): bare trl.GRPOTrainer {bare_s:.2f}s "
        f"{[round(x, 2) for x in bare_runs]}, engine with full recording {engine_s:.2f}s "
        f"{[round(x, 2) for x in engine_runs]}"
    )
    print(f"engine / bare = {engine_s / bare_s:.3f} (goal <= 1.05)")
    timed_steps = max(args.steps - 1, 1)  # from the end of the first step to the end of the last
    print(
        f"model {args.model or 'demo'}: engine {engine_s / timed_steps:.2f} s/step, bare "
        f"{bare_s / timed_steps:.2f} s/step, {statistics.median(token_rates):.0f} completion tokens/s, "
        f"engine peak memory {max(peaks):.2f} GB (memory/peak_gb; estimated {estimate:.2f} GB)"
    )
    if args.json:
        figures = {
            "model": args.model or "demo",
            "load_in_4bit": args.load_in_4bit,
            "engine_s_per_step": engine_s / timed_steps,
            "bare_s_per_step": bare_s / timed_steps,
            "engine_over_bare": engine_s / bare_s,
            "tokens_per_s": statistics.median(token_rates),
            "peak_gb": max(peaks),
            "estimate_gb": estimate,
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
