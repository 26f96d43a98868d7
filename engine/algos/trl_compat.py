"""Every private TRL / transformers method the engine relies on, in one place.

TRL has no public hook for "a batch was just generated and scored", none for "draw the training prompts
this way", no public "write a checkpoint now" and no public per-token log-probs, so the engine overrides
or calls four private methods.
Private means a minor release may rename or reshape them. Everything that touches them goes through this
module, `RELIED_ON` lists them with the signature the engine was written against, and
tests/engine/test_trl_compat.py checks the installed TRL against that list, naming the method and the
version when it differs. pyproject.toml bounds TRL below its next major version for the same reason.

This module imports neither TRL nor transformers at import time (telemetry imports it before TRL loads).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PrivateMethod:
    owner: str
    """Where the method is defined, as `module:Class`."""
    name: str
    parameters: tuple[str, ...]
    """The parameter names, `self` first, the engine calls or overrides it with."""
    why: str


GENERATE_AND_SCORE = PrivateMethod(
    "trl:GRPOTrainer",
    "_generate_and_score_completions",
    ("self", "inputs"),
    "the only point where a generated, scored batch with its advantages is in hand: the engine records "
    "every rollout there (GenerationHook below)",
)
SAVE_CHECKPOINT = PrivateMethod(
    "transformers:Trainer",
    "_save_checkpoint",
    ("self", "model", "trial"),
    "a checkpoint outside the Trainer's schedule (a stop, or a checkpoint asked for while paused)",
)
GET_TRAIN_SAMPLER = PrivateMethod(
    "trl:GRPOTrainer",
    "_get_train_sampler",
    ("self", "dataset"),
    "difficulty-aware prompt sampling ([data] sampling, skip_zero_variance): the engine's sampler takes "
    "the place of TRL's RepeatSampler, in its layout (SamplerHook below)",
)
PER_TOKEN_LOGPS = PrivateMethod(
    "trl:GRPOTrainer",
    "_get_per_token_logps_and_entropies",
    (
        "self",
        "model",
        "input_ids",
        "attention_mask",
        "logits_to_keep",
        "batch_size",
        "compute_entropy",
        "compute_aux_loss",
        "pixel_values",
        "image_grid_thw",
        "num_images",
        "pixel_attention_mask",
        "spatial_shapes",
        "num_tiles",
        "image_sizes",
        "token_type_ids",
        "mm_token_type_ids",
        "image_position_ids",
    ),
    "token-level evidence ([training] record_token_stats): each generated token's log-prob and entropy "
    "through TRL's own temperature-scaled path, the one its loss uses (sampling_logps_and_entropies below)",
)
RELIED_ON = (GENERATE_AND_SCORE, SAVE_CHECKPOINT, GET_TRAIN_SAMPLER, PER_TOKEN_LOGPS)

REPEAT_SAMPLER_FIELDS = ("mini_repeat_count", "batch_size", "repeat_count", "seed")
"""What the engine reads from the RepeatSampler TRL builds: the layout its own sampler keeps."""

GENERATED_KEYS = ("completion_ids", "completion_mask", "advantages")
"""What the engine reads from the dict `_generate_and_score_completions` returns."""


def _version(module: str) -> str:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # not installed or no version: say so in the message instead
        return "unknown"


def problems(methods: tuple[PrivateMethod, ...] = RELIED_ON) -> list[str]:
    """How the installed TRL / transformers differ from what RL Studio relies on; empty when they agree."""
    found = []
    for method in methods:
        module_name, class_name = method.owner.split(":")
        where = f"{module_name} {_version(module_name)}"
        owner = getattr(importlib.import_module(module_name), class_name)
        function = getattr(owner, method.name, None)
        if function is None:
            found.append(
                f"{class_name}.{method.name} is gone in {where}; RL Studio uses it for {method.why}. "
                f"Install the TRL range pyproject.toml names, or port engine/algos/trl_compat.py."
            )
            continue
        names = tuple(inspect.signature(function).parameters)
        if names != method.parameters:
            found.append(
                f"{class_name}.{method.name} takes ({', '.join(names)}) in {where}, not "
                f"({', '.join(method.parameters)}); RL Studio uses it for {method.why}. "
                f"Port engine/algos/trl_compat.py."
            )
    return found


# ---- the calls -----------------------------------------------------------------------------------------
class GenerationHook:
    """Mix in before `GRPOTrainer`: `before_generation` may replace the rows TRL is about to generate
    for, `after_generation` sees every batch TRL generated and scored (its dict holds GENERATED_KEYS)."""

    def before_generation(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs

    def after_generation(self, output: dict[str, Any]) -> None:
        return None

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        inputs = self.before_generation(inputs)
        output: dict[str, Any] = super()._generate_and_score_completions(inputs)  # type: ignore[misc]
        missing = [key for key in GENERATED_KEYS if key not in output]
        if missing:
            raise RuntimeError(
                f"trl {_version('trl')}'s GRPOTrainer._generate_and_score_completions no longer returns "
                f"{', '.join(missing)}, which RL Studio records rollouts from. Install the TRL range "
                "pyproject.toml names, or port engine/algos/trl_compat.py."
            )
        self.after_generation(output)
        return output


class SamplerHook:
    """Mix in before `GRPOTrainer`: `train_sampler(layout)` may return a sampler to draw training prompts
    from instead of TRL's RepeatSampler (None keeps TRL's); `layout` is REPEAT_SAMPLER_FIELDS of TRL's."""

    def train_sampler(self, layout: dict[str, Any]) -> Any:
        return None

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        default = super()._get_train_sampler(dataset)  # type: ignore[misc]
        missing = [name for name in REPEAT_SAMPLER_FIELDS if not hasattr(default, name)]
        if missing:
            raise RuntimeError(
                f"trl {_version('trl')}'s GRPOTrainer._get_train_sampler returns a {type(default).__name__} without "
                f"{', '.join(missing)}, the layout RL Studio's difficulty sampler keeps. Use [data] sampling = "
                '"uniform", install the TRL range pyproject.toml names, or port engine/algos/trl_compat.py.'
            )
        replacement = self.train_sampler({name: getattr(default, name) for name in REPEAT_SAMPLER_FIELDS})
        return default if replacement is None else replacement


def save_checkpoint(trainer: Any) -> None:
    """Write a checkpoint of the trainer's current step now, as the Trainer's own schedule would."""
    trainer._save_checkpoint(trainer.model, None)


def sampling_logps_and_entropies(trainer: Any, output: dict[str, Any]) -> tuple[Any, Any]:
    """Each generated token's log-prob and the entropy at its position [batch, completion tokens], under
    the policy that just sampled the batch (`output`, as `_generate_and_score_completions` returns it):
    one forward pass without gradients through TRL's own path (the sampling temperature applied), the
    model in eval mode so LoRA dropout does not move them."""
    import torch

    completion_ids = output["completion_ids"]
    input_ids = torch.cat([output["prompt_ids"], completion_ids], dim=1)
    attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
    model = trainer.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                completion_ids.size(1),
                batch_size=trainer.args.per_device_train_batch_size,
                compute_entropy=True,
            )
    finally:
        model.train(was_training)
    return logps, entropies
