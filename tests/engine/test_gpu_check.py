"""benchmarks/gpu_check.sh and the Python it calls, checked on CPU (the script itself needs a CUDA GPU)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, engine_env, requires_demo

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_models

from engine.contract.memory import estimate


def test_the_script_parses() -> None:
    done = subprocess.run(
        ["bash", "-n", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("shape", sorted(gpu_models.SHAPES))
def test_the_written_out_shapes_are_the_real_models_and_the_estimate_counts_them(shape: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    values = gpu_models.shape_config(shape)
    with torch.device("meta"):  # the full-size model, without memory
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**values))
    counted = sum(p.numel() for p in model.parameters())
    assert counted == gpu_models.PARAMETERS[shape] == estimate(values).parameters


@pytest.mark.slow  # a few minutes on a busy 2-core machine: scripts/test_slow.sh runs it
@requires_demo
def test_dry_run_builds_tiny_models_and_benchmarks_them_on_cpu() -> None:
    done = subprocess.run(
        # one shape: the other one is built and run by the same code
        [sys.executable, str(REPO / "benchmarks" / "gpu_models.py"), "--dry-run", "--shape", "qwen2.5-0.5b"],
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(figures) == 1 and all('"engine_s_per_step"' in line for line in figures), done.stdout
