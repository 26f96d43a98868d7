"""Sampling completions with transformers' generate, for held-out evaluation (and PPO rollouts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.contract.config import DataConfig, RunConfig
from engine.prompts import model_prompt, prompt_ids, rendered_text
from engine.rewards.shapes import shape_completions


@dataclass
class Generated:
    texts: list[str]
    completion_ids: list[list[int]]
    truncated: list[bool]
    conversational: bool
    prompts: list[Any] = field(default_factory=list)
    """The prompts the texts answer, one per text: what shapes the completions for the rubric."""
    prompt_ids: list[list[int]] = field(default_factory=list)
    """The token ids each completion was generated from (the rendered prompt's, engine.prompts)."""
    rendered: list[str] = field(default_factory=list)
    """The exact text of each prompt as the model saw it (chat template applied)."""

    @property
    def completions_for_rubric(self) -> list[Any]:
        """Completions in the shape training hands reward functions (engine.rewards.shapes)."""
        prompts = self.prompts or [[] if self.conversational else ""] * len(self.texts)
        return shape_completions(prompts, self.texts)


def encode_prompts(tokenizer: Any, prompts: list[Any], data: DataConfig) -> list[list[int]]:
    """Token ids of each dataset prompt as the model sees it (engine.prompts: chat template, system
    prompt), exactly as TRL's GRPOTrainer builds them."""
    return [prompt_ids(model_prompt(p, data, tokenizer), data, tokenizer) for p in prompts]


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[Any],
    cfg: RunConfig,
    seed: int,
    batch_size: int = 64,
    greedy: bool = False,
) -> Generated:
    """Sample one completion per prompt with the run's temperature and top_p, seeded, without disturbing
    the training RNG streams; `greedy` decodes the most likely tokens instead (greedy pass@1)."""
    import torch

    t = cfg.training
    conversational = bool(prompts) and isinstance(prompts[0], list)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_id = tokenizer.eos_token_id
    texts: list[str] = []
    ids_out: list[list[int]] = []
    truncated: list[bool] = []
    all_ids: list[list[int]] = []
    rendered: list[str] = []
    was_training = model.training
    model.eval()
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    sampling = {
        "temperature": t.temperature,
        "top_p": t.top_p,
        "top_k": t.top_k,
        "min_p": t.min_p or None,
        "repetition_penalty": t.repetition_penalty,
    }
    sampling = sampling if not greedy else {}
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for start in range(0, len(prompts), batch_size):
            inputs = [model_prompt(p, cfg.data, tokenizer) for p in prompts[start : start + batch_size]]
            encoded = [prompt_ids(x, cfg.data, tokenizer) for x in inputs]
            all_ids.extend(encoded)
            rendered.extend(rendered_text(x, cfg.data, tokenizer) for x in inputs)
            width = max(len(x) for x in encoded)
            input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(encoded), width), dtype=torch.long)
            for row, ids in enumerate(encoded):  # left padding: generation continues from the right edge
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention[row, width - len(ids) :] = 1
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                do_sample=not greedy,
                **sampling,
                max_new_tokens=t.max_completion_length,
                pad_token_id=pad_id,
                eos_token_id=eos_id,
            )
            for seq in out[:, width:].tolist():
                if eos_id is not None and eos_id in seq:
                    seq = seq[: seq.index(eos_id) + 1]
                    truncated.append(False)
                else:
                    while seq and seq[-1] == pad_id and pad_id != eos_id:
                        seq.pop()
                    truncated.append(True)
                ids_out.append(seq)
                texts.append(tokenizer.decode(seq, skip_special_tokens=True))
    if was_training:
        model.train()
    return Generated(texts, ids_out, truncated, conversational, list(prompts), all_ids, rendered)
