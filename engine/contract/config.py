"""Run configuration: plain dataclasses whose fields carry their own help text.

The run config is a TOML file. Relative paths in it are resolved against the file's folder, so a
config and its data can be moved together. Validation happens at load time and every error names the
offending key and says how to fix it; the studio's launcher calls the same validation before launch.

No heavy imports here: the studio imports this module.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ALGORITHMS = ("grpo", "ppo")
"""The algorithms this engine trains with: GRPO around trl.GRPOTrainer, PPO our own (engine/algos/ppo.py;
TRL 1.16 has none). Keys marked PPO: are read by PPO only."""
KL_ESTIMATORS = ("k1", "k3")
SAMPLING = ("uniform", "difficulty")
DEVICES = ("auto", "cpu", "cuda", "mps")
CHAT_TEMPLATE_MODES = ("auto", "always", "never")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
"""Every loss_type TRL 1.16's GRPOTrainer computes (trl/trainer/grpo_trainer.py, `_compute_loss`)."""
SCALE_REWARDS = ("group", "batch", "none")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")


class ConfigError(ValueError):
    """A run config value is wrong. The message names the key and how to fix it."""


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class ModelConfig:
    path: str = _help(
        "Base model: a local directory with config.json and weights, a .gguf file (dequantised on load; "
        "the tokenizer comes from the same file), or a Hugging Face hub id (for example "
        "Qwen/Qwen2.5-0.5B-Instruct) already in the local Hugging Face cache: runs never download. "
        "Relative paths are resolved against the config file. docs/models.md.",
        default="",
    )
    dtype: str = _help(
        "Weights dtype: auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16 or float16.", default="auto"
    )
    load_in_4bit: bool = _help(
        "QLoRA: load the base weights in 4 bits (bitsandbytes NF4, bf16 compute) and train LoRA on top. "
        "Needs a CUDA GPU and the bitsandbytes package; about a quarter of the weights' bf16 memory.",
        default=False,
    )


@dataclass
class DataConfig:
    train: str = _help(
        "Training prompts as JSONL: one object per line with a 'prompt' (a string or a message list) "
        "and any columns the rubric reads (for example 'answer').",
        default="",
    )
    eval: str = _help(
        "Held-out prompts as JSONL (same shape as train), scored before training, every "
        "eval_every steps and at the end. Empty to skip evaluation.",
        default="",
    )
    eval_limit: int = _help("Evaluate on at most this many held-out prompts (0 = all).", default=0)
    max_prompt_chars: int = _help(
        "Refuse a dataset whose prompt is longer than this many characters, naming its file and line, "
        "before anything is tokenised (0 = automatic: 8 characters per token of the model's context "
        "window, read from its config.json, or 100000 when that is unknown).",
        default=0,
    )
    chat_template: str = _help(
        "Whether a plain string prompt is wrapped as a user turn in the tokenizer's chat template: auto "
        "(when the tokenizer has one), always (refuse a tokenizer without one), never (the string as it "
        "is). Message-list prompts always go through the template. `rl-studio-engine data check` shows "
        "the exact text the model sees.",
        default="auto",
    )
    system_prompt: str = _help(
        "A system message put before each wrapped prompt (and before message-list prompts that have no "
        "system message of their own). Empty = none.",
        default="",
    )
    chat_template_kwargs: dict[str, Any] = _help(
        "Extra variables for the chat template, as a table, for example { enable_thinking = false } "
        "(Qwen3). Passed to TRL's chat_template_kwargs and to evaluation's rendering alike.",
        default_factory=dict,
    )
    sampling: str = _help(
        "GRPO: how training prompts are drawn. uniform: every prompt alike, in shuffled order. difficulty: "
        "weighted by each prompt's current failure rate (a running estimate per prompt from its recorded "
        "groups; unseen prompts count 0.5), so unsolved prompts come up more often (docs/evaluation.md).",
        default="uniform",
    )
    skip_zero_variance: bool = _help(
        "GRPO: draw another prompt in place of one whose latest group's completions all scored the same "
        "(such a group has no GRPO signal: every advantage is 0). Skipped prompts still come back now and "
        "then, so a change is noticed.",
        default=False,
    )


@dataclass
class RubricRef:
    path: str = _help("The rubric TOML file whose total reward the run optimises.", default="")


@dataclass
class LoraSettings:
    r: int = _help("LoRA rank: the size of the low-rank update. 8-64 is typical.", default=16)
    alpha: int = _help("LoRA alpha: the update is scaled by alpha / r. Often 2 x r.", default=32)
    dropout: float = _help("Dropout on the LoRA branch, in [0, 1).", default=0.0)
    target_modules: list[str] = _help(
        "Module names LoRA adapts, for example q_proj, k_proj, v_proj, o_proj; "
        "'all-linear' adapts every linear layer but the output head.",
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
    )


