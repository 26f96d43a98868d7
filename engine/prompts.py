"""What the model sees: a dataset prompt made into the model's input, in one place.

A plain string prompt is wrapped as a user turn of the tokenizer's chat template when `[data]
chat_template` says so (auto: when the tokenizer has one), after an optional `system_prompt`; a message
list goes through the template as it is. Training (GRPO hands TRL the message list; TRL renders it with
the same `chat_template_kwargs`), evaluation and PPO (engine/generation.py) and `rl-studio-engine data
check` all call `model_prompt`, so the text a run records as the prompt is the text the model saw.
"""

from __future__ import annotations

from typing import Any

from engine.contract.config import ConfigError, DataConfig


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def check_template(data: DataConfig, tokenizer: Any, model: str) -> None:
    """Refuse `chat_template = "always"` with a tokenizer that has no chat template."""
    if data.chat_template == "always" and not has_chat_template(tokenizer):
        raise ConfigError(
            f'[data] chat_template = "always", but the tokenizer of {model} has no chat template. Use an '
            'instruct model (one whose tokenizer_config.json has a chat_template), set chat_template = "auto" '
            'or "never" to give the model the prompt strings as they are, or add a chat template to the '
            "tokenizer."
        )


def wraps_plain_prompts(data: DataConfig, tokenizer: Any) -> bool:
    if data.chat_template == "never":
        return False
    return has_chat_template(tokenizer)  # "always" without one was refused by check_template at load


def model_prompt(prompt: Any, data: DataConfig, tokenizer: Any) -> Any:
    """The prompt as the model gets it: a string (sent as text) or a message list (rendered by the template)."""
    if isinstance(prompt, str):
        if not wraps_plain_prompts(data, tokenizer):
            return prompt
        system = [{"role": "system", "content": data.system_prompt}] if data.system_prompt else []
        return [*system, {"role": "user", "content": prompt}]
    has_system = isinstance(prompt, list) and any(
        isinstance(m, dict) and m.get("role") == "system" for m in prompt
    )
    if isinstance(prompt, list) and data.system_prompt and not has_system:
        return [{"role": "system", "content": data.system_prompt}, *prompt]
    return prompt


def rendered_text(model_input: Any, data: DataConfig, tokenizer: Any) -> str:
    """The exact text of a `model_prompt` result: the chat template applied with the generation prompt."""
    if isinstance(model_input, str):
        return model_input
    text = tokenizer.apply_chat_template(
        model_input, tokenize=False, add_generation_prompt=True, **data.chat_template_kwargs
    )
    return str(text)


def prompt_ids(model_input: Any, data: DataConfig, tokenizer: Any) -> list[int]:
    """Token ids of a `model_prompt` result exactly as TRL's GRPOTrainer builds them."""
    if isinstance(model_input, str):
        return list(tokenizer(text=model_input)["input_ids"])
    encoded = tokenizer.apply_chat_template(
        model_input, add_generation_prompt=True, tokenize=True, return_dict=True, **data.chat_template_kwargs
    )
    return list(encoded["input_ids"])


def render(prompt: Any, data: DataConfig, tokenizer: Any) -> tuple[str, list[int]]:
    """(rendered text, token ids) of a dataset prompt."""
    model_input = model_prompt(prompt, data, tokenizer)
    return rendered_text(model_input, data, tokenizer), prompt_ids(model_input, data, tokenizer)


def too_long(
    rows: list[dict[str, Any]], data: DataConfig, tokenizer: Any, limit: int
) -> list[tuple[int, int]]:
    """(row index, token count) of each row whose rendered prompt is longer than `limit` tokens."""
    if limit <= 0:
        return []
    found = []
    for index, row in enumerate(rows):
        count = len(render(row["prompt"], data, tokenizer)[1])
        if count > limit:
            found.append((index, count))
    return found


def refuse_long_prompts(
    cfg: Any, tokenizer: Any, train_rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]]
) -> None:
    """`[training] max_prompt_length`: refuse a dataset with a longer rendered prompt, naming file and line."""
    from engine.data import line_of_row

    limit = cfg.training.max_prompt_length
    for key, rows in (("train", train_rows), ("eval", eval_rows)):
        found = too_long(rows, cfg.data, tokenizer, limit)
        if found:
            index, count = found[0]
            path = cfg.resolve(getattr(cfg.data, key))
            line = line_of_row(path, int(rows[index].get("_row", index)))
            raise ConfigError(
                f"{path}:{line}: the prompt is {count} tokens as the model sees it, longer than [training] "
                f"max_prompt_length = {limit} ({len(found)} prompt(s) of [data] {key} are). Shorten them, raise "
                "max_prompt_length (0 = no limit), or see them with `rl-studio-engine data check`."
            )
