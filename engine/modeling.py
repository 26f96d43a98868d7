"""Loading the base model and tokenizer, and choosing the device, with messages a user can act on."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contract.config import ConfigError, RunConfig


@dataclass
class DevicePlan:
    device: str  # "cpu" | "cuda" | "mps"
    dtype_name: str  # "float32" | "bfloat16" | "float16"

    @property
    def bf16(self) -> bool:
        return self.dtype_name == "bfloat16"

    @property
    def fp16(self) -> bool:
        return self.dtype_name == "float16"


def plan_device(cfg: RunConfig) -> DevicePlan:
    import torch

    wanted = cfg.training.device
    if wanted == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = wanted
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            '[training] device = "cuda" but no CUDA GPU is visible to PyTorch. '
            'Use device = "auto" or "cpu", or install a CUDA build of torch.'
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError('[training] device = "mps" but Apple MPS is not available. Use "auto" or "cpu".')
    dtype = cfg.model.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if device == "cpu" and dtype != "float32":
        dtype = "float32"  # half precision training on CPU is slow and unstable; keep it simple and exact
    if cfg.generation.use_vllm:
        if device != "cuda":
            raise ConfigError(
                "[generation] use_vllm = true needs a CUDA GPU; this machine trains on "
                f"{device}. Set use_vllm = false."
            )
        if importlib.util.find_spec("vllm") is None:
            raise ConfigError(
                "[generation] use_vllm = true but vLLM is not installed. Install the GPU extra: "
                "pip install 'rl-studio[gpu]', or set use_vllm = false."
            )
    return DevicePlan(device, dtype)


def _check_model_source(cfg: RunConfig) -> str:
    source = cfg.resolved_model()
    if cfg.model_is_local():
        p = Path(source)
        if not p.exists():
            raise ConfigError(
                f"[model] path {p} does not exist. Point it at a model directory (with config.json) "
                "or use a hub id such as Qwen/Qwen2.5-0.5B-Instruct."
            )
        if not (p / "config.json").is_file():
            raise ConfigError(
                f"[model] path {p} has no config.json, so it is not a transformers model directory."
            )
    return source


def load_tokenizer(cfg: RunConfig) -> Any:
    from transformers import AutoTokenizer

    source = _check_model_source(cfg)
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ConfigError(
            f"Could not load the tokenizer of [model] path {source!r}: {exc}. On a machine without internet, "
            "use a local directory."
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: RunConfig, plan: DevicePlan) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    source = _check_model_source(cfg)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, plan.dtype_name))
    except OSError as exc:
        raise ConfigError(
            f"Could not load the model at [model] path {source!r}: {exc}. On a machine without internet, "
            "use a local directory."
        ) from None
    check_lora_targets(cfg, model)
    return model


# Layer types PEFT's LoRA adapts by name: torch's Linear and transformers' Conv1D (GPT-2's projections).
_ADAPTABLE = ("Linear", "Conv1D")


def linear_module_names(model: Any) -> list[str]:
    """The distinct last name parts of the model's linear layers (q_proj, c_attn, lm_head...), sorted."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if name and type(module).__name__ in _ADAPTABLE
    }
    return sorted(names)


def check_lora_targets(cfg: RunConfig, model: Any) -> None:
    """Refuse `[lora] target_modules` entries that name no module of this model, before a trainer is built
    (PEFT raises a traceback when none matches, and silently skips an entry when another one matches)."""
    targets = cfg.lora.target_modules
    if targets == ["all-linear"]:
        return
    module_names = [name for name, _ in model.named_modules() if name]
    missing = [
        key for key in targets if not any(name == key or name.endswith("." + key) for name in module_names)
    ]
    if missing:
        which = ", ".join(repr(key) for key in missing)
        linear = ", ".join(linear_module_names(model)) or "none"
        raise ConfigError(
            f"[lora] target_modules: {which} match{'es' if len(missing) == 1 else ''} no module of the model "
            f"at {cfg.resolved_model()}. Its linear layers are named: {linear}. Use some of those names, "
            'or target_modules = ["all-linear"].'
        )


def context_tokens(cfg: RunConfig) -> int | None:
    """The model's context window in tokens, read from a local model's config.json without loading it;
    None for a hub id or a config that does not say."""
    import json

    if not cfg.model_is_local():
        return None
    try:
        config = json.loads((Path(cfg.resolved_model()) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    sources = [config, config.get("text_config") or {}]  # multimodal configs nest the language model's
    for source in sources:
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


SMALL_MODEL_PARAMS = 20_000_000


def set_cpu_threads(cfg: RunConfig, plan: DevicePlan, model: Any) -> int | None:
    """On CPU, pick the thread count: small models train several times faster on one thread (measured on
    the demo: 150 steps in 23 s with 1 thread, 26 to 208 s with 2 on a busy 2-core machine)."""
    import torch

    if plan.device != "cpu":
        return None
    threads = cfg.training.cpu_threads
    if threads == 0:
        params = sum(p.numel() for p in model.parameters())
        threads = 1 if params < SMALL_MODEL_PARAMS else torch.get_num_threads()
    torch.set_num_threads(threads)
    return threads