@dataclass
class TrainingConfig:
    max_steps: int = _help("Optimizer steps to train for.", default=200)
    learning_rate: float = _help("Peak learning rate of the LoRA parameters (AdamW).", default=1e-4)
    lr_scheduler: str = _help("Learning-rate schedule: constant, linear or cosine.", default="constant")
    warmup_steps: int = _help("Linear warm-up steps at the start of training.", default=0)
    num_generations: int = _help(
        "Completions sampled per prompt (the GRPO group size). At least 2 for GRPO, whose advantage "
        "compares completions of the same prompt; PPO, which learns a value instead, takes 1 or more.",
        default=8,
    )
    prompts_per_step: int = _help("Distinct prompts per optimizer step.", default=4)
    max_completion_length: int = _help("Maximum new tokens per completion.", default=32)
    temperature: float = _help("Sampling temperature for training rollouts and evaluation.", default=1.0)
    top_p: float = _help("Nucleus sampling threshold in (0, 1].", default=1.0)
    beta: float = _help(
        "KL penalty coefficient against the reference model (0 disables the reference model).", default=0.0
    )
    epsilon: float = _help("Clipping range of the policy ratio.", default=0.2)
    max_grad_norm: float = _help("Gradient clipping norm (0 turns clipping off).", default=1.0)
    seed: int = _help("Random seed for data order, sampling and initialisation (0 to 4294967295).", default=0)
    eval_every: int = _help(
        "Evaluate on the held-out split every N steps (0 = only before and after).", default=0
    )
    checkpoint_every: int = _help("Write a resumable checkpoint every N steps.", default=50)
    keep_checkpoints: int = _help(
        "How many complete checkpoints to keep (older ones are deleted).", default=3
    )
    log_every: int = _help("Record metrics every N steps.", default=1)
    device: str = _help("auto (CUDA when present, else CPU), cpu, cuda or mps.", default="auto")
    cpu_threads: int = _help(
        "Threads for CPU training (0 = automatic: 1 for small models, whose tiny matrix products run "
        "slower when threads wait on each other; PyTorch's default for larger ones).",
        default=0,
    )
    gradient_checkpointing: bool = _help(
        "Trade compute for memory by recomputing activations (useful on large models, slower).", default=False
    )
    record_token_stats: bool = _help(
        "Record each rollout's tokens with their log-prob under the sampling policy, entropy, share of the "
        "loss and KL against the reference (beta > 0), for the inspector's token heat map. GRPO pays one "
        "no-grad forward pass over the batch for it; PPO has them already. In an agent run the tool results' "
        "tokens are shown but carry no statistics (the model did not sample them).",
        default=True,
    )
    # GRPO: TRL 1.16 GRPOConfig's own knobs, under its names and with its defaults (docs/engine.md).
    loss_type: str = _help(
        "GRPO: how token losses are aggregated (TRL's loss_type): dapo (TRL's default: normalised by the "
        "active tokens of the accumulated batch), grpo (per-sequence mean; length-biased), dr_grpo "
        "(a constant, max_completion_length), bnpo (tokens of the local batch), cispo (clipped IS "
        "weights, MiniMax-M1), sapo (soft gate instead of clipping), luspo (length-unbiased GSPO; needs "
        "importance_sampling_level = sequence), vespo (soft sequence-level weighting; token level).",
        default="dapo",
    )
    scale_rewards: str = _help(
        "GRPO: advantages are divided by the reward standard deviation of the group (group, TRL's "
        "default), of the whole batch (batch), or not at all (none, as Dr. GRPO recommends).",
        default="group",
    )
    num_iterations: int = _help(
        "GRPO: optimisation passes over each generated batch (TRL's mu). Above 1, the policy ratio and "
        "epsilon clipping come into play.",
        default=1,
    )
    importance_sampling_level: str = _help(
        "GRPO: the policy ratio per token (token, GRPO) or one per sequence (sequence, GSPO).",
        default="token",
    )
    mask_truncated_completions: bool = _help(
        "GRPO: leave completions cut off at max_completion_length out of the loss (DAPO).", default=False
    )
    top_k: int = _help(
        "Sample only from the k most likely tokens (0 = no limit). Training and evaluation.", default=0
    )
    min_p: float = _help(
        "Sample only tokens at least min_p times as likely as the most likely one (0 = off; 0.05-0.1 is "
        "typical). Training and evaluation.",
        default=0.0,
    )
    repetition_penalty: float = _help(
        "Divide the logits of tokens already in the prompt or completion by this (1.0 = none; above 1 "
        "discourages repetition). Training and evaluation.",
        default=1.0,
    )
    max_prompt_length: int = _help(
        "The longest prompt, in tokens of the rendered prompt, a run accepts: `data check` warns about "
        "longer ones and a run refuses them, naming file and line (0 = no limit). TRL 1.16 no longer "
        "truncates prompts, since a cut chat template is a broken prompt.",
        default=0,
    )
    gradient_accumulation_steps: int = _help(
        "GRPO: micro-batches of prompts_per_step x num_generations completions accumulated into one "
        "optimizer step; an optimizer step then trains on this many times as many prompts.",
        default=1,
    )
    generation_batch_size: int = _help(
        "GRPO: completions generated at once (TRL's generation_batch_size); 0 = TRL's default, one "
        "generation per optimizer step (prompts_per_step x num_generations x gradient_accumulation_steps). "
        "A multiple of prompts_per_step x num_generations.",
        default=0,
    )
    top_entropy_quantile: float = _help(
        "GRPO: train only on the tokens whose policy entropy is in this top quantile (1.0 = every token; "
        "0.2 as in 'Beyond the 80/20 rule').",
        default=1.0,
    )
    entropy_coef: float = _help(
        "GRPO: weight of an entropy bonus in the loss (0 = none). With use_adaptive_entropy, its start.",
        default=0.0,
    )
    use_adaptive_entropy: bool = _help(
        "GRPO: adapt entropy_coef each step toward entropy_target (Skywork-OR1).", default=False
    )
    entropy_coef_min: float = _help("GRPO: lower bound of the adaptive entropy coefficient.", default=0.0)
    entropy_coef_max: float = _help("GRPO: upper bound of the adaptive entropy coefficient.", default=1.0)
    entropy_coef_delta: float = _help(
        "GRPO: how much the adaptive entropy coefficient moves per optimizer step.", default=0.005
    )
    entropy_target: float = _help(
        "GRPO: the per-token entropy (nats) below which adaptive entropy control applies its bonus.",
        default=0.2,
    )
    # PPO-only knobs; ignored by GRPO.
    vf_coef: float = _help("PPO: weight of the value loss.", default=0.1)
    gamma: float = _help("PPO: discount factor for GAE.", default=1.0)
    lam: float = _help("PPO: GAE lambda.", default=0.95)
    ppo_epochs: int = _help("PPO: optimisation passes over each batch of rollouts.", default=1)
    target_kl: float = _help(
        "PPO: the adaptive KL controller's target, in nats per completion (Ziegler et al. 2019): the KL "
        "coefficient, starting at beta, grows when the policy drifts further than this from the reference "
        "and shrinks when it stays closer. 0 keeps beta fixed; with a target, beta must be above 0.",
        default=0.0,
    )
    kl_horizon: int = _help(
        "PPO: the adaptive KL controller's horizon in completions: how fast the coefficient follows the "
        "target (each step moves it by at most 20% x completions per step / horizon).",
        default=10000,
    )
    kl_estimator: str = _help(
        "PPO: per-token KL estimator of the penalty against the reference: k1 (log-ratio; unbiased, can "
        "be negative per token) or k3 (ratio - 1 - log-ratio; non-negative, lower variance).",
        default="k1",
    )
    missing_eos_penalty: float = _help(
        "PPO: subtracted from the rubric's total when a completion ends without an end-of-sequence token "
        "(cut off at max_completion_length). 0 disables it.",
        default=0.0,
    )
    num_minibatches: int = _help(
        "PPO: minibatches each step's rollouts are split into; each PPO epoch takes one optimizer step "
        "per minibatch. At most prompts_per_step x num_generations.",
        default=1,
    )
    cliprange_value: float = _help(
        "PPO: clipping range of the value prediction around its rollout-time value (value clipping).",
        default=0.2,
    )
    whiten_advantages: bool = _help(
        "PPO: normalise advantages to mean 0, std 1 over the step's completion tokens.", default=True
    )


