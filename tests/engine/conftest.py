"""Shared fixtures for engine tests: workspaces, the bundled demo, small run configs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from engine.contract.paths import DEMO_DIR

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace_path(tmp_path: Path) -> Path:
    return tmp_path / "ws.sqlite"


def write_config(tmp_path: Path, **training: object) -> Path:
    """A run config over the bundled demo, small enough for a test, with overrides for [training]."""
    base = {
        "max_steps": 6,
        "num_generations": 4,
        "prompts_per_step": 2,
        "max_completion_length": 8,
        "learning_rate": 5e-3,
        "checkpoint_every": 2,
        "eval_every": 0,
        "device": "cpu",
        "seed": 1,
    }
    base.update(training)
    lines = [
        'algorithm = "grpo"',
        "[model]",
        f'path = "{DEMO_DIR / "model"}"',
        "[data]",
        f'train = "{DEMO_DIR / "data" / "train.jsonl"}"',
        f'eval = "{DEMO_DIR / "data" / "eval.jsonl"}"',
        "eval_limit = 16",
        "[rubric]",
        f'path = "{DEMO_DIR / "rubric.toml"}"',
        "[lora]",
        "r = 8",
        "alpha = 16",
        "[training]",
    ]
    for key, value in base.items():
        lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"')
    path = tmp_path / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def engine_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


requires_demo = pytest.mark.skipif(
    not (DEMO_DIR / "model" / "config.json").is_file(),
    reason="the bundled demo model is missing: run python engine/assets/build_demo.py",
)
