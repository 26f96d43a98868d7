"""Honest mistakes that used to crash with a traceback, hang, or pass silently.

Each is run through the real engine on the bundled demo model with real files: the run either works
(mixed column types) or fails before training with exit 2, one `input` error and a message that names
what is wrong and how to fix it.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from conftest import engine_cmd, engine_env, requires_demo

from engine import preflight
from engine.contract.config import (
    ALGORITHMS,
    SECTIONS,
    ConfigError,
    config_from_dict,
    field_help,
    load_run_config,
)
from engine.contract.paths import DEMO_DIR
from engine.data import DataError, json_lines
from engine.rewards import RubricError, load_rubric
from engine.session import load_rows

pytestmark = requires_demo

TRAIN = [
    {"prompt": "6-11=", "answer": "-5", "reference": "<answer>-5</answer>"},
    {"prompt": "1+17=", "answer": "18", "reference": "<answer>18</answer>"},
    {"prompt": "10+8=", "answer": "18", "reference": "<answer>18</answer>"},
    {"prompt": "3+4=", "answer": "7", "reference": "<answer>7</answer>"},
]


# ---- helpers: a small run of the real engine ---------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_run(
    tmp_path: Path,
    train: Path,
    rubric: Path | None = None,
    eval_path: Path | None = None,
    lora: str = '["q_proj", "v_proj"]',
    data: str = "",
    **training: object,
) -> Path:
    settings: dict[str, object] = {
        "max_steps": 1,
        "num_generations": 2,
        "prompts_per_step": 2,
        "max_completion_length": 4,
        "checkpoint_every": 0,
        "device": "cpu",
        "seed": 1,
    }
    settings.update(training)
    lines = [
        'algorithm = "grpo"',
        "[model]",
        f'path = "{DEMO_DIR / "model"}"',
        "[data]",
        f'train = "{train}"',
        f'eval = "{eval_path or ""}"',
        data,
        "[rubric]",
        f'path = "{rubric or DEMO_DIR / "rubric.toml"}"',
        "[lora]",
        f"target_modules = {lora}",
        "[training]",
        *(f"{key} = {value!r}" for key, value in settings.items()),
    ]
    path = tmp_path / "run.toml"
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    return path


def run_engine(config: Path, db: Path) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run(
        engine_cmd("run", str(config), "--db", str(db)),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=600,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, proc.stderr


def failed_with(config: Path, db: Path) -> str:
    """Run the engine; it must fail as bad input, without a traceback. Returns the message."""
    code, events, stderr = run_engine(config, db)
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    errors = [e for e in events if e.get("type") == "error"]
    assert len(errors) == 1 and errors[0].get("kind") == "input", events
    return str(errors[0]["message"])


def rubric_with(tmp_path: Path, rewards: str, criteria: str) -> Path:
    (tmp_path / "rewards.py").write_text(rewards)
    path = tmp_path / "rubric.toml"
    path.write_text('name = "test"\n' + criteria)
    return path


# ---- 1. [lora] target_modules that match no module ---------------------------------------------------


def test_lora_targets_that_match_no_module_are_named_with_the_models_linear_layers(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", TRAIN)
    config = write_run(tmp_path, train, lora='["q_proj", "qkv_proj"]')
    message = failed_with(config, tmp_path / "ws.sqlite")
    assert "[lora] target_modules" in message and "'qkv_proj'" in message
    assert "'q_proj'" not in message  # it matches: only the wrong entry is named
    for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert name in message  # the model's linear layers, to choose from
    assert "all-linear" in message


# ---- 2. a column whose type differs between rows ----------------------------------------------------

MIXED_REWARDS = """
import json

LOG = {log!r}


def record(prompts, completions, answer, meta, **kwargs):
    with open(LOG, "a") as fh:
        for prompt, a, i in zip(prompts, answer, meta):
            fh.write(json.dumps({{"prompt": prompt, "answer": a, "answer_type": type(a).__name__,
                                  "meta": i, "meta_type": type(i).__name__}}) + "\\n")
    return [1.0 if str(a) in str(c) else 0.0 for c, a in zip(completions, answer)]
