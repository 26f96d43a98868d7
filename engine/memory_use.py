"""The memory a run used, measured, recorded next to what engine.contract.memory estimated for it."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from engine.contract.config import ConfigError
from engine.contract.memory import GB


def peak_bytes(device: str) -> int:
    """The peak so far: allocated CUDA memory on a GPU, the process's maximum resident set elsewhere."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # bytes on macOS, KiB on Linux


def longest_prompt(session: Any, tokenizer: Any, sample: int = 256) -> int:
    """Tokens of the longest rendered prompt among the first `sample` training rows."""
    from engine.prompts import render

    rows = session.train_rows[:sample]
    return max((len(render(row["prompt"], session.cfg.data, tokenizer)[1]) for row in rows), default=0)


def record_peak_memory(session: Any, step: int, plan: Any, tokenizer: Any = None) -> dict[str, float]:
    """Record memory/peak_gb (and memory/estimate_gb when the model's config can be read) at `step`. With the
    tokenizer, the estimate uses the run's longest prompt instead of the estimate's assumed length."""
    from engine.modeling import estimate_for

    values = {"memory/peak_gb": peak_bytes(plan.device) / GB}
    with contextlib.suppress(OSError, ValueError, ConfigError):  # no readable config: the measured peak alone
        prompt_tokens = longest_prompt(session, tokenizer) if tokenizer is not None else None
        values["memory/estimate_gb"] = estimate_for(session.cfg, plan.dtype_name, prompt_tokens).total_gb
    session.record_metrics(step, values)
    session.log(
        "memory: peak "
        + f"{values['memory/peak_gb']:.2f} GB"
        + (f", estimated {values['memory/estimate_gb']:.2f} GB" if "memory/estimate_gb" in values else "")
        + (" (process max RSS)" if plan.device != "cuda" else " (CUDA max allocated)")
    )
    return values
