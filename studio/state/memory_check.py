"""Will a run fit? The launcher's memory check, without importing torch.

The estimate is engine/contract/memory.py's (the one the engine records as `memory/estimate_gb`); this
module finds the model's config.json for it, decides what the run would train on, and detects how much
memory that device has: a CUDA GPU's through `nvidia-smi` (the studio cannot ask torch), else the
machine's RAM (/proc/meminfo, or os.sysconf), which is what a CPU run (and Apple's unified memory) uses.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contract.config import RunConfig
from engine.contract.memory import MemoryEstimate, estimate_for_run, read_model_config

FITS_FRACTION = 0.9
"""Warn above this share of the device's memory: the estimate leaves out the CUDA context, the allocator's
fragmentation and kernels' workspaces (engine/contract/memory.py)."""


@dataclass(frozen=True)
class DeviceMemory:
    kind: str
    """"gpu" or "ram"."""
    name: str
    total_gb: float


def detect_gpu() -> DeviceMemory | None:
    """The largest NVIDIA GPU's memory, from nvidia-smi; None when there is none (or no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.stdout.splitlines():
        name, _, mib = line.rpartition(",")
        try:
            gpus.append(DeviceMemory("gpu", name.strip(), float(mib) * 2**20 / 1e9))
        except ValueError:
            continue
    return max(gpus, key=lambda g: g.total_gb) if out.returncode == 0 and gpus else None


def detect_ram() -> DeviceMemory | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return DeviceMemory("ram", "system RAM", int(line.split()[1]) * 1024 / 1e9)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return DeviceMemory(
            "ram", "system RAM", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
        )
    except (ValueError, OSError, AttributeError):
        return None


def detect_devices() -> tuple[DeviceMemory | None, DeviceMemory | None]:
    """(GPU, RAM); slow enough (nvidia-smi) to run off the GUI thread."""
    return detect_gpu(), detect_ram()


def model_config_path(cfg: RunConfig) -> Path | None:
    """config.json of the run's model: a local folder's, or a cached hub snapshot's; None for a .gguf file
    (its config is in the file's metadata, which only the engine reads) or a model that is not here."""
    if cfg.model.path.lower().endswith(".gguf"):
        return None
    if cfg.model_is_local():
        path = Path(cfg.resolved_model()) / "config.json"
        return path if path.is_file() else None
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub"
    )
    snapshots = Path(cache) / ("models--" + cfg.model.path.replace("/", "--")) / "snapshots"
    found = (
        sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    )
    return found[-1] if found else None


@dataclass(frozen=True)
class MemoryCheck:
    estimate: MemoryEstimate | None
    device: DeviceMemory | None
    dtype: str
    problem: str = ""
    """Why there is no estimate (no config.json...)."""

    @property
    def fits(self) -> bool | None:
        if self.estimate is None or self.device is None:
            return None
        return self.estimate.total_gb <= FITS_FRACTION * self.device.total_gb

    def summary(self) -> str:
        """One line: parameters, the estimate and its parts, the device."""
        if self.estimate is None:
            return self.problem
        e = self.estimate
        dtype = "NF4, 4-bit" if self.dtype == "4bit" else self.dtype
        parts = (
            f"weights {_size(e.weights_gb)} · LoRA + optimizer {_size(e.lora_gb)} · activations "
            f"{_size(e.activations_gb)} · logits {_size(e.logits_gb)} · generation cache {_size(e.kv_cache_gb)}"
        )
        device = f" of {self.device.name}'s {_size(self.device.total_gb)}" if self.device else ""
        return (
            f"{_count(e.parameters)} parameters ({_count(e.lora_parameters)} in LoRA). Estimated peak "
            f"{_size(e.total_gb)}{device} ({dtype}): {parts}."
        )

    def warning(self) -> str:
        if self.fits is not False or self.estimate is None or self.device is None:
            return ""
        return (
            f"This run will probably not fit: about {self.estimate.total_gb:.1f} GB at its peak, and "
            f"{self.device.name} has {self.device.total_gb:.1f} GB. Lower prompts_per_step, num_generations or "
            "max_completion_length, turn on gradient_checkpointing, or load the model in 4 bits (CUDA)."
        )


def check(cfg: RunConfig, gpu: DeviceMemory | None, ram: DeviceMemory | None) -> MemoryCheck:
    """The estimate for `cfg` on the device it would train on (as the engine's plan_device chooses it)."""
    wanted = cfg.training.device
    on_gpu = wanted == "cuda" or (wanted == "auto" and gpu is not None)
    device = gpu if on_gpu else ram
    if on_gpu and device is None:
        device = None  # device = "cuda" without nvidia-smi: the engine will say so; no total to compare
    dtype = cfg.model.dtype
    if not on_gpu:
        dtype = "float32"  # the engine trains in float32 on CPU
    elif dtype == "auto":
        dtype = "bfloat16"
    path = model_config_path(cfg)
    if path is None:
        what = ".gguf file" if cfg.model.path.lower().endswith(".gguf") else "model"
        return MemoryCheck(
            None,
            device,
            dtype,
            f"No memory estimate: the {what}'s config.json is not readable here "
            "(`rl-studio-engine model info CONFIG` reads any model).",
        )
    try:
        estimate = estimate_for_run(read_model_config(path), cfg, dtype)
    except (OSError, ValueError, TypeError) as exc:
        return MemoryCheck(None, device, dtype, f"No memory estimate: {path} could not be read ({exc}).")
    return MemoryCheck(estimate, device, "4bit" if cfg.model.load_in_4bit else dtype)


def recorded_memory(conn: sqlite3.Connection, run_id: int) -> tuple[float | None, float | None]:
    """(estimated, measured peak) GB a run recorded at its end (`memory/estimate_gb`, `memory/peak_gb`)."""
    values: dict[str, Any] = {}
    for key, value in conn.execute(
        "SELECT key, value FROM metrics WHERE run_id = ? AND key IN ('memory/estimate_gb', 'memory/peak_gb') "
        "ORDER BY step",
        (run_id,),
    ):
        values[key] = value
    return values.get("memory/estimate_gb"), values.get("memory/peak_gb")


def memory_note(estimate_gb: float | None, peak_gb: float | None) -> str:
    """The dashboard's line on a finished run's memory: the measured peak against the estimate."""
    if peak_gb is None:
        return ""
    if estimate_gb is None:
        return f"peak memory {_size(peak_gb)}"
    return f"peak memory {_size(peak_gb)} measured, {_size(estimate_gb)} estimated"


def _size(gb: float) -> str:
    return f"{gb:.2f} GB" if gb >= 1 else f"{gb * 1000:.0f} MB" if gb >= 0.001 else f"{gb * 1e6:.0f} kB"


def _count(n: int) -> str:
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)
