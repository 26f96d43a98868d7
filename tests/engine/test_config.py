from __future__ import annotations

from pathlib import Path

import pytest

from engine.contract.config import ConfigError, config_from_dict, field_help, load_run_config
from engine.contract.paths import DEMO_CONFIG


def base() -> dict:
    return {"model": {"path": "m"}, "data": {"train": "t.jsonl"}, "rubric": {"path": "r.toml"}}


def test_minimal_config_gets_defaults_and_resolves_paths(tmp_path: Path) -> None:
    cfg = config_from_dict(base(), base_dir=tmp_path)
    assert cfg.algorithm == "grpo"
    assert cfg.training.num_generations == 8
    assert cfg.resolve(cfg.data.train) == tmp_path / "t.jsonl"


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("training", "num_generations", 1, "num_generations must be at least 2"),
        ("training", "learning_rate", "fast", "learning_rate must be a number"),
        ("training", "temperature", 0, "temperature must be above 0"),
        ("training", "device", "tpu", "device must be one of"),
        ("training", "max_steps", 0, "max_steps must be at least 1"),
        ("lora", "r", 0, "[lora] r must be at least 1"),
        ("lora", "target_modules", 3, "target_modules must be a list of strings"),
        ("training", "bogus", 1, "Unknown key [training] bogus"),
    ],
)
def test_invalid_values_name_the_key_and_the_fix(section: str, key: str, value: object, needle: str) -> None:
    data = base()
    data.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert needle in str(err.value)


def test_unknown_algorithm_and_missing_model() -> None:
    with pytest.raises(ConfigError, match="algorithm must be one of"):
        config_from_dict({**base(), "algorithm": "dpo"})
    data = base()
    data["model"] = {"path": ""}
    with pytest.raises(ConfigError, match=r"\[model\] path is empty"):
        config_from_dict(data)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[training\nmax_steps = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_run_config(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_run_config(tmp_path / "missing.toml")


def test_round_trip_through_toml(tmp_path: Path) -> None:
    cfg = config_from_dict({**base(), "training": {"max_steps": 7, "beta": 0.04}}, base_dir=tmp_path)
    p = tmp_path / "again.toml"
    p.write_text(cfg.to_toml())
    again = load_run_config(p)
    assert again.training.max_steps == 7
    assert again.training.beta == 0.04
    assert again.lora.target_modules == cfg.lora.target_modules


def test_every_field_has_help() -> None:
    assert "GRPO group size" in field_help("training", "num_generations")
    assert field_help("lora", "r")


@pytest.mark.skipif(not DEMO_CONFIG.is_file(), reason="demo config not built")
def test_demo_config_is_valid_and_absolute_when_printed() -> None:
    cfg = load_run_config(DEMO_CONFIG)
    text = cfg.to_toml(absolute_paths=True)
    assert str(DEMO_CONFIG.parent) in text
