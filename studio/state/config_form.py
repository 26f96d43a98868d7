"""The launcher's form, described from the run config's own dataclasses (no widgets here).

Every field of engine.contract.config appears, with its help text; values go back through the
engine's own validation (config_from_dict), plus the file checks the engine would otherwise fail on.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contract.config import (
    ALGORITHMS,
    CHAT_TEMPLATE_MODES,
    DEVICES,
    IMPORTANCE_SAMPLING_LEVELS,
    KL_ESTIMATORS,
    LOSS_TYPES,
    SAMPLING,
    SCALE_REWARDS,
    SECTIONS,
    ConfigError,
    RunConfig,
    config_from_dict,
)

CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm": ALGORITHMS,
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "training.device": DEVICES,
    "training.lr_scheduler": ("constant", "linear", "cosine"),
    "data.sampling": SAMPLING,
    "data.chat_template": CHAT_TEMPLATE_MODES,
    "training.loss_type": LOSS_TYPES,
    "training.scale_rewards": SCALE_REWARDS,
    "training.importance_sampling_level": IMPORTANCE_SAMPLING_LEVELS,
    "training.kl_estimator": KL_ESTIMATORS,
}
PATHS: dict[str, tuple[str, str]] = {
    # key: (what to pick, file filter)
    "model.path": ("dir", ""),
    "data.train": ("file", "JSON lines (*.jsonl *.json);;All files (*)"),
    "data.eval": ("file", "JSON lines (*.jsonl *.json);;All files (*)"),
    "rubric.path": ("file", "Rubric (*.toml);;All files (*)"),
}
GROUP_TITLES = {
    "": "Run",
    "model": "Model",
    "data": "Data",
    "rubric": "Rubric",
    "lora": "LoRA",
    "training": "Training",
    "generation": "Generation",
    "eval": "Evaluation (pass@k)",
    "monitor": "Tripwires",
    "ppo": "PPO",
}
ADVANCED_TITLES = {
    "training": "TRL GRPO knobs",
    "data": "Prompt rendering",
    "ppo": "PPO (shown when algorithm = ppo)",
}

ADVANCED_BLOCKS: dict[str, tuple[str, str | None]] = {
    "training": ("loss_type", None),
    "data": ("chat_template", "chat_template_kwargs"),
}
"""The grouping rule of the launcher's collapsed "Advanced" section: per section, a block of the config's
own field order, (first, last) inclusive, None = to the section's end. [training] from loss_type on holds
TRL GRPOConfig's knobs (config.py declares them together: loss type, reward scaling, iterations, importance
sampling, truncation masking, top_k / min_p / repetition penalty, prompt length, accumulation, generation
batch, the entropy options) followed by PPO's keys; [data]'s block is prompt rendering (chat template,
system prompt, template arguments). A field added inside a block is advanced without a change here, and
every field whose help starts with "PPO:" is advanced wherever it is."""


@dataclass(frozen=True)
class FieldSpec:
    section: str
    name: str
    kind: str
    """bool, int, float, str, list, table (a TOML inline table), choice or path"""
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    path_mode: str = ""
    file_filter: str = ""

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def toml_key(self) -> str:
        return f"[{self.section}] {self.name}" if self.section else self.name

    @property
    def label(self) -> str:
        special = {"lora.r": "Rank (r)", "training.top_p": "Top-p", "model.dtype": "Dtype"}
        if self.key in special:
            return special[self.key]
        text = self.name.replace("_", " ")
        acronyms = (
            ("lr", "LR"),
            ("vllm", "vLLM"),
            ("kl", "KL"),
            ("gpu", "GPU"),
            ("vf", "VF"),
            ("cpu", "CPU"),
        )
        for short, long in acronyms:
            text = " ".join(long if w == short else w for w in text.split())
        return text[0].upper() + text[1:]

    @property
    def group(self) -> str:
        return "ppo" if self.help.startswith("PPO:") else self.section

    @property
    def advanced(self) -> bool:
        return self.group == "ppo" or self.key in _advanced_keys()


def _kind(key: str, default: Any) -> str:
    if key in CHOICES:
        return "choice"
    if key in PATHS:
        return "path"
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, list):
        return "list"
    if isinstance(default, dict):
        return "table"
    return "str"


def table_text(value: dict[str, Any]) -> str:
    """A table field's value as the form shows it: a TOML inline table, `{ enable_thinking = false }`."""
    if not value:
        return ""
    items = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())  # JSON scalars are TOML scalars
    return "{ " + items + " }"


def parse_table(text: str) -> dict[str, Any] | str:
    """The form's text of a table field as a dict; the text itself when it is not one (the engine's
    validation then says what is wrong and how to write it)."""
    stripped = text.strip()
    if not stripped:
        return {}
    try:
        value = tomllib.loads(f"value = {stripped}")["value"]
    except tomllib.TOMLDecodeError:
        return text
    return value if isinstance(value, dict) else text


def _advanced_keys() -> frozenset[str]:
    keys: set[str] = set()
    for section, (first, last) in ADVANCED_BLOCKS.items():
        names = [f.name for f in dataclasses.fields(SECTIONS[section])]
        start = names.index(first)  # a block whose first field was renamed fails here, loudly, in the tests
        end = names.index(last) + 1 if last else len(names)
        keys.update(f"{section}.{name}" for name in names[start:end])
    return frozenset(keys)


def form_fields() -> list[FieldSpec]:
    """Every field of RunConfig, in the config's own order."""
    out: list[FieldSpec] = []
    for f in dataclasses.fields(RunConfig):
        if f.name in ("algorithm", "name"):
            out.append(_spec("", f))
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            out.append(_spec(section, f))
    return out


def _spec(section: str, f: dataclasses.Field[Any]) -> FieldSpec:
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = None
    key = f"{section}.{f.name}" if section else f.name
    path_mode, file_filter = PATHS.get(key, ("", ""))
    return FieldSpec(
        section,
        f.name,
        _kind(key, default),
        default,
        str(f.metadata.get("help", "")),
        CHOICES.get(key, ()),
        path_mode,
        file_filter,
    )


def config_values(cfg: RunConfig) -> dict[str, Any]:
    """Form values of a config, with its paths made absolute (the form has no folder of its own)."""
    data = cfg.to_dict()
    values: dict[str, Any] = {}
    for spec in form_fields():
        value = data[spec.section][spec.name] if spec.section else data[spec.name]
        if spec.kind == "path" and value:
            value = cfg.resolved_model() if spec.key == "model.path" else str(cfg.resolve(value))
        values[spec.key] = value
    return values


def values_to_dict(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {section: {} for section in SECTIONS}
    for key, value in values.items():
        if "." in key:
            section, name = key.split(".", 1)
            out[section][name] = value
        else:
            out[key] = value
    return out


def build_config(values: dict[str, Any], check_files: bool = True) -> RunConfig:
    """The RunConfig of the form's values, validated by the engine's rules. Raises ConfigError."""
    cfg = config_from_dict(values_to_dict(values))
    if check_files:
        if cfg.model_is_local() and not Path(cfg.resolved_model()).exists():
            raise ConfigError(
                f"[model] path {cfg.model.path} does not exist. Pick the model's folder, or enter "
                "a Hugging Face hub id such as Qwen/Qwen2.5-0.5B-Instruct."
            )
        for key, value in (
            ("[data] train", cfg.data.train),
            ("[data] eval", cfg.data.eval),
            ("[rubric] path", cfg.rubric.path),
        ):
            if value and not cfg.resolve(value).is_file():
                raise ConfigError(f"{key} {value} does not exist. Pick an existing file.")
    return cfg
