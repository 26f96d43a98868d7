"""The private TRL / transformers methods the engine relies on still exist with the shape it uses.

When a TRL or transformers upgrade breaks one, these fail first, naming the method and the version,
instead of a training run failing somewhere inside TRL.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import transformers
import trl

from engine.algos import trl_compat
from engine.algos.grpo import RecordingGRPOTrainer
from engine.telemetry import Telemetry

ENGINE = Path(trl_compat.__file__).resolve().parents[1]


def test_the_installed_trl_has_every_private_method_the_engine_relies_on() -> None:
    found = trl_compat.problems()
    assert not found, (
        f"trl {trl.__version__} / transformers {transformers.__version__} changed what RL Studio relies on:\n"
        + "\n".join(found)
    )


def test_a_changed_signature_is_reported_with_the_method_and_the_version() -> None:
    expected = dataclasses.replace(trl_compat.GENERATE_AND_SCORE, parameters=("self", "inputs", "mode"))
    gone = dataclasses.replace(trl_compat.SAVE_CHECKPOINT, name="_save_checkpoint_renamed")
    changed, missing = trl_compat.problems((expected, gone))
    assert "GRPOTrainer._generate_and_score_completions takes (self, inputs)" in changed
    assert f"trl {trl.__version__}" in changed
    assert "Trainer._save_checkpoint_renamed is gone" in missing
    assert f"transformers {transformers.__version__}" in missing


def test_the_grpo_trainer_reaches_trl_internals_only_through_the_adapter() -> None:
    hook = trl_compat.GenerationHook._generate_and_score_completions
    assert RecordingGRPOTrainer._generate_and_score_completions is hook
    assert RecordingGRPOTrainer._get_train_sampler is trl_compat.SamplerHook._get_train_sampler
    for cls, base in ((RecordingGRPOTrainer, trl.GRPOTrainer), (Telemetry, transformers.TrainerCallback)):
        overridden = [
            name
            for name in vars(cls)
            if name.startswith("_") and not name.startswith("__") and hasattr(base, name)
        ]
        assert not overridden, f"{cls.__name__} overrides private {base.__name__} methods: {overridden}"


def test_no_engine_module_calls_a_private_trainer_method_outside_the_adapter() -> None:
    """A call of a private Trainer / GRPOTrainer method anywhere but trl_compat.py."""
    private = {n for cls in (trl.GRPOTrainer, transformers.Trainer) for n in dir(cls) if n.startswith("_")}
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        if path.name == "trl_compat.py" or "assets" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            if name in private and not name.startswith("__"):
                offenders.append(f"{path.relative_to(ENGINE.parent)}:{node.lineno}: {ast.unparse(node.func)}")
    assert not offenders, "private TRL/transformers calls outside engine/algos/trl_compat.py:\n" + "\n".join(
        offenders
    )


def test_trls_repeat_sampler_has_the_layout_the_difficulty_sampler_keeps() -> None:
    from trl.trainer.utils import RepeatSampler

    sampler = RepeatSampler(list(range(12)), mini_repeat_count=4, batch_size=3, repeat_count=2, seed=5)
    layout = {name: getattr(sampler, name) for name in trl_compat.REPEAT_SAMPLER_FIELDS}
    assert layout == {"mini_repeat_count": 4, "batch_size": 3, "repeat_count": 2, "seed": 5}