@dataclass
class GenerationConfig:
    use_vllm: bool = _help(
        "Generate with vLLM (colocated on the training GPU). Needs a CUDA GPU and the 'gpu' extra: "
        "pip install 'rl-studio[gpu]'.",
        default=False,
    )
    vllm_gpu_memory_utilization: float = _help(
        "Fraction of GPU memory vLLM may take for weights and KV cache.", default=0.3
    )


@dataclass
class EvalConfig:
    """Held-out evaluation beyond one sample per prompt: pass@k, mean@n and greedy pass@1 (docs/evaluation.md).
    The defaults (one sample, no greedy pass) keep evaluation as fast as it ever was."""

    eval_samples: int = _help(
        "Completions sampled per held-out prompt (n). pass@k and mean@n are computed over them. In an agent "
        "run (with [environment]): episodes played per held-out task; success is their mean.",
        default=1,
    )
    pass_k: list[int] = _help(
        "The k of each pass@k reported (the unbiased estimator of Chen et al. 2021), each between 1 and "
        "eval_samples; for example [1, 4] with eval_samples = 8.",
        default_factory=lambda: [1],
    )
    eval_greedy: bool = _help(
        "Also generate one greedy (temperature 0) completion per held-out prompt and report greedy pass@1.",
        default=False,
    )
    correctness: str = _help(
        "The criterion that says whether a completion passes (for pass@k and for difficulty sampling). "
        "Empty = the first criterion with weight > 0 named like correct, accuracy or success; a rubric "
        "with none passes a completion whose total is above pass_threshold.",
        default="",
    )
    pass_threshold: float = _help(
        "A completion passes when the correctness criterion scores at least this (or, without one, when "
        "its total is above it).",
        default=0.5,
    )


BUILTIN_ENVIRONMENTS = ("file_manager",)
"""Environments shipped with the engine, named in a config as builtin:NAME (engine/envs/)."""