"""


def test_a_column_with_mixed_types_trains_and_rewards_see_the_original_values(tmp_path: Path) -> None:
    log = tmp_path / "seen.jsonl"
    rubric = rubric_with(
        tmp_path,
        MIXED_REWARDS.format(log=str(log)),
        '[[criteria]]\nname = "record"\nkind = "python"\nsource = "rewards.py:record"\n',
    )
    rows: list[dict[str, Any]] = [
        {"prompt": "6-11=", "answer": "-5", "meta": {"level": 1}},
        {"prompt": "3+4=", "answer": 7, "meta": "easy"},  # an int among strings, a string among dicts
        {"prompt": "1+17=", "answer": "18", "meta": {"level": 2, "tags": ["add"]}},
        {"prompt": "2+2=", "answer": "4"},  # no meta at all: None, as for any missing column
    ]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    config = write_run(tmp_path, train, rubric, prompts_per_step=4)
    code, events, stderr = run_engine(config, tmp_path / "ws.sqlite")
    assert code == 0, stderr
    assert "Traceback" not in stderr
    finished = [e for e in events if e.get("type") == "finished"]
    assert finished and finished[-1].get("status") == "finished", events

    seen = [json.loads(line) for line in log.read_text().splitlines()]
    training = [s for s in seen if s["prompt"] in {r["prompt"] for r in rows}]
    by_prompt = {s["prompt"]: s for s in training}
    assert set(by_prompt) == {r["prompt"] for r in rows}  # prompts_per_step = 4: every row in the step
    assert by_prompt["3+4="]["answer"] == 7 and by_prompt["3+4="]["answer_type"] == "int"
    assert by_prompt["6-11="]["answer_type"] == "str"
    assert by_prompt["3+4="]["meta"] == "easy"
    assert by_prompt["1+17="]["meta"] == {"level": 2, "tags": ["add"]}
    assert by_prompt["6-11="]["meta"] == {"level": 1}  # not padded with Arrow's None for "tags"
    assert by_prompt["2+2="]["meta"] is None


# ---- 3. a prompt far too long for the model -----------------------------------------------------------


def test_a_50_mb_prompt_is_refused_with_file_and_line_before_tokenising(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    huge = {"prompt": "1+" * 25_000_000 + "1=", "answer": "25000001"}
    with train.open("w") as fh:
        fh.write(json.dumps(TRAIN[0]) + "\n\n")  # a blank line: line numbers are not row numbers
        fh.write(json.dumps(huge) + "\n")
        for row in TRAIN[1:]:
            fh.write(json.dumps(row) + "\n")
    config = write_run(tmp_path, train)
    message = failed_with(config, tmp_path / "ws.sqlite")
    assert f"{train}:3" in message
    assert "50,000,002 characters" in message
    assert "max_prompt_chars" in message


def test_the_prompt_limit_is_configurable_and_checks_the_eval_set_too(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", TRAIN)
    evals = write_jsonl(tmp_path / "eval.jsonl", [*TRAIN[:2], {"prompt": "12345+678901=", "answer": "0"}])
    config = write_run(tmp_path, train, eval_path=evals, data="max_prompt_chars = 12")
    cfg = load_run_config(config)
    train_rows, eval_rows = load_rows(cfg)
    preflight.check_prompt_lengths(cfg, train_rows, eval_rows[:2])  # the first two fit
    with pytest.raises(
        DataError,
        match=rf"{evals}:3: the prompt is 13 characters long, over the limit of 12 \(\[data\] max_prompt_chars\)",
    ):
        preflight.check_prompt_lengths(cfg, train_rows, eval_rows)
    assert (
        preflight.max_prompt_chars(load_run_config(write_run(tmp_path, train)))[0] == 8 * 64
    )  # demo: 64 tokens


def test_a_line_longer_than_the_reader_takes_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(TRAIN[0]) + "\n" + json.dumps({"prompt": "x" * 5000}) + "\n")
    with pytest.raises(DataError, match=rf"{path}:2: the line is longer than 1,000 bytes"):
        list(json_lines(path, max_line_bytes=1000))
    assert len(list(json_lines(path, max_line_bytes=6000))) == 2


def test_conversational_prompts_without_a_chat_template_are_refused(tmp_path: Path) -> None:
    rows = [{**row, "prompt": [{"role": "user", "content": row["prompt"]}]} for row in TRAIN]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    message = failed_with(write_run(tmp_path, train), tmp_path / "ws.sqlite")  # the demo has no template
    assert f"{train}:1: the prompt is a list of chat messages" in message
    assert "no chat template" in message and "chat_template" in message


# ---- 4. config values that could never train ----------------------------------------------------------


def test_prompts_per_step_larger_than_the_training_set_is_refused(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", TRAIN[:3])
    config = write_run(tmp_path, train, prompts_per_step=4)
    message = failed_with(config, tmp_path / "ws.sqlite")
    assert "prompts_per_step = 4" in message and f"{train} has 3" in message
    assert "Lower prompts_per_step to 3 or less" in message


def minimal() -> dict[str, Any]:
    return {"model": {"path": "m"}, "data": {"train": "t.jsonl"}, "rubric": {"path": "r.toml"}}


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("data", "eval_limit", -1, "[data] eval_limit must be 0 (every held-out prompt) or a positive count"),
        ("training", "temperature", math.inf, "[training] temperature must be a finite number, got inf"),
        ("training", "max_grad_norm", -1.0, "[training] max_grad_norm must be 0 (no clipping) or more"),
        ("training", "beta", math.nan, "[training] beta must be a finite number, got nan"),
        ("training", "seed", -1, "[training] seed must be between 0 and 4294967295"),
        ("data", "max_prompt_chars", -5, "[data] max_prompt_chars must be 0 (automatic) or a positive"),
    ],
)
def test_reported_config_values_are_refused_with_the_fix(
    section: str, key: str, value: Any, needle: str
) -> None:
    data = minimal()
    data.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert needle in str(err.value)


# Values of the sweep; for each numeric key, the ones it refuses (every other one is accepted).
SWEEP = (math.nan, math.inf, -math.inf, -1, 0)
ALL, NON_FINITE_OR_NEGATIVE = set(SWEEP), {math.nan, math.inf, -math.inf, -1}
REFUSED: dict[tuple[str, str], set[Any]] = {
    # [eval]: at least one sample; the pass threshold is any finite score
    ("eval", "eval_samples"): {-1, 0},
    ("eval", "pass_threshold"): {math.nan, math.inf, -math.inf},
    # [monitor]: windows count steps (at least 1); ratios and shares are positive; rises and falls are
    # amounts that may be 0 (fire on any rise) but never negative
    ("monitor", "baseline_steps"): {-1, 0},
    ("monitor", "window"): {-1, 0},
    ("monitor", "divergence_evals"): {-1, 0},
    ("monitor", "divergence_rise"): NON_FINITE_OR_NEGATIVE,
    ("monitor", "divergence_tolerance"): NON_FINITE_OR_NEGATIVE,
    ("monitor", "length_ratio"): ALL,
    ("monitor", "length_correlation"): ALL,
    ("monitor", "dominance_rise"): NON_FINITE_OR_NEGATIVE,
    ("monitor", "dominance_share"): ALL,
    ("monitor", "dominance_fall"): NON_FINITE_OR_NEGATIVE,
    ("monitor", "entropy_ratio"): ALL,
    ("monitor", "kl_spike"): ALL,
    ("monitor", "kl_window"): {-1, 0},
    ("monitor", "kl_min"): NON_FINITE_OR_NEGATIVE,
    ("monitor", "truncation_rise"): ALL,
    ("monitor", "cheat_rise"): ALL,
    ("monitor", "cooldown_steps"): {-1},
    ("data", "eval_limit"): {-1},
    ("data", "max_prompt_chars"): {-1},
    ("lora", "r"): {-1, 0},
    ("lora", "alpha"): {-1, 0},
    ("lora", "dropout"): NON_FINITE_OR_NEGATIVE,
    ("training", "max_steps"): {-1, 0},
    ("training", "learning_rate"): ALL,
    ("training", "warmup_steps"): {-1},
    ("training", "num_generations"): {-1, 0},
    ("training", "prompts_per_step"): {-1, 0},
    ("training", "max_completion_length"): {-1, 0},
    ("training", "temperature"): ALL,
    ("training", "top_p"): ALL,
    ("training", "beta"): NON_FINITE_OR_NEGATIVE,
    ("training", "epsilon"): ALL,
    ("training", "max_grad_norm"): NON_FINITE_OR_NEGATIVE,
    ("training", "seed"): {-1},
    ("training", "eval_every"): {-1},
    ("training", "checkpoint_every"): {-1},
    ("training", "keep_checkpoints"): {-1, 0},
    ("training", "log_every"): {-1, 0},
    ("training", "cpu_threads"): {-1},
    ("training", "vf_coef"): NON_FINITE_OR_NEGATIVE,
    ("training", "gamma"): NON_FINITE_OR_NEGATIVE,
    ("training", "lam"): NON_FINITE_OR_NEGATIVE,
    ("training", "ppo_epochs"): {-1, 0},
    ("training", "target_kl"): NON_FINITE_OR_NEGATIVE,
    ("training", "kl_horizon"): {-1, 0},
    ("training", "missing_eos_penalty"): NON_FINITE_OR_NEGATIVE,
    ("training", "num_minibatches"): {-1, 0},
    ("training", "cliprange_value"): ALL,
    # TRL GRPOConfig's knobs (engine/contract/config.py, _validate_models_and_prompts)
    ("training", "num_iterations"): {-1, 0},
    ("training", "gradient_accumulation_steps"): {-1, 0},
    ("training", "generation_batch_size"): {-1},
    ("training", "max_prompt_length"): {-1},
    ("training", "top_k"): {-1},
    ("training", "min_p"): NON_FINITE_OR_NEGATIVE,
    ("training", "repetition_penalty"): ALL,
    ("training", "top_entropy_quantile"): NON_FINITE_OR_NEGATIVE,
    ("training", "entropy_coef"): NON_FINITE_OR_NEGATIVE,
    ("training", "entropy_coef_min"): NON_FINITE_OR_NEGATIVE,
    ("training", "entropy_coef_max"): NON_FINITE_OR_NEGATIVE,
    ("training", "entropy_coef_delta"): NON_FINITE_OR_NEGATIVE,
    ("training", "entropy_target"): NON_FINITE_OR_NEGATIVE,
    ("generation", "vllm_gpu_memory_utilization"): ALL,
}


def algorithm_for(section: str, key: str) -> str:
    """PPO's keys (their help starts with "PPO:") are checked with algorithm = "ppo", once it exists."""
    ppo_key = field_help(section, key).startswith("PPO:")
    return "ppo" if ppo_key and "ppo" in ALGORITHMS else "grpo"


