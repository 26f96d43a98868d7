"""rl-studio-engine data check, model info, export-model: the model and its prompts, outside a run.

rl-studio-engine data check CONFIG [--rows N] [--json]     the exact text the model sees, in tokens
rl-studio-engine model info CONFIG [--json]                parameters and the peak-memory estimate
rl-studio-engine export-model RUN --db WS (--merged OUT | --adapter OUT)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from engine.contract.config import ConfigError, load_run_config
from engine.data import DataError


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# ---- data check ---------------------------------------------------------------------------------------
def _cmd_data_check(args: argparse.Namespace) -> int:
    from engine.data import line_of_row, read_jsonl
    from engine.modeling import load_tokenizer
    from engine.prompts import has_chat_template, render, too_long, wraps_plain_prompts

    try:
        cfg = load_run_config(args.config)
        tokenizer = load_tokenizer(cfg)
        splits = {"train": read_jsonl(cfg.resolve(cfg.data.train))}
        if cfg.data.eval:
            splits["eval"] = read_jsonl(cfg.resolve(cfg.data.eval))
    except (ConfigError, DataError) as exc:
        return _fail(str(exc))
    limit = cfg.training.max_prompt_length
    train_path = cfg.resolve(cfg.data.train)
    shown = []
    for index, row in enumerate(splits["train"][: max(args.rows, 0)]):
        text, ids = render(row["prompt"], cfg.data, tokenizer)
        shown.append({"line": line_of_row(train_path, index), "tokens": len(ids), "text": text})
    long_rows = {key: too_long(rows, cfg.data, tokenizer, limit) for key, rows in splits.items()}
    template = (
        "applied to plain prompts"
        if wraps_plain_prompts(cfg.data, tokenizer)
        else ("not applied to plain prompts" if has_chat_template(tokenizer) else "none in the tokenizer")
    )
    if args.json:
        report = {
            "chat_template": cfg.data.chat_template,
            "template": template,
            "max_prompt_length": limit,
            "rows": shown,
            "too_long": {key: len(found) for key, found in long_rows.items()},
        }
        print(json.dumps(report))
        return 0
    print(f"chat template: {template} ([data] chat_template = {cfg.data.chat_template!r})")
    for item in shown:
        print(f"\n--- {train_path}:{item['line']}: {item['tokens']} tokens ---")
        print(item["text"])
    print()
    for key, found in long_rows.items():
        if found:
            index, count = max(found, key=lambda f: f[1])
            path = cfg.resolve(getattr(cfg.data, key))
            line = line_of_row(path, index)
            print(
                f"warning: {len(found)} prompt(s) of [data] {key} are longer than max_prompt_length = {limit} "
                f"tokens (the longest: {count} tokens, {path}:{line}). A run refuses them."
            )
    if limit == 0:
        print("max_prompt_length = 0: no limit is checked.")
    return 0


# ---- model info ---------------------------------------------------------------------------------------
def _cmd_model_info(args: argparse.Namespace) -> int:
    from engine.modeling import estimate_for, model_source

    try:
        cfg = load_run_config(args.config)
        source = model_source(cfg)
        dtype = cfg.model.dtype
        if dtype == "auto":
            import torch

            dtype = "bfloat16" if torch.cuda.is_available() else "float32"
        estimate = estimate_for(cfg, dtype)
    except (ConfigError, OSError, ValueError) as exc:
        return _fail(str(exc))
    t = cfg.training
    info = {
        "model": str(source),
        "parameters": estimate.parameters,
        "dtype": dtype,
        "load_in_4bit": cfg.model.load_in_4bit,
        "sequences": t.prompts_per_step * t.num_generations,
        "prompt_tokens": t.max_prompt_length or 256,
        "completion_tokens": t.max_completion_length,
        "estimate": estimate.to_dict(),
    }
    if args.json:
        print(json.dumps(info))
        return 0
    print(
        f"{info['model']}: {estimate.parameters / 1e6:.1f}M parameters, LoRA {estimate.lora_parameters / 1e6:.2f}M"
    )
    print(
        f"estimated peak {estimate.total_gb:.2f} GB ({dtype}{', 4-bit' if cfg.model.load_in_4bit else ''}; "
        f"{info['sequences']} sequences of {info['prompt_tokens']} + {info['completion_tokens']} tokens): "
        f"weights {estimate.weights_gb:.2f}, LoRA+optimizer {estimate.lora_gb:.2f}, activations "
        f"{estimate.activations_gb:.2f}, logits {estimate.logits_gb:.2f}, KV cache {estimate.kv_cache_gb:.2f}"
    )
    return 0


# ---- export-model -------------------------------------------------------------------------------------
def export_merged(cfg: Any, adapter: Path, out: Path) -> None:
    """The base model with `adapter` merged into its weights, saved with the tokenizer as an HF folder
    (transformers and vLLM load it like any model). A 4-bit run's base is merged at full precision."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.modeling import load_tokenizer, model_source, plain_weights

    source = model_source(cfg)
    tokenizer = load_tokenizer(cfg)
    dtype: Any = "auto" if cfg.model.dtype == "auto" else getattr(torch, cfg.model.dtype)
    base = AutoModelForCausalLM.from_pretrained(source.location, dtype=dtype, **source.kwargs())
    if source.gguf_file:
        plain_weights(base)  # dequantised: saved as a plain model
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(str(partial), safe_serialization=True)
    tokenizer.save_pretrained(str(partial))
    partial.replace(out)


