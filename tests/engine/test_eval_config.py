"""The [eval] section and [data] sampling keys: defaults that keep today's evaluation, and validation
whose messages say how to fix the value."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import engine_cmd, engine_env, write_config

from engine.contract.config import ConfigError, config_from_dict, load_run_config


def _data(tmp_path: Path) -> dict:
    import tomllib

    return tomllib.loads(write_config(tmp_path).read_text())


def test_defaults_keep_one_sample_and_uniform_sampling(tmp_path: Path) -> None:
    cfg = load_run_config(write_config(tmp_path))
    assert (cfg.eval.eval_samples, cfg.eval.pass_k, cfg.eval.eval_greedy) == (1, [1], False)
    assert cfg.data.sampling == "uniform" and not cfg.data.skip_zero_variance


def test_eval_keys_round_trip_and_accept_the_launchers_strings(tmp_path: Path) -> None:
    data = _data(tmp_path)
    data["eval"] = {"eval_samples": 8, "pass_k": [1, 4], "eval_greedy": True, "correctness": "correct"}
    data["data"] |= {"sampling": "difficulty", "skip_zero_variance": True}
    cfg = config_from_dict(data)
    assert cfg.eval.pass_k == [1, 4] and cfg.data.sampling == "difficulty"
    assert "[eval]\neval_samples = 8\npass_k = [1, 4]" in cfg.to_toml()
    data["eval"]["pass_k"] = ["1", " 8"]  # the launcher's comma-separated text field
    assert config_from_dict(data).eval.pass_k == [1, 8]


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("eval", {"eval_samples": 4, "pass_k": [1, 8]}, "Raise eval_samples to at least 8"),
        ("eval", {"eval_samples": 0}, "eval_samples must be at least 1"),
        ("eval", {"pass_k": []}, "pass_k is empty"),
        ("eval", {"pass_k": [1.5]}, "must be a list of whole numbers"),
        ("data", {"sampling": "hard-first"}, "sampling must be uniform or difficulty"),
    ],
)
def test_bad_values_say_how_to_fix_them(tmp_path: Path, section: str, values: dict, message: str) -> None:
    data = _data(tmp_path)
    data[section] = data.get(section, {}) | values
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_difficulty_sampling_is_grpos(tmp_path: Path) -> None:
    data = _data(tmp_path)
    data["algorithm"] = "ppo"
    data["training"]["num_generations"] = 2
    data["data"]["sampling"] = "difficulty"
    with pytest.raises(ConfigError, match="GRPO's"):
        config_from_dict(data)


def test_a_correctness_criterion_the_rubric_lacks_is_refused_before_training(tmp_path: Path) -> None:
    import subprocess

    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text() + '[eval]\ncorrectness = "corect"\n')
    result = subprocess.run(
        engine_cmd("run", str(cfg), "--db", str(tmp_path / "ws.sqlite")),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "[eval] correctness" in result.stderr and "'corect' is not in the rubric" in result.stderr
    assert "correct, format, length" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("extra", [{"eval_greedy": True}, {"pass_k": [1, 2]}])
def test_an_agent_run_takes_eval_samples_but_refuses_pass_k_and_greedy(tmp_path: Path, extra: dict) -> None:
    data = _data(tmp_path)
    data["environment"] = {"path": "builtin:file_manager", "max_turns": 3}
    data["eval"] = {"eval_samples": 4}
    assert config_from_dict(data).eval.eval_samples == 4
    data["eval"] |= extra
    with pytest.raises(ConfigError, match="not computed for an agent run"):
        config_from_dict(data)