def numeric_keys() -> list[tuple[str, str, type]]:
    return [
        (section, f.name, type(f.default))
        for section, cls in SECTIONS.items()
        for f in fields(cls)
        if type(f.default) in (int, float)
    ]


def test_every_numeric_key_is_swept() -> None:
    """A numeric key added to the config must say here which of NaN, inf, -inf, -1 and 0 it refuses."""
    unlisted = sorted(f"[{s}] {k}" for s, k, _ in numeric_keys() if (s, k) not in REFUSED)
    assert not unlisted, f"classify these keys in REFUSED: {unlisted}"


@pytest.mark.parametrize(
    ("section", "key", "kind"), numeric_keys(), ids=lambda v: str(getattr(v, "__name__", v))
)
def test_numeric_sweep(section: str, key: str, kind: type) -> None:
    refused = REFUSED.get((section, key), set())
    for value in SWEEP:
        if kind is int and isinstance(value, float) and not math.isfinite(value):
            continue  # TOML has no infinite or NaN integers; the type check refuses them already
        data = {**minimal(), "algorithm": algorithm_for(section, key)}
        data.setdefault(section, {})[key] = kind(value) if math.isfinite(value) else value
        is_refused = any(value is v or value == v for v in refused)
        if is_refused:
            with pytest.raises(ConfigError) as err:
                config_from_dict(data)
            message = str(err.value)
            assert f"[{section}] {key}" in message or key in message, message
            assert any(w in message for w in ("must", "Use", "use")), message  # says what to do
        else:
            config_from_dict(data)  # accepted


