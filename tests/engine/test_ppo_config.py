"""PPO's config keys: accepted with their defaults, refused with a message that names the key and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from engine.contract.config import ConfigError, config_from_dict, field_help


def ppo_config(training: dict[str, Any] | None = None, **sections: Any) -> Any:
    data = {
        "algorithm": "ppo",
        "model": {"path": "./model"},
        "data": {"train": "train.jsonl"},
        "rubric": {"path": "rubric.toml"},
        "training": {"prompts_per_step": 2, "num_generations": 2, **(training or {})},
        **sections,
    }
    return config_from_dict(data)


def test_ppo_is_accepted_with_one_completion_per_prompt() -> None:
    cfg = ppo_config({"num_generations": 1})
    assert cfg.algorithm == "ppo" and cfg.training.kl_estimator == "k1" and cfg.training.whiten_advantages


@pytest.mark.parametrize(
    ("training", "says"),
    [
        ({"kl_estimator": "k2"}, "kl_estimator must be one of k1, k3"),
        ({"target_kl": 6.0}, "Set beta above 0"),
        ({"num_minibatches": 5}, "num_minibatches = 5 is more than the 4 completions"),
        ({"num_minibatches": 0}, "num_minibatches must be at least 1"),
        ({"cliprange_value": 0.0}, "cliprange_value must be above 0"),
        ({"missing_eos_penalty": -1.0}, "missing_eos_penalty must be 0 or more"),
        ({"kl_horizon": 0}, "kl_horizon must be at least 1"),
    ],
)
def test_bad_ppo_values_are_refused_with_the_fix(training: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        ppo_config(training)


def test_an_environment_is_refused_for_ppo() -> None:
    with pytest.raises(ConfigError, match=r"\[environment\] trains agents with GRPO only"):
        ppo_config(environment={"path": "builtin:calculator"})


def test_grpo_still_needs_two_completions_per_prompt() -> None:
    with pytest.raises(ConfigError, match="num_generations must be at least 2"):
        config_from_dict(
            {
                "model": {"path": "./model"},
                "data": {"train": "t.jsonl"},
                "rubric": {"path": "r.toml"},
                "training": {"num_generations": 1},
            }
        )


def test_every_ppo_key_has_help() -> None:
    for key in ("kl_estimator", "missing_eos_penalty", "num_minibatches", "cliprange_value", "kl_horizon"):
        assert field_help("training", key).startswith("PPO: ")
    assert field_help("training", "whiten_advantages").startswith("PPO: ")