@dataclass
class EnvironmentConfig:
    path: str = _help(
        "The agent environment: a Python class in TRL's environment_factory convention, as "
        "FILE.py:ClassName (relative to the config file; for example envs/file_manager.py:FileManagerEnv) "
        "or builtin:NAME (builtin:file_manager). reset(**row) gets the dataset row and returns the task "
        "text or None; its public methods with type hints and docstrings are the tools; get_reward() the "
        "outcome. docs/agents.md.",
        default="",
    )
    max_turns: int = _help(
        "The most tool-calling rounds per rollout (TRL's max_tool_calling_iterations): after this many, "
        "the model's last message ends the episode.",
        default=8,
    )
    tool_timeout: float = _help(
        "Seconds one tool call (or get_reward) may take before the environment's process is killed, "
        "the call fails with a timeout the model sees, and a fresh process takes over.",
        default=5.0,
    )


MONITOR_ACTIONS = ("warn", "pause")


@dataclass
class MonitorConfig:
    """Tripwires during training (engine/monitor.py, docs/monitor.md): detectors of reward hacking and
    unhealthy training, evaluated at every step from what the run records. The defaults never fire on
    the honest demo run."""

    enabled: bool = _help("Evaluate the detectors at every step.", default=True)
    action: str = _help(
        "What an alert does besides being recorded and shown: warn (nothing more) or pause (pause the run; "
        "resume it from the studio or with the resume command).",
        default="warn",
    )
    correctness: str = _help(
        "The criterion that says whether an answer is right, for the held-out divergence and criterion "
        "dominance detectors. Empty = [eval] correctness, else the first criterion named like correct, "
        "accuracy, exact_match, success or pass.",
        default="",
    )
    baseline_steps: int = _help(
        "The first steps of the run whose means are the early-run baselines (length, truncation, cheat "
        "shapes, entropy, criteria).",
        default=10,
    )
    window: int = _help("Recent steps averaged before a value is compared with its baseline.", default=10)
    divergence_evals: int = _help(
        "Proxy vs held-out: consecutive held-out evaluations over which the training reward rises while "
        "the held-out score stays flat or falls.",
        default=3,
    )
    divergence_rise: float = _help(
        "Proxy vs held-out: how much the mean training reward must rise across those evaluations.",
        default=0.1,
    )
    divergence_tolerance: float = _help(
        "Proxy vs held-out: a held-out change from one evaluation to the next at most this big counts as flat.",
        default=0.02,
    )
    length_ratio: float = _help(
        "Length drift: mean completion length at least this many times its early-run baseline (with reward "
        "correlating with length inside groups, see length_correlation).",
        default=2.0,
    )
    length_correlation: float = _help(
        "Length drift: how much reward must correlate with completion length inside groups (the mean "
        "Pearson r of the recent steps' groups) for a long drift to count.",
        default=0.5,
    )
    dominance_rise: float = _help(
        "Criterion dominance: how much the total reward must rise over its baseline.", default=0.1
    )
    dominance_share: float = _help(
        "Criterion dominance: the share of that rise one criterion (weight x change) must account for.",
        default=0.8,
    )
    dominance_fall: float = _help(
        "Criterion dominance: how much the weighted correctness criterion must fall meanwhile.", default=0.05
    )
    entropy_ratio: float = _help(
        "Entropy collapse: policy entropy at most this fraction of its early-run baseline.", default=0.05
    )
    kl_spike: float = _help(
        "KL spike: KL at a step at least this many times its rolling mean over the previous kl_window steps.",
        default=5.0,
    )
    kl_window: int = _help("KL spike: steps in the rolling mean.", default=10)
    kl_min: float = _help(
        "KL spike: a KL below this never counts as a spike (tiny KLs jump by large factors).", default=0.05
    )
    truncation_rise: float = _help(
        "Truncation: rise of the fraction of completions cut off at max_completion_length over its baseline.",
        default=0.3,
    )
    cheat_rise: float = _help(
        "Cheat shapes: rise of the fraction of rollouts shaped like a red-team cheat (echoed prompt, stuffed "
        "answers, format only, padding, repetition, empty, judge injection) over its baseline.",
        default=0.25,
    )
    cooldown_steps: int = _help(
        "After an alert, the same detector stays quiet for this many steps.", default=50
    )