# ---- 5. preflight: a criterion that fails on every row stops the run before training ---------------------

READS_SOLUTION = """
def uses_solution(completions, **kwargs):
    return [1.0 if kwargs["solution"] in c else 0.0 for c in completions]


def flaky(completions, answer, **kwargs):
    return [1.0 / (int(a) - 18) for a in answer]  # divides by zero on the rows whose answer is 18
"""


def test_a_criterion_failing_on_every_preflight_row_stops_the_run(tmp_path: Path) -> None:
    rubric = rubric_with(
        tmp_path,
        READS_SOLUTION,
        '[[criteria]]\nname = "uses_solution"\nkind = "python"\nsource = "rewards.py:uses_solution"\n'
        '[[criteria]]\nname = "format"\nkind = "regex"\npattern = "<answer>"\n',
    )
    train = write_jsonl(tmp_path / "train.jsonl", TRAIN)  # no 'solution' column
    config = write_run(tmp_path, train, rubric)
    message = failed_with(config, tmp_path / "ws.sqlite")
    assert "Preflight" in message and "criterion 'uses_solution'" in message
    assert "KeyError" in message and "solution" in message
    assert "'format'" not in message  # a working criterion is not blamed
    assert "reference" in message  # what it was tried on


def test_preflight_passes_a_criterion_that_fails_on_some_rows_only(tmp_path: Path) -> None:
    rubric_path = rubric_with(
        tmp_path,
        READS_SOLUTION,
        '[[criteria]]\nname = "flaky"\nkind = "python"\nsource = "rewards.py:flaky"\n',
    )
    train = write_jsonl(tmp_path / "train.jsonl", TRAIN)
    cfg = load_run_config(write_run(tmp_path, train, rubric_path))
    rows, _ = load_rows(cfg)
    with load_rubric(rubric_path) as rubric:
        preflight.check_criteria(cfg, rubric, rows)  # rows 2 and 3 fail, rows 1 and 4 score
        with pytest.raises(RubricError, match="criterion 'flaky': raised ZeroDivisionError"):
            preflight.check_criteria(cfg, rubric, [r for r in rows if r["answer"] == "18"])


