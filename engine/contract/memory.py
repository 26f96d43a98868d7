"""Peak memory of a run, estimated before anything is loaded (stdlib only: the studio's launcher calls it).

The estimate reads the model's config.json (hidden size, layers, vocabulary, MLP width, attention and
key/value heads) and the run's settings, and adds up what a LoRA GRPO/PPO step holds at its peak:

- weights: every base parameter at the weights dtype (4 bits + a small quantisation overhead with QLoRA);
- LoRA: the adapter's parameters in fp32, their gradients, and AdamW's two moments (16 bytes each);
- activations: what backpropagation keeps per token of the training batch (prompt + completion tokens of
  prompts_per_step x num_generations sequences), about 34 x hidden bytes per layer at 16 bits (Korthikanti
  et al. 2022, without sequence parallelism), 2 x hidden with gradient checkpointing, plus the fp32 logits
  of the whole vocabulary (computed in chunks by neither TRL nor transformers, so counted whole);
- generation: the key/value cache of the batch at its longest (2 x layers x kv heads x head dim per token).

A rough figure by construction (allocator fragmentation, CUDA context and kernels' workspaces are not
modelled; docs/models.md gives its accuracy on measured runs); the engine records the measured peak next
to it at the end of a run (`memory/peak_gb`, `memory/estimate_gb`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GB = 1e9
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "4bit": 0.5 + 0.0625}
"""Bytes per weight; NF4 stores 4 bits plus one fp8/fp32 absmax per 64-weight block (double quantised)."""

LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied_embeddings: bool
    qkv_bias: bool = False
    """Biases on the query, key and value projections (Qwen2's, or a config's attention_bias)."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        c = config.get("text_config") or config  # multimodal configs nest the language model's
        hidden = int(c.get("hidden_size") or c.get("n_embd") or c.get("d_model") or 0)
        heads = int(c.get("num_attention_heads") or c.get("n_head") or 1)
        if not hidden:
            raise ValueError("config.json has no hidden_size (or n_embd / d_model)")
        return cls(
            hidden=hidden,
            layers=int(c.get("num_hidden_layers") or c.get("n_layer") or 0),
            vocab=int(c.get("vocab_size") or 0),
            intermediate=int(c.get("intermediate_size") or c.get("n_inner") or 4 * hidden),
            heads=heads,
            kv_heads=int(c.get("num_key_value_heads") or heads),
            head_dim=int(c.get("head_dim") or hidden // heads),
            tied_embeddings=bool(c.get("tie_word_embeddings", True)),
            qkv_bias=bool(c.get("attention_bias", c.get("model_type") == "qwen2")),
        )

    def module_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each per-layer linear layer, by name."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, q),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }

    def parameters(self) -> int:
        per_layer = sum(i * o for i, o in self.module_shapes().values()) + 2 * self.hidden  # + 2 norms
        if self.qkv_bias:
            per_layer += (self.heads + 2 * self.kv_heads) * self.head_dim
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return per_layer * self.layers + embeddings + self.hidden


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    lora_parameters: int
    weights_gb: float
    lora_gb: float
    activations_gb: float
    logits_gb: float
    kv_cache_gb: float
    total_gb: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lora_parameters(shape: ModelShape, rank: int, targets: list[str]) -> int:
    modules = shape.module_shapes()
    names = list(modules) if targets == ["all-linear"] else [t for t in targets if t in modules]
    return shape.layers * sum(rank * (modules[n][0] + modules[n][1]) for n in names)


def estimate(
    config: dict[str, Any],
    *,
    dtype: str = "bfloat16",
    load_in_4bit: bool = False,
    lora_rank: int = 16,
    lora_targets: list[str] | None = None,
    sequences: int = 32,
    prompt_tokens: int = 256,
    completion_tokens: int = 256,
    gradient_checkpointing: bool = False,
) -> MemoryEstimate:
    """Peak memory of one LoRA training step on the model `config` (a parsed config.json), in GB (1e9).
    `sequences` is the training batch (prompts_per_step x num_generations); `dtype` the weights' dtype."""
    shape = ModelShape.from_config(config)
    params = shape.parameters()
    weight_bytes = BYTES["4bit"] if load_in_4bit else BYTES.get(dtype, 4)
    if load_in_4bit:  # embeddings, norms and the output head stay in 16 bits
        embedding = shape.vocab * shape.hidden * (1 if shape.tied_embeddings else 2)
        weights = (params - embedding) * weight_bytes + embedding * 2
    else:
        weights = params * weight_bytes
    adapter = lora_parameters(shape, lora_rank, lora_targets or ["q_proj", "k_proj", "v_proj", "o_proj"])
    lora = adapter * (4 + 4 + 8)  # fp32 weights, gradients, AdamW's two moments
    tokens = sequences * (prompt_tokens + completion_tokens)
    act_bytes = 2 if load_in_4bit or dtype in ("bfloat16", "float16") else 4
    per_token_layer = (2 if gradient_checkpointing else 34) * shape.hidden * act_bytes / 2
    activations = tokens * shape.layers * per_token_layer
    logits = tokens * shape.vocab * 4 * 2  # fp32 logits and their log-softmax
    kv_cache = sequences * (prompt_tokens + completion_tokens) * 2 * shape.layers * shape.kv_heads
    kv_cache *= shape.head_dim * act_bytes
    total = weights + lora + activations + logits + kv_cache
    return MemoryEstimate(
        parameters=params,
        lora_parameters=adapter,
        weights_gb=weights / GB,
        lora_gb=lora / GB,
        activations_gb=activations / GB,
        logits_gb=logits / GB,
        kv_cache_gb=kv_cache / GB,
        total_gb=total / GB,
    )


def estimate_for_run(
    config: dict[str, Any], cfg: Any, dtype: str, prompt_tokens: int | None = None
) -> MemoryEstimate:
    """`estimate` with a RunConfig's settings (`dtype`: the resolved one, e.g. from the device plan).
    Without `prompt_tokens`, training's max_prompt_length, or 256 when that is 0."""
    t = cfg.training
    return estimate(
        config,
        dtype=dtype,
        load_in_4bit=cfg.model.load_in_4bit,
        lora_rank=cfg.lora.r,
        lora_targets=list(cfg.lora.target_modules),
        sequences=t.prompts_per_step * t.num_generations,
        prompt_tokens=prompt_tokens or t.max_prompt_length or 256,
        completion_tokens=t.max_completion_length,
        gradient_checkpointing=t.gradient_checkpointing,
    )


def read_model_config(path: str | Path) -> dict[str, Any]:
    """config.json of a model folder (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{p} is not a JSON object")
    return data