@dataclass
class RunConfig:
    algorithm: str = _help("grpo or ppo.", default="grpo")
    name: str = _help("A name for runs made from this config (the CLI's --name overrides it).", default="")
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rubric: RubricRef = field(default_factory=RubricRef)
    lora: LoraSettings = field(default_factory=LoraSettings)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    environment: EnvironmentConfig | None = field(
        default=None,
        metadata={"help": "Optional [environment]: train an agent with tools (multi-turn). Absent: none."},
    )
    base_dir: str = field(default="", metadata={"help": "Folder relative paths are resolved against."})

    def __post_init__(self) -> None:
        validate(self)

    # ---- paths ---------------------------------------------------------------------------------
    def resolve(self, value: str) -> Path:
        """A path from the config, made absolute against the config's folder."""
        p = Path(value).expanduser()
        if not p.is_absolute() and self.base_dir:
            p = Path(self.base_dir) / p
        return p

    def model_is_local(self) -> bool:
        p = self.resolve(self.model.path)
        return p.exists() or self.model.path.startswith((".", "/", "~")) or self.model.path.count("/") > 1

    def resolved_model(self) -> str:
        return str(self.resolve(self.model.path)) if self.model_is_local() else self.model.path

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self, absolute_paths: bool = False) -> str:
        d = self.to_dict()
        d.pop("base_dir")
        if d.get("environment") is None:
            d.pop("environment", None)
        if absolute_paths:
            d["model"]["path"] = self.resolved_model()
            for key in ("train", "eval"):
                if d["data"][key]:
                    d["data"][key] = str(self.resolve(d["data"][key]))
            if d["rubric"]["path"]:
                d["rubric"]["path"] = str(self.resolve(d["rubric"]["path"]))
            env = d.get("environment")
            if env and not env["path"].startswith("builtin:"):
                file_part, _, class_name = env["path"].rpartition(":")
                env["path"] = f"{self.resolve(file_part)}:{class_name}"
        return dumps_toml(d)


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "rubric": RubricRef,
    "lora": LoraSettings,
    "training": TrainingConfig,
    "generation": GenerationConfig,
    "monitor": MonitorConfig,
    "eval": EvalConfig,
}


OPTIONAL_SECTIONS: dict[str, type] = {"environment": EnvironmentConfig}
"""Sections a config may leave out entirely: absent, the run has none (None on RunConfig)."""


def field_help(section: str, key: str) -> str:
    """Help text of a config key, for tooltips and error messages."""
    cls = SECTIONS.get(section) or OPTIONAL_SECTIONS.get(section, RunConfig)
    for f in fields(cls):
        if f.name == key:
            return str(f.metadata.get("help", ""))
    return ""


def _coerce(section: str, key: str, value: Any, expected: Any) -> Any:
    where = f"[{section}] {key}" if section else key
    kind = expected if isinstance(expected, type) else type(expected)
    if isinstance(expected, list) and expected and all(isinstance(v, int) for v in expected):
        return _int_list(where, value, field_help(section, key))
    if isinstance(expected, list) or kind is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, got {value!r}. {field_help(section, key)}")
        return value
    if kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}. {field_help(section, key)}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}.")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r}. {field_help(section, key)}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}. {field_help(section, key)}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}. {field_help(section, key)}")
        return value
    return value