def test_preflight_uses_stand_in_completions_without_references(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "reference"} for r in TRAIN]
    chosen, candidates = preflight.preflight_batches(rows)
    assert chosen == rows
    assert [what for what, _ in candidates] == ["their 'answer' as the completion", "an empty completion"]
    assert candidates[0][1] == ["-5", "18", "18", "7"]


def test_preflight_gives_token_ids_to_a_criterion_that_reads_them(tmp_path: Path) -> None:
    """Training hands TRL's completion_ids; the preflight tokenises its stand-ins with the model's tokenizer
    (without them, a criterion reading completion_ids would fail every row and stop a sound run)."""
    rubric_path = rubric_with(
        tmp_path,
        "def short(completions, completion_ids, **kwargs):\n    return [float(len(i) < 50) for i in completion_ids]\n",
        '[[criteria]]\nname = "short"\nkind = "python"\nsource = "rewards.py:short"\n',
    )
    train = write_jsonl(tmp_path / "train.jsonl", TRAIN)
    cfg = load_run_config(write_run(tmp_path, train, rubric_path))
    rows, _ = load_rows(cfg)
    with load_rubric(rubric_path) as rubric:
        assert rubric.needs_completion_ids and rubric.tokenizer is None
        preflight.check_criteria(cfg, rubric, rows)
