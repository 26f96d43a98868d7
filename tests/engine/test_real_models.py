"""Real models (issue 14): chat templates on plain and conversational prompts, what the run records as the
prompt, `data check`, GGUF files, `model info`, the memory estimate, and merged / adapter export."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import engine_cmd, engine_env, requires_demo, write_config

from engine.contract.paths import DEMO_DIR

pytestmark = requires_demo

# A short template: the demo model's context is 64 tokens (byte-level BPE, so any text tokenises).
TEMPLATE = (
    "{% for m in messages %}{{ m['role'][0] }}:{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}{% if think is defined and not think %}t:\n{% endif %}a:{% endif %}"
)


def templated_model(tmp_path: Path) -> Path:
    """The demo model, copied, with a chat template on its tokenizer."""
    model = tmp_path / "model"
    shutil.copytree(DEMO_DIR / "model", model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["chat_template"] = TEMPLATE
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    return model


def conversational_train(tmp_path: Path) -> Path:
    rows = [json.loads(line) for line in (DEMO_DIR / "data" / "train.jsonl").read_text().splitlines()[:16]]
    path = tmp_path / "chat.jsonl"
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row | {"prompt": [{"role": "user", "content": row["prompt"]}]}) + "\n")
    return path


def config_with(tmp_path: Path, model: Path, data: dict[str, object], **training: object) -> Path:
    path = write_config(tmp_path, max_steps=2, checkpoint_every=0, **training)
    text = path.read_text().replace(str(DEMO_DIR / "model"), str(model))
    extra = []
    for key, value in data.items():
        if key == "train":
            text = text.replace(str(DEMO_DIR / "data" / "train.jsonl"), str(value))
        elif isinstance(value, dict):
            extra.append(f"{key} = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in value.items())} }}")
        else:
            extra.append(f"{key} = {json.dumps(value)}")
    text = text.replace("eval_limit = 16\n", "eval_limit = 4\n" + "".join(x + "\n" for x in extra))
    path.write_text(text)
    return path


def run(config: Path, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        engine_cmd("run", str(config), "--db", str(db)),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=600,
    )


def group_prompts(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT prompt FROM groups ORDER BY id")]


# ---- chat templates ---------------------------------------------------------------------------------------
def test_plain_prompts_are_wrapped_in_the_template_and_the_run_records_the_rendered_text(tmp_path: Path) -> None:
    model = templated_model(tmp_path)
    config = config_with(
        tmp_path,
        model,
        {"system_prompt": "be brief", "chat_template_kwargs": {"think": False}},
        top_k=20,
        min_p=0.05,
        loss_type="grpo",
        scale_rewards="batch",
    )
    db = tmp_path / "ws.sqlite"
    proc = run(config, db)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prompts = group_prompts(db)
    assert prompts, "no rollout groups recorded"
    # system prompt, the user turn, the template variable from chat_template_kwargs, the generation prompt
    for text in prompts:
        assert text.startswith("s:be brief\nu:") and text.endswith("=\nt:\na:"), text


def test_conversational_rows_train_and_never_skips_the_template(tmp_path: Path) -> None:
    model = templated_model(tmp_path)
    config = config_with(tmp_path, model, {"train": conversational_train(tmp_path)})
    db = tmp_path / "ws.sqlite"
    proc = run(config, db)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prompts = group_prompts(db)
    assert prompts and all(p.startswith("u:") and p.endswith("=\na:") for p in prompts), prompts

    never = tmp_path / "never"
    never.mkdir()
    config = config_with(never, model, {"chat_template": "never"})
    db = never / "ws.sqlite"
    proc = run(config, db)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(p.endswith("=") and ":" not in p for p in group_prompts(db))


def test_always_without_a_template_is_refused_before_training(tmp_path: Path) -> None:
    config = config_with(tmp_path, DEMO_DIR / "model", {"chat_template": "always"})
    proc = run(config, tmp_path / "ws.sqlite")
    assert proc.returncode != 0
    assert 'chat_template = "always"' in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_data_check_prints_the_rendered_prompts_their_token_counts_and_warns_when_long(tmp_path: Path) -> None:
    model = templated_model(tmp_path)
    config = config_with(tmp_path, model, {"system_prompt": "be brief"}, max_prompt_length=8)
    proc = subprocess.run(
        engine_cmd("data", "check", str(config), "--rows", "3", "--json"),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    first = report["rows"][0]
    assert first["text"].startswith("s:be brief\nu:") and first["text"].endswith("a:")
    assert first["tokens"] > 8 and len(report["rows"]) == 3
    assert report["too_long"]["train"] > 0 and report["max_prompt_length"] == 8

    text = subprocess.run(
        engine_cmd("data", "check", str(config), "--rows", "1"),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=300,
    )
    assert "s:be brief" in text.stdout and "longer than max_prompt_length" in text.stdout + text.stderr