def _int_list(where: str, value: Any, help_text: str) -> list[int]:
    """A list of whole numbers; the launcher's text fields give them as strings ("1, 4")."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, str) and item.strip().isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int):
            raise ConfigError(f"{where} must be a list of whole numbers, got {value!r}. {help_text}")
        out.append(item)
    return out


def _build(section: str, cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{section}] must be a table of keys, got {data!r}.")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            hint = ", ".join(sorted(known))
            raise ConfigError(f"Unknown key [{section}] {key}. Known keys in [{section}]: {hint}.")
        f = known[key]
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        kwargs[key] = _coerce(section, key, value, default)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], base_dir: str | Path = "") -> RunConfig:
    data = dict(data)
    parts: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        parts[section] = _build(section, cls, data.pop(section, {}))
    for section, cls in OPTIONAL_SECTIONS.items():
        value = data.pop(section, None)
        if value is not None:  # a stored config (to_dict) holds an absent optional section as None
            parts[section] = _build(section, cls, value)
    top: dict[str, Any] = {"algorithm": "grpo", "name": ""}
    for key in list(data):
        if key not in top:
            known = ", ".join(["algorithm", "name", *(f"[{s}]" for s in [*SECTIONS, *OPTIONAL_SECTIONS])])
            raise ConfigError(f"Unknown top-level key {key!r}. Known: {known}.")
        top[key] = _coerce("", key, data.pop(key), "")
    return RunConfig(**top, **parts, base_dir=str(base_dir))


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a run config TOML file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"Run config {p} does not exist. Pass the path of a .toml run config.")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p} is not valid TOML: {exc}. Fix the syntax at that line.") from None
    try:
        return config_from_dict(data, base_dir=p.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def validate(cfg: RunConfig) -> None:
    """Check every value; raise ConfigError naming the key and the fix."""
    t, lora = cfg.training, cfg.lora
    if cfg.algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {cfg.algorithm!r}.")
    if not cfg.model.path:
        raise ConfigError("[model] path is empty. Set it to a local model directory or a hub id.")
    if cfg.model.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ConfigError(
            f"[model] dtype must be auto, float32, bfloat16 or float16, got {cfg.model.dtype!r}."
        )
    if not cfg.data.train:
        raise ConfigError("[data] train is empty. Set it to a JSONL file of prompts.")
    if not cfg.rubric.path:
        raise ConfigError("[rubric] path is empty. Set it to a rubric TOML file.")
    _validate_numbers(cfg)
    positive_ints = {
        "max_steps": t.max_steps,
        "prompts_per_step": t.prompts_per_step,
        "max_completion_length": t.max_completion_length,
        "log_every": t.log_every,
        "keep_checkpoints": t.keep_checkpoints,
        "ppo_epochs": t.ppo_epochs,
        "num_minibatches": t.num_minibatches,
        "kl_horizon": t.kl_horizon,
    }
    for key, value in positive_ints.items():
        if value < 1:
            raise ConfigError(
                f"[training] {key} must be at least 1, got {value}. {field_help('training', key)}"
            )
    if cfg.algorithm == "ppo":
        _validate_ppo(t)
        if cfg.environment is not None:
            raise ConfigError(
                "[environment] trains agents with GRPO only: PPO generates single-turn completions and would "
                'ignore the tools. Use algorithm = "grpo", or remove the [environment] section.'
            )
    elif t.num_generations < 2:
        raise ConfigError(
            f"[training] num_generations must be at least 2, got {t.num_generations}: GRPO compares "
            "completions of the same prompt. Use 4-16."
        )
    for key in ("eval_every", "checkpoint_every", "warmup_steps", "cpu_threads"):
        if getattr(t, key) < 0:
            raise ConfigError(f"[training] {key} must be 0 or more, got {getattr(t, key)}.")
    if not (t.learning_rate > 0 and math.isfinite(t.learning_rate)):
        raise ConfigError(f"[training] learning_rate must be a positive number, got {t.learning_rate}.")
    if t.learning_rate > 0.1:
        raise ConfigError(
            f"[training] learning_rate {t.learning_rate} is far too high for LoRA; use 1e-5 to 1e-3."
        )
    if t.lr_scheduler not in ("constant", "linear", "cosine"):
        raise ConfigError(
            f"[training] lr_scheduler must be constant, linear or cosine, got {t.lr_scheduler!r}."
        )
    if not t.temperature > 0:
        raise ConfigError(f"[training] temperature must be above 0, got {t.temperature}. Use 0.7-1.0.")
    if not 0 < t.top_p <= 1:
        raise ConfigError(f"[training] top_p must be in (0, 1], got {t.top_p}.")
    if t.beta < 0:
        raise ConfigError(f"[training] beta must be 0 or more, got {t.beta}.")
    if not 0 < t.epsilon < 1:
        raise ConfigError(f"[training] epsilon must be in (0, 1), got {t.epsilon}. 0.2 is typical.")
    if t.device not in DEVICES:
        raise ConfigError(f"[training] device must be one of {', '.join(DEVICES)}, got {t.device!r}.")
    if not 0 <= t.gamma <= 1 or not 0 <= t.lam <= 1:
        raise ConfigError("[training] gamma and lam must be in [0, 1].")
    if lora.r < 1:
        raise ConfigError(f"[lora] r must be at least 1, got {lora.r}. 8-64 is typical.")
    if lora.alpha < 1:
        raise ConfigError(f"[lora] alpha must be at least 1, got {lora.alpha}. Often 2 x r.")
    if not 0 <= lora.dropout < 1:
        raise ConfigError(f"[lora] dropout must be in [0, 1), got {lora.dropout}.")
    if not lora.target_modules:
        raise ConfigError(
            "[lora] target_modules is empty. Name modules such as q_proj, v_proj, or 'all-linear'."
        )
    if not 0 < cfg.generation.vllm_gpu_memory_utilization <= 1:
        raise ConfigError("[generation] vllm_gpu_memory_utilization must be in (0, 1].")
    if cfg.environment is not None:
        _validate_environment(cfg.environment)
    _validate_models_and_prompts(cfg)
    _validate_eval_and_sampling(cfg)
    _validate_monitor(cfg.monitor)


def _validate_eval_and_sampling(cfg: RunConfig) -> None:
    e, d = cfg.eval, cfg.data
    if e.eval_samples < 1:
        raise ConfigError(
            f"[eval] eval_samples must be at least 1, got {e.eval_samples}. {field_help('eval', 'eval_samples')}"
        )
    if not e.pass_k:
        raise ConfigError("[eval] pass_k is empty. List at least one k, for example [1].")
    for k in e.pass_k:
        if not 1 <= k <= e.eval_samples:
            raise ConfigError(
                f"[eval] pass_k holds {k}, but pass@k needs 1 <= k <= eval_samples ({e.eval_samples}). "
                f"Raise eval_samples to at least {k}, or drop {k} from pass_k."
            )
    if cfg.environment is not None and (e.eval_greedy or e.pass_k != [1]):
        raise ConfigError(
            "[eval] pass_k and eval_greedy are not computed for an agent run (with [environment]): its "
            "held-out evaluation plays each task eval_samples times and reports success as their mean. "
            "Remove pass_k and eval_greedy from [eval]."
        )
    if d.sampling not in SAMPLING:
        raise ConfigError(
            f"[data] sampling must be uniform or difficulty, got {d.sampling!r}. {field_help('data', 'sampling')}"
        )
    if cfg.algorithm != "grpo" and (d.sampling != "uniform" or d.skip_zero_variance):
        raise ConfigError(
            f"[data] sampling = {d.sampling!r} / skip_zero_variance are GRPO's (its sampler picks the prompts); "
            f'{cfg.algorithm} draws prompts uniformly. Set sampling = "uniform" and skip_zero_variance = false.'
        )


def _validate_monitor(m: MonitorConfig) -> None:
    if m.action not in MONITOR_ACTIONS:
        raise ConfigError(
            f"[monitor] action must be warn or pause, got {m.action!r}. {field_help('monitor', 'action')}"
        )
    for key in ("baseline_steps", "window", "kl_window", "divergence_evals"):
        if getattr(m, key) < (2 if key == "divergence_evals" else 1):
            raise ConfigError(
                f"[monitor] {key} must be at least {2 if key == 'divergence_evals' else 1}, got {getattr(m, key)}. "
                f"{field_help('monitor', key)}"
            )
    if m.cooldown_steps < 0:
        raise ConfigError(f"[monitor] cooldown_steps must be 0 or more, got {m.cooldown_steps}.")
    for key in ("divergence_rise", "divergence_tolerance", "dominance_rise", "dominance_fall", "kl_min"):
        if getattr(m, key) < 0:
            raise ConfigError(
                f"[monitor] {key} must be 0 or more, got {getattr(m, key)}. {field_help('monitor', key)}"
            )
    for key in ("length_correlation", "dominance_share", "entropy_ratio", "truncation_rise", "cheat_rise"):
        if not 0 < getattr(m, key) <= 1:
            raise ConfigError(
                f"[monitor] {key} must be in (0, 1], got {getattr(m, key)}. {field_help('monitor', key)}"
            )
    for key in ("length_ratio", "kl_spike"):
        if not getattr(m, key) > 1:
            raise ConfigError(
                f"[monitor] {key} must be above 1, got {getattr(m, key)}. {field_help('monitor', key)}"
            )


def _choice(section: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"[{section}] {key} must be one of {', '.join(allowed)}, got {value!r}. {field_help(section, key)}"
        )


def _validate_models_and_prompts(cfg: RunConfig) -> None:
    """[data] chat template keys, [model] load_in_4bit and the GRPO knobs that mirror TRL's GRPOConfig."""
    d, t = cfg.data, cfg.training
    _choice("data", "chat_template", d.chat_template, CHAT_TEMPLATE_MODES)
    _choice("training", "loss_type", t.loss_type, LOSS_TYPES)
    _choice("training", "scale_rewards", t.scale_rewards, SCALE_REWARDS)
    _choice("training", "importance_sampling_level", t.importance_sampling_level, IMPORTANCE_SAMPLING_LEVELS)
    if t.loss_type == "luspo" and t.importance_sampling_level != "sequence":
        raise ConfigError(
            '[training] loss_type = "luspo" is GSPO made length-unbiased: it needs importance_sampling_level '
            '= "sequence". Set that, or choose another loss_type.'
        )
    if t.loss_type == "vespo" and t.importance_sampling_level != "token":
        raise ConfigError(
            '[training] loss_type = "vespo" computes its sequence-level weights itself: keep '
            'importance_sampling_level = "token".'
        )
    at_least_one = ("num_iterations", "gradient_accumulation_steps")
    for key in at_least_one:
        if getattr(t, key) < 1:
            raise ConfigError(
                f"[training] {key} must be at least 1, got {getattr(t, key)}. {field_help('training', key)}"
            )
    for key in ("top_k", "max_prompt_length", "generation_batch_size"):
        if getattr(t, key) < 0:
            raise ConfigError(
                f"[training] {key} must be 0 or more, got {getattr(t, key)}. {field_help('training', key)}"
            )
    micro_batch = t.prompts_per_step * t.num_generations
    if t.generation_batch_size and t.generation_batch_size % micro_batch:
        raise ConfigError(
            f"[training] generation_batch_size = {t.generation_batch_size} must be a multiple of "
            f"prompts_per_step x num_generations = {micro_batch} (whole groups of whole micro-batches), or 0."
        )
    for key in ("min_p", "top_entropy_quantile"):
        if not 0 <= getattr(t, key) <= 1:
            raise ConfigError(
                f"[training] {key} must be in [0, 1], got {getattr(t, key)}. {field_help('training', key)}"
            )
    if not t.repetition_penalty > 0:
        raise ConfigError(
            f"[training] repetition_penalty must be above 0, got {t.repetition_penalty}. 1.0 = no penalty."
        )
    for key in (
        "entropy_coef",
        "entropy_coef_min",
        "entropy_coef_max",
        "entropy_coef_delta",
        "entropy_target",
    ):
        if getattr(t, key) < 0:
            raise ConfigError(
                f"[training] {key} must be 0 or more, got {getattr(t, key)}. {field_help('training', key)}"
            )
    if t.entropy_coef_min > t.entropy_coef_max:
        raise ConfigError(
            f"[training] entropy_coef_min ({t.entropy_coef_min}) is above entropy_coef_max "
            f"({t.entropy_coef_max}). Swap them."
        )
    bad = [k for k, v in d.chat_template_kwargs.items() if not isinstance(k, str) or isinstance(v, dict)]
    if bad:
        raise ConfigError(
            f"[data] chat_template_kwargs: {', '.join(map(repr, bad))} must be plain values (true, a number, "
            "a string or a list), not tables."
        )


