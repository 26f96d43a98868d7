"""A criterion receives completions of one and the same shape in `rubric test`, `rubric redteam`, the
preflight, held-out evaluation and training: a string for a standard dataset, TRL's
`[{"role": "assistant", "content": text}]` for a conversational one.

Before, red-teaming a conversational dataset scored its `reference` completions as plain strings while
training handed message lists, so a reward written for strings showed a reference mean of 1.000 and no
flags, and then scored 0 on every rollout. Here a real python criterion writes down what it was handed,
in every path, over real files and a short real run on the demo model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import engine_cmd, engine_env, requires_demo

from engine.contract.paths import DEMO_DIR
from engine.rewards.commands import main as rubric_main

pytestmark = requires_demo

RECORDER = """
import json

LOG = {log!r}


def shape(completion):
    if isinstance(completion, str):
        return "str"
    return [
        {{k: (v if k == "role" else type(v).__name__) for k, v in m.items()}} if isinstance(m, dict) else repr(m)
        for m in completion
    ]


def record(prompts, completions, answer, **kwargs):
    with open(LOG, "a") as fh:
        fh.write(json.dumps({{"n": len(completions), "shapes": [shape(c) for c in completions]}}) + "\\n")
    return [1.0 if str(a) in str(c) else 0.0 for c, a in zip(completions, answer)]
"""

ROWS = [("6-11=", "-5"), ("1+17=", "18"), ("10+8=", "18"), ("3+4=", "7")]
EVAL_ROWS = [("19+18=", "37"), ("11-5=", "6"), ("2-19=", "-17")]
CONVERSATIONAL_SHAPE = [{"role": "assistant", "content": "str"}]


def prompt(text: str, conversational: bool) -> Any:
    return [{"role": "user", "content": text}] if conversational else text


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def model_with_chat_template(tmp_path: Path) -> Path:
    """The demo model, with a chat template (it has none): conversational prompts need one to train."""
    model = tmp_path / "model"
    shutil.copytree(DEMO_DIR / "model", model)
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    config_path.write_text(json.dumps(config))
    return model


def take(log: Path) -> list[dict[str, Any]]:
    """What the criterion recorded since the last call (and forget it)."""
    if not log.exists():
        return []
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    log.unlink()
    return calls


def shapes_of(calls: list[dict[str, Any]]) -> list[Any]:
    found: list[Any] = []
    for call in calls:
        for s in call["shapes"]:
            if s not in found:
                found.append(s)
    return found


@pytest.mark.parametrize("conversational", [False, True], ids=["plain", "conversational"])
def test_every_path_hands_a_criterion_the_same_shape(
    tmp_path: Path, conversational: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "shapes.jsonl"
    (tmp_path / "rewards.py").write_text(RECORDER.format(log=str(log)))
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(
        'name = "shapes"\n[[criteria]]\nname = "record"\nkind = "python"\nsource = "rewards.py:record"\n'
    )
    train = write_jsonl(
        tmp_path / "train.jsonl",
        [
            # references are plain strings in either format: that is how datasets carry them
            {"prompt": prompt(q, conversational), "answer": a, "reference": f"<answer>{a}</answer>"}
            for q, a in ROWS
        ],
    )
    evals = write_jsonl(
        tmp_path / "eval.jsonl", [{"prompt": prompt(q, conversational), "answer": a} for q, a in EVAL_ROWS]
    )
    samples = write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {"prompt": prompt(q, conversational), "completion": f"<answer>{a}</answer>", "answer": a}
            for q, a in ROWS
        ],
    )
    expected = CONVERSATIONAL_SHAPE if conversational else "str"

    # rubric test
    assert rubric_main(["rubric", "test", str(rubric), "--samples", str(samples), "--json"]) == 0
    assert shapes_of(take(log)) == [expected]

    # rubric redteam: the references and every cheat
    assert rubric_main(["rubric", "redteam", str(rubric), "--dataset", str(train), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["reference_mean"] == 1.0  # str(answer) in str(completion) holds either way
    assert shapes_of(take(log)) == [expected]

    # a run: the preflight, evaluation and training
    model = model_with_chat_template(tmp_path) if conversational else DEMO_DIR / "model"
    config = tmp_path / "run.toml"
    config.write_text(
        f'algorithm = "grpo"\n[model]\npath = "{model}"\n[data]\ntrain = "{train}"\neval = "{evals}"\n'
        f'[rubric]\npath = "{rubric}"\n[lora]\ntarget_modules = ["q_proj", "v_proj"]\n[training]\n'
        "max_steps = 1\nnum_generations = 3\nprompts_per_step = 2\nmax_completion_length = 4\n"
        'checkpoint_every = 0\ndevice = "cpu"\nseed = 1\n'
    )
    proc = subprocess.run(
        engine_cmd("run", str(config), "--db", str(tmp_path / "ws.sqlite")),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    calls = take(log)
    by_size: dict[int, list[dict[str, Any]]] = {}
    for call in calls:
        by_size.setdefault(call["n"], []).append(call)
    assert set(by_size) == {3, 4, 6}, calls  # evaluation (3 prompts), preflight (4 rows), training (2 x 3)
    for size, phase in by_size.items():
        assert shapes_of(phase) == [expected], (size, phase)
