"""Loading the base model and tokenizer, and choosing the device, with messages a user can act on.

`[model] path` is one of three forms (docs/models.md): a local model folder, a `.gguf` file (transformers
dequantises it; the tokenizer comes from the same file), or a Hugging Face hub id that is already in the
local cache (runs never download: `local_files_only`). `load_in_4bit` loads the base in NF4 (QLoRA).
"""

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
    if cfg.model.load_in_4bit:
        if device != "cuda":
            raise ConfigError(
                f"[model] load_in_4bit = true needs a CUDA GPU (bitsandbytes' 4-bit kernels); this machine "
                f"trains on {device}. Set load_in_4bit = false: on CPU the model loads in float32."
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(
                "[model] load_in_4bit = true but bitsandbytes is not installed. Install it (pip install "
                "bitsandbytes), or set load_in_4bit = false."
            )
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


@dataclass(frozen=True)
class ModelSource:
    """Where `[model] path` points, as from_pretrained takes it."""

    location: str
    """A model folder, the folder of a .gguf file, or a hub id."""
    gguf_file: str | None = None
    hub: bool = False

    def kwargs(self) -> dict[str, Any]:
        """from_pretrained's arguments besides the location."""
        if self.gguf_file:
            return {"gguf_file": self.gguf_file}
        return {"local_files_only": True} if self.hub else {}

    def __str__(self) -> str:
        return str(Path(self.location) / self.gguf_file) if self.gguf_file else self.location


def hub_cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)


def model_source(cfg: RunConfig) -> ModelSource:
    """Where the model is, checked: the file, the folder, or the cached hub snapshot exists."""
    if cfg.model.path.lower().endswith(".gguf"):
        p = cfg.resolve(cfg.model.path)
        if not p.is_file():
            raise ConfigError(
                f"[model] path {p} does not exist. Point it at a .gguf file, a model folder (with "
                "config.json), or a hub id in the local cache."
            )
        if importlib.util.find_spec("gguf") is None:
            raise ConfigError(
                "[model] path is a .gguf file, and reading one needs the gguf package: pip install gguf."
            )
        return ModelSource(str(p.parent), p.name)
    if cfg.model_is_local():
        return ModelSource(_check_model_source(cfg))
    from huggingface_hub import try_to_load_from_cache

    repo = cfg.model.path
    cached = try_to_load_from_cache(repo, "config.json")
    if not isinstance(cached, str):
        raise ConfigError(
            f"[model] path {repo!r} is a Hugging Face hub id that is not in the local cache ({hub_cache_dir()}), "
            "and runs never download. Download it once where there is internet (huggingface-cli download "
            f"{repo}), copy the cache folder here, or point [model] path at a local folder or .gguf file."
        )
    return ModelSource(repo, hub=True)


def model_config_dict(cfg: RunConfig) -> dict[str, Any]:
    """The model's config.json as a dict, without loading weights (a .gguf file: from its metadata)."""
    import json

    source = model_source(cfg)
    if source.gguf_file:
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        return dict(load_gguf_checkpoint(str(source), return_tensors=False)["config"])
    if source.hub:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(source.location, "config.json")
        return dict(json.loads(Path(str(path)).read_text(encoding="utf-8")))
    return dict(json.loads((Path(source.location) / "config.json").read_text(encoding="utf-8")))


def estimate_for(cfg: RunConfig, dtype: str, prompt_tokens: int | None = None) -> Any:
    """engine.contract.memory's estimate for this run's model and settings (`dtype`: the weights')."""
    from engine.contract.memory import estimate_for_run

    return estimate_for_run(model_config_dict(cfg), cfg, dtype, prompt_tokens)


def _check_model_source(cfg: RunConfig) -> str:
    if cfg.model.path.lower().endswith(".gguf") or not cfg.model_is_local():
        return str(model_source(cfg))
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

    from engine.prompts import check_template

    source = model_source(cfg)
    try:
        tok = AutoTokenizer.from_pretrained(source.location, **source.kwargs())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Could not load the tokenizer of [model] path {str(source)!r}: {exc}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    check_template(cfg.data, tok, str(source))
    return tok


def load_model(cfg: RunConfig, plan: DevicePlan) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    source = model_source(cfg)
    kwargs = source.kwargs()
    if cfg.model.load_in_4bit:  # QLoRA: NF4 base weights, bf16 compute (plan_device checked CUDA and bnb)
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source.location, dtype=getattr(torch, plan.dtype_name), **kwargs
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Could not load the model at [model] path {str(source)!r}: {exc}") from None
    if source.gguf_file:
        plain_weights(model)
    if cfg.model.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        # fp32 norms and head, input gradients on: what LoRA on a frozen 4-bit base needs to train stably
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.training.gradient_checkpointing
        )
    check_lora_targets(cfg, model)
    return model


def plain_weights(model: Any) -> None:
    """Forget that a model came from a GGUF file. transformers dequantises every tensor to the dtype asked
    for, yet leaves the model marked GGUF-quantised, which its Trainer refuses to train ("quantization
    method do not support training") and save_pretrained writes into config.json (vLLM then refuses it)."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


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