def _validate_environment(env: EnvironmentConfig) -> None:
    builtins = ", ".join(f"builtin:{name}" for name in BUILTIN_ENVIRONMENTS)
    if not env.path:
        raise ConfigError(
            f"[environment] path is empty. Set it to FILE.py:ClassName or one of {builtins}, or remove the "
            "[environment] section to train without tools."
        )
    if env.path.startswith("builtin:"):
        if env.path.removeprefix("builtin:") not in BUILTIN_ENVIRONMENTS:
            raise ConfigError(
                f"[environment] path {env.path!r} names no built-in environment; use {builtins}."
            )
    else:
        file_part, sep, class_name = env.path.rpartition(":")
        if not sep or not file_part.endswith(".py") or not class_name.isidentifier():
            raise ConfigError(
                f"[environment] path must be FILE.py:ClassName (for example "
                f"envs/file_manager.py:FileManagerEnv) or {builtins}, got {env.path!r}."
            )
    if env.max_turns < 1:
        raise ConfigError(
            f"[environment] max_turns must be at least 1, got {env.max_turns}. {field_help('environment', 'max_turns')}"
        )
    if not (env.tool_timeout > 0 and math.isfinite(env.tool_timeout)):
        raise ConfigError(
            f"[environment] tool_timeout must be a positive number of seconds, got {env.tool_timeout}. 5.0 is typical."
        )


