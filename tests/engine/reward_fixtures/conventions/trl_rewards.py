"""Reward functions written for trl.GRPOTrainer, unchanged."""

import asyncio


def reward_len(completions, **kwargs):
    """TRL's documentation example: completions close to 20 characters score best."""
    return [-abs(20 - len(completion)) for completion in completions]


def exact_answer(prompts, completions, completion_ids, answer, **kwargs):
    log_metric = kwargs["log_metric"]
    log_extra = kwargs["log_extra"]
    rewards = [1.0 if c.strip() == a else 0.0 for c, a in zip(completions, answer, strict=True)]
    log_metric("exact_answer/hit_rate", sum(rewards) / len(rewards))
    log_extra("n_tokens", [len(ids) for ids in completion_ids])
    return rewards


def only_numeric(completions, answer):
    """No **kwargs: it gets only what it names. None where the answer is not a number (not applicable)."""
    return [float(c.strip() == a) if a.isdigit() else None for c, a in zip(completions, answer, strict=True)]


async def async_reward(completions, **kwargs):
    await asyncio.sleep(0.01)
    return [0.5 for _ in completions]


def step_scaled(completions, trainer_state, **kwargs):
    return [float(trainer_state.global_step) for _ in completions]


def bools_and_ints(completions, **kwargs):
    return [True, 0, 2][: len(completions)]