def _cmd_export_model(args: argparse.Namespace) -> int:
    from engine.contract.paths import run_dir
    from engine.runner import stored_config
    from engine.session import ADAPTER_DIR
    from engine.store import StoreError, Workspace

    out = Path(args.merged or args.adapter)
    if out.exists() and any(out.iterdir()) if out.is_dir() else out.exists():
        return _fail(f"{out} exists and is not empty. Choose a new folder.")
    try:
        workspace = Workspace(args.db, create=False)
        run = workspace.run(args.run_id)
    except (StoreError, KeyError, LookupError, ValueError) as exc:
        return _fail(f"run {args.run_id} of {args.db}: {exc}")
    adapter = run_dir(args.db, args.run_id) / ADAPTER_DIR
    if not adapter.is_dir():
        return _fail(
            f"run {args.run_id} has no trained adapter ({adapter} is missing): it has not reached its last "
            f"step. Resume it (rl-studio-engine resume {args.run_id} --db {args.db}) and export when it is done."
        )
    if out.is_dir():
        out.rmdir()  # empty: checked above
    if args.adapter:
        shutil.copytree(adapter, out)
        print(f"adapter of run {args.run_id} written to {out}")
        return 0
    try:
        export_merged(stored_config(run), adapter, out)
    except ConfigError as exc:
        return _fail(str(exc))
    print(f"run {args.run_id}'s base model with its adapter merged written to {out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("data", help="inspect a run config's datasets as the model sees them")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser(
        "check", help="print the first prompts exactly as the model sees them, with their token counts"
    )
    p.add_argument("config", help="the run config TOML")
    p.add_argument("--rows", type=int, default=3, help="how many training rows to print (default 3)")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=_cmd_data_check, protocol=False)

    p = sub.add_parser("model", help="the base model of a run config")
    model_sub = p.add_subparsers(dest="model_command", required=True)
    p = model_sub.add_parser("info", help="parameter count and the run's estimated peak memory")
    p.add_argument("config", help="the run config TOML")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_model_info, protocol=False)

    p = sub.add_parser(
        "export-model", help="write a finished run's model: the base with its adapter merged, or the adapter"
    )
    p.add_argument("run_id", type=int)
    p.add_argument("--db", required=True, help="the workspace file")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--merged", help="folder for the merged model and tokenizer (Hugging Face format)")
    which.add_argument("--adapter", help="folder for the LoRA adapter alone (PEFT format)")
    p.set_defaults(func=_cmd_export_model, protocol=False)
