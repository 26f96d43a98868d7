"""Real models: chat templates on plain and conversational prompts, what the run records as the
prompt, `data check`, GGUF files, `model info`, the memory estimate, and merged / adapter export."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

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
    path = write_config(tmp_path, **({"max_steps": 2, "checkpoint_every": 0} | training))
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
def test_plain_prompts_are_wrapped_in_the_template_and_the_run_records_the_rendered_text(
    tmp_path: Path,
) -> None:
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
    # a criterion that fails unless it is handed the dataset's own prompt and a plain string completion
    (tmp_path / "plain.py").write_text(
        "def plain(prompts, completions, **kwargs):\n"
        "    assert all(isinstance(p, str) and p.endswith('=') for p in prompts), prompts\n"
        "    assert all(isinstance(c, str) for c in completions), completions\n"
        "    return [1.0] * len(completions)\n"
    )
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(
        (DEMO_DIR / "rubric.toml").read_text().replace("rewards.py", str(DEMO_DIR / "rewards.py"))
        + f'\n[[criteria]]\nname = "plain"\nkind = "python"\nsource = "{tmp_path / "plain.py"}:plain"\nweight = 0.0\n'
    )
    config.write_text(config.read_text().replace(str(DEMO_DIR / "rubric.toml"), str(rubric)))
    db = tmp_path / "ws.sqlite"
    proc = run(config, db)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prompts = group_prompts(db)
    assert prompts, "no rollout groups recorded"
    # system prompt, the user turn, the template variable from chat_template_kwargs, the generation prompt
    for text in prompts:
        assert text.startswith("s:be brief\nu:") and text.endswith("=\nt:\na:"), text
    with sqlite3.connect(db) as conn:  # the rubric saw the dataset's string prompts and string completions
        errors = conn.execute("SELECT SUM(error_count), COUNT(*) FROM rollouts").fetchone()
        plain = conn.execute("SELECT MIN(value) FROM metrics WHERE key = 'rewards/plain/mean'").fetchone()[0]
    assert errors[0] == 0 and errors[1] > 0 and plain == 1.0


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


def test_data_check_prints_the_rendered_prompts_their_token_counts_and_warns_when_long(
    tmp_path: Path,
) -> None:
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


# ---- GGUF files -------------------------------------------------------------------------------------------
def write_gguf(model_dir: Path, out: Path, chat_template: str | None = None) -> None:
    """The demo model as a qwen2-architecture GGUF file (F32 tensors, the GPT-2-style BPE tokenizer), in the
    tensor and key names llama.cpp's converter writes, so transformers reads it as it reads any GGUF."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text())
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    writer = gguf.GGUFWriter(str(out), "qwen2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(config["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    tokens = [t for t, _ in sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])]
    special = {a["id"] for a in tok["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))]
    )
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_pad_token_id(config["pad_token_id"])
    if chat_template:
        writer.add_chat_template(chat_template)
    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    for name, array in load_file(str(model_dir / "model.safetensors")).items():
        if name in fixed:
            gguf_name = fixed[name]
        else:  # model.layers.<i>.<module>.<weight|bias>
            _, _, layer, rest = name.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            gguf_name = f"blk.{layer}.{names[module]}.{kind}"
        writer.add_tensor(gguf_name, np.ascontiguousarray(array.astype(np.float32)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_gguf_file_loads_with_its_tokenizer_and_trains(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.contract.config import load_run_config
    from engine.modeling import load_model, load_tokenizer, plan_device

    gguf_path = tmp_path / "gguf" / "demo.gguf"
    gguf_path.parent.mkdir()
    write_gguf(DEMO_DIR / "model", gguf_path, chat_template=TEMPLATE)
    config = config_with(tmp_path, gguf_path, {})
    cfg = load_run_config(config)
    tokenizer, model = load_tokenizer(cfg), load_model(cfg, plan_device(cfg))
    folder_tokenizer = AutoTokenizer.from_pretrained(DEMO_DIR / "model")
    folder_model = AutoModelForCausalLM.from_pretrained(DEMO_DIR / "model", dtype=torch.float32)
    text = "12+7=<answer>19</answer>\n"
    ids = tokenizer(text)["input_ids"]
    assert ids == folder_tokenizer(text)["input_ids"] and tokenizer.chat_template == TEMPLATE
    with torch.no_grad():
        x = torch.tensor([ids])
        assert torch.allclose(model(x).logits, folder_model(x).logits, atol=1e-5)

    info = subprocess.run(
        engine_cmd("model", "info", str(config), "--json"), capture_output=True, text=True, env=engine_env()
    )
    assert info.returncode == 0, info.stderr
    expected = sum(p.numel() for p in folder_model.parameters())
    assert json.loads(info.stdout)["parameters"] == expected

    db = tmp_path / "ws.sqlite"
    proc = run(config, db)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(p.startswith("u:") for p in group_prompts(db))  # the template came from the GGUF file


def test_a_missing_model_says_what_to_do(tmp_path: Path) -> None:
    for path, needle in (
        (tmp_path / "nothing.gguf", "does not exist"),
        (Path("no-such-org/no-such-model"), "not in the local cache"),
    ):
        config = config_with(tmp_path, DEMO_DIR / "model", {})
        config.write_text(config.read_text().replace(str(DEMO_DIR / "model"), str(path)))
        proc = run(config, tmp_path / "ws.sqlite")
        assert proc.returncode != 0 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# ---- memory, export -----------------------------------------------------------------------------------------
def test_memory_estimate_counts_the_parameters_of_real_shapes() -> None:
    from engine.contract.memory import estimate

    qwen25_05b = {
        "model_type": "qwen2",
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "vocab_size": 151936,
        "intermediate_size": 4864,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
    }
    small = estimate(qwen25_05b, dtype="bfloat16")
    assert small.parameters == 494_032_768  # Qwen2.5-0.5B's count, as transformers reports it
    assert 0.95 < small.weights_gb < 1.0
    quantised = estimate(qwen25_05b, dtype="bfloat16", load_in_4bit=True)
    assert quantised.weights_gb < small.weights_gb
    longer = estimate(qwen25_05b, dtype="bfloat16", completion_tokens=1024)
    assert longer.activations_gb > small.activations_gb and longer.kv_cache_gb > small.kv_cache_gb
    checkpointed = estimate(qwen25_05b, dtype="bfloat16", gradient_checkpointing=True)
    assert checkpointed.activations_gb < small.activations_gb / 10


def test_merged_export_generates_what_base_plus_adapter_generates(tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = config_with(tmp_path, DEMO_DIR / "model", {}, learning_rate=0.05, max_steps=3)
    db = tmp_path / "ws.sqlite"
    proc = run(config, db)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with sqlite3.connect(db) as conn:
        memory = dict(conn.execute("SELECT key, value FROM metrics WHERE key LIKE 'memory/%'").fetchall())
    assert memory["memory/peak_gb"] > 0.05 and memory["memory/estimate_gb"] > 0  # a Python process is > 50 MB

    merged, adapter = tmp_path / "merged", tmp_path / "adapter"
    for flag, out in (("--merged", merged), ("--adapter", adapter)):
        done = subprocess.run(
            engine_cmd("export-model", "1", "--db", str(db), flag, str(out)),
            capture_output=True,
            text=True,
            env=engine_env(),
        )
        assert done.returncode == 0, done.stderr
    assert (adapter / "adapter_config.json").is_file() and (merged / "config.json").is_file()

    tokenizer = AutoTokenizer.from_pretrained(merged)
    merged_model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(DEMO_DIR / "model", dtype=torch.float32)
    base_logits_model = AutoModelForCausalLM.from_pretrained(DEMO_DIR / "model", dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(adapter))
    prompts = ["3+4=", "12-15=", "7+9=", "19-2="]
    for prompt in prompts:
        x = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            texts = [
                tokenizer.decode(m.generate(**x, do_sample=False, max_new_tokens=10)[0])
                for m in (merged_model, with_adapter)
            ]
            logits = [m(**x).logits for m in (merged_model, with_adapter, base_logits_model)]
        assert texts[0] == texts[1]
        assert torch.allclose(logits[0], logits[1], atol=1e-4)
        assert not torch.allclose(logits[0], logits[2], atol=1e-4)  # the adapter did change the model


def test_trl_knobs_reach_the_trainer(tmp_path: Path) -> None:
    """gradient_accumulation_steps doubles the prompts of a generation, num_iterations = 2 reuses each
    generation for two steps: both show in what the run records (16 rollouts at steps 1 and 3 only)."""
    config = config_with(
        tmp_path,
        DEMO_DIR / "model",
        {},
        max_steps=3,
        gradient_accumulation_steps=2,
        num_iterations=2,
        importance_sampling_level="sequence",
        loss_type="grpo",
        mask_truncated_completions=True,
        top_entropy_quantile=0.5,
        entropy_coef=0.01,
    )
    config.write_text(config.read_text().replace("= True", "= true"))
    db = tmp_path / "ws.sqlite"
    proc = run(config, db)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with sqlite3.connect(db) as conn:
        per_step = conn.execute("SELECT step, COUNT(*) FROM rollouts GROUP BY step ORDER BY step").fetchall()
        losses = conn.execute("SELECT COUNT(*) FROM metrics WHERE key = 'loss'").fetchone()[0]
    assert per_step == [(1, 16), (3, 16)] and losses == 3