def _validate_ppo(t: TrainingConfig) -> None:
    if t.num_generations < 1:
        raise ConfigError(f"[training] num_generations must be at least 1, got {t.num_generations}.")
    rollouts = t.prompts_per_step * t.num_generations
    if t.num_minibatches > rollouts:
        raise ConfigError(
            f"[training] num_minibatches = {t.num_minibatches} is more than the {rollouts} completions of a "
            "step (prompts_per_step x num_generations). Lower it, or sample more completions per step."
        )
    if t.kl_estimator not in KL_ESTIMATORS:
        raise ConfigError(
            f"[training] kl_estimator must be one of {', '.join(KL_ESTIMATORS)}, got {t.kl_estimator!r}. "
            f"{field_help('training', 'kl_estimator')}"
        )
    if not (t.target_kl >= 0 and math.isfinite(t.target_kl)):
        raise ConfigError(f"[training] target_kl must be 0 or more, got {t.target_kl}. 0 keeps beta fixed.")
    if t.target_kl > 0 and t.beta == 0:
        raise ConfigError(
            f"[training] target_kl = {t.target_kl} adapts the KL coefficient starting from beta, but beta = 0 "
            "stays 0. Set beta above 0 (for example 0.05), or target_kl = 0 to train without a KL penalty."
        )
    if not (t.vf_coef >= 0 and math.isfinite(t.vf_coef)):
        raise ConfigError(f"[training] vf_coef must be 0 or more, got {t.vf_coef}. 0.1-1.0 is typical.")
    if not (t.missing_eos_penalty >= 0 and math.isfinite(t.missing_eos_penalty)):
        raise ConfigError(
            f"[training] missing_eos_penalty must be 0 or more (it is subtracted), got {t.missing_eos_penalty}."
        )
    if not (t.cliprange_value > 0 and math.isfinite(t.cliprange_value)):
        raise ConfigError(
            f"[training] cliprange_value must be above 0, got {t.cliprange_value}. 0.2 is typical."
        )


SEED_LIMIT = 2**32 - 1  # numpy's seeds are unsigned 32-bit


def _validate_numbers(cfg: RunConfig) -> None:
    """The numeric keys `validate` has no specific rule for, and NaN/inf for every float key (TOML
    allows `nan` and `inf`; no key of the run config means anything with them)."""
    for section, cls in SECTIONS.items():
        part = getattr(cfg, section)
        for f in fields(cls):
            value = getattr(part, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(
                    f"[{section}] {f.name} must be a finite number, got {value}. "
                    f"{field_help(section, f.name)} Default: {f.default}."
                )
    d, t = cfg.data, cfg.training
    if d.eval_limit < 0:
        raise ConfigError(
            f"[data] eval_limit must be 0 (every held-out prompt) or a positive count, got {d.eval_limit}."
        )
    if d.max_prompt_chars < 0:
        raise ConfigError(
            f"[data] max_prompt_chars must be 0 (automatic) or a positive number of characters, "
            f"got {d.max_prompt_chars}."
        )
    if t.max_grad_norm < 0:
        raise ConfigError(
            f"[training] max_grad_norm must be 0 (no clipping) or more, got {t.max_grad_norm}. 1.0 is typical."
        )
    if not 0 <= t.seed <= SEED_LIMIT:
        raise ConfigError(f"[training] seed must be between 0 and {SEED_LIMIT}, got {t.seed}.")
    for key in ("vf_coef", "target_kl"):
        if getattr(t, key) < 0:
            raise ConfigError(
                f"[training] {key} must be 0 or more, got {getattr(t, key)}. {field_help('training', key)}"
            )


# ---- a small TOML writer (tomllib only reads) ------------------------------------------------------


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else _toml_value(key)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table: [data] chat_template_kwargs
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def dumps_toml(data: dict[str, Any]) -> str:
    """Write a dict of scalars and one level of tables as TOML."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"
