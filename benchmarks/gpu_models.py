"""Randomly initialised models in the shapes of Qwen2.5-0.5B and -1.5B, for benchmarks/gpu_check.sh.

Nothing is downloaded: each shape's config values are written out below (from the models' config.json), the
weights are random, and the tokenizer is the demo model's (its 266 ids index the first rows of the full
151,936-row embedding, so memory and compute are those of the real model). A random model never emits its
end token, so every completion runs to max_completion_length: tokens per second is well defined.

    python benchmarks/gpu_models.py build qwen2.5-0.5b OUT_DIR [--tiny]
    python benchmarks/gpu_models.py --dry-run      # CPU: tiny versions of both shapes, 2 steps each through
                                                   # benchmarks/engine_overhead.py, as gpu_check.sh runs them
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "engine" / "assets" / "demo" / "model"

QWEN2_COMMON: dict[str, Any] = {
    "model_type": "qwen2",
    "architectures": ["Qwen2ForCausalLM"],
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
    "use_sliding_window": False,
}
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": QWEN2_COMMON
    | {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
    },
    "qwen2.5-1.5b": QWEN2_COMMON
    | {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
    },
}
PARAMETERS = {"qwen2.5-0.5b": 494_032_768, "qwen2.5-1.5b": 1_543_714_304}
"""What transformers counts for the real models (tied embeddings counted once)."""

TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 266,
}


def shape_config(shape: str, tiny: bool = False) -> dict[str, Any]:
    values = dict(SHAPES[shape]) | (TINY if tiny else {})
    # the demo tokenizer's single special token is id 0: end of text and padding
    return values | {"eos_token_id": 0, "pad_token_id": 0, "bos_token_id": None}


def build(shape: str, out: Path, tiny: bool = False, seed: int = 0) -> Path:
    """A random-weight model of `shape` (bf16 weights; fp32 when tiny, for CPU) with the demo tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    values = shape_config(shape, tiny)
    config = AutoConfig.for_model(**values)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if tiny else torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(DEMO_MODEL / name, out / name)
    return out


def dry_run(steps: int = 2, shapes: list[str] | None = None) -> int:
    """What gpu_check.sh does, on CPU, at tiny size: build the shapes, then benchmark each."""
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes or list(SHAPES):
            model = build(shape, Path(tmp) / shape, tiny=True)
            command = [
                sys.executable,
                str(REPO / "benchmarks" / "engine_overhead.py"),
                "--model",
                str(model),
                "--steps",
                str(steps),
                "--repeats",
                "1",
                "--prompts-per-step",
                "2",
                "--num-generations",
                "2",
                "--max-completion-length",
                "8",
                "--device",
                "cpu",
                "--json",
            ]
            print(f"== {shape} (tiny, CPU)", flush=True)
            done = subprocess.run(command, cwd=REPO, check=False)
            if done.returncode:
                return done.returncode
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="tiny models on CPU, 2 steps each")
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), help="--dry-run: only these")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("build", help="write a random-weight model of a shape")
    p.add_argument("shape", choices=sorted(SHAPES))
    p.add_argument("out", type=Path)
    p.add_argument("--tiny", action="store_true", help="the shape's kind at toy size, for CPU")
    args = parser.parse_args()
    if args.dry_run:
        return dry_run(shapes=args.shape)
    if args.command == "build":
        print(build(args.shape, args.out, args.tiny))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
