"""Build the bundled agent demo model: a tiny Qwen2-shaped causal LM that calls the file manager's tools.

Run from the repository root (`python -m engine.assets.build_demo --agent`, or this module directly).
It writes, deterministically (fixed seeds, deterministic kernels, one CPU thread):

    engine/assets/demo_agent/model/     tokenizer (with a tool-calling chat template and the response
                                        template TRL parses tool calls with) + weights

The tasks are the built-in file manager's (engine/envs/data/): "move every file matching PATTERN from A
to B, then write B/manifest.json listing what you moved". The demo run (demo_agent/run.toml) trains on
the 72 training tasks (54 easy, 18 hard) and evaluates on the 24 held-out ones (12 easy, 12 hard).

Why the model is the way it is (the same idea as the arithmetic demo): RL should visibly help within a few
minutes on a laptop CPU, so the model must start where it can. Its supervised warm-up plays file-manager
tasks drawn with another seed than the committed ones (never the held-out tasks; 30% of them hard), with
*noisy* traces: the right calls half of the time (list the source with the task's pattern, move every
file listed into the destination folder, write the manifest), otherwise one typical mistake, each a
single early choice: the manifest lists paths instead of names (15%), the manifest is forgotten (15%), or
the source is listed without the pattern and every file in it is moved (20%). A trace is three assistant
turns: list the source; move the files and write the manifest, all calls in one message; say "Done.".
Greedy, the model completes most tasks, hard ones included; sampled at temperature 1 it makes one of the
mistakes most of the time, and completes about a third of the held-out tasks. GRPO, rewarded by the
environment's outcome alone, then has something real to learn. The evaluation at the end of this script
reports the success rates, greedy and sampled.

Options: --steps N (warm-up steps, 4000), --p-all X (the share of "move every file" tasks, 0.1) and
--out DIR (write the model there instead, to compare builds).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from engine.envs.evaluation import play_episodes
from engine.envs.file_manager import MANIFEST, FileManagerEnv, make_task

SEED = 4321
ASSETS = Path(__file__).resolve().parent
# --out DIR writes the model elsewhere (to compare builds); the committed one is demo_agent/model.
MODEL_DIR = (
    Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else ASSETS / "demo_agent" / "model"
)
TASKS_DIR = ASSETS.parent / "envs" / "data"

WARMUP_TASKS = 1600  # drawn with SEED, so none is a committed training or held-out task
P_HARD = 0.3
# A share of the drawn tasks say "move every file" (pattern "*"), which the pattern-less listing solves too.
P_ALL = float(sys.argv[sys.argv.index("--p-all") + 1]) if "--p-all" in sys.argv else 0.1
# The warm-up's trace mixture (sums to 1).
NOISE = {
    "right": 0.5,
    "manifest_paths": 0.15,  # ["inbox/a.csv"] instead of ["a.csv"]
    "no_manifest": 0.15,  # moves the right files, writes no manifest
    "unfiltered": 0.2,  # lists the source without the pattern and moves every file in it
}

# The model (about 253k parameters, about 1 MB as float32 safetensors) and its warm-up.
HIDDEN = 64
LAYERS = 4
HEADS = 4
KV_HEADS = 4
INTERMEDIATE = 192
MAX_POSITIONS = 768
WARMUP_STEPS = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 4000
WARMUP_BATCH = 16
WARMUP_LR = 3e-3
MAX_TURNS = 4
MAX_COMPLETION_LENGTH = 448  # as demo_agent/run.toml: a committed task played right takes up to 380

# Qwen2's split regex, except that "/" never joins the word after it: a file name splits into the same
# pieces wherever it appears, in a listing, a path or the manifest (its stem and its extension: "draft",
# ".csv"), so copying a name from the listing is copying two frequent tokens.
SPLIT_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}/]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"

# ChatML, as Qwen's, with tools listed compactly (name and parameters: the demo model reads no docstrings)
# and each call as <tool_call>{"name": ..., "arguments": {...}}</tool_call>. Prefix-preserving, as TRL's
# multi-turn loop requires: a message renders the same whatever follows it.
CHAT_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nTools:"
    "{%- for tool in tools %}{%- set f = tool.function if tool.function is defined else tool %}"
    " {{ f.name }}({{ f.parameters.properties | list | join(', ') }})"
    "{%- endfor %}<|im_end|>{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}<|im_start|>assistant\n{{ message.content or '' }}"
    "{%- for call in message.tool_calls or [] %}{%- set f = call.function if call.function is defined else call %}"
    '<tool_call>{"name": "{{ f.name }}", "arguments": '
    "{{ f.arguments if f.arguments is string else f.arguments | tojson }}}</tool_call>"
    "{%- endfor %}<|im_end|>"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# How transformers' parse_response (and so TRL) reads an assistant message back: Qwen3's response
# template without the thinking field.
RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open": TOOL_OPEN,
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}


# ---- 1. traces -----------------------------------------------------------------------------------------
def call(name: str, **arguments: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def warmup_traces(rng: random.Random, train: list[dict[str, Any]]) -> list[tuple[list[Any], list[Any]]]:
    """(prompt, trace) pairs: two noisy traces of each drawn task and of each training task."""
    tasks = []
    for i in range(WARMUP_TASKS):
        tier = "hard" if rng.random() < P_HARD else "easy"
        tasks.append(make_task(rng, tier, f"warm-{i}", "*" if rng.random() < P_ALL else None))
    tasks += train
    return [(t["prompt"], noisy_trace(t, rng)) for t in tasks for _ in range(2)]


def noisy_trace(task: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """A played episode (the messages after the prompt) with the tool results a real FileManagerEnv gives."""
    env = FileManagerEnv()
    env.reset(**task)
    source, destination = task["source"], task["destination"]
    kind = rng.choices(list(NOISE), weights=list(NOISE.values()))[0]
    if task["pattern"] == "*" and kind == "unfiltered":
        kind = "right"
    if kind == "unfiltered":
        first = call("list_files", folder=source)
        listed = env.list_files(source).split("\n")
        names = [n for n in listed if not n.endswith("/") and f"{destination}/{n}" not in env.files]
    else:
        first = call("list_files", folder=source, pattern=task["pattern"])
        names = list(task["answer"])
    manifest = [f"{source}/{n}" for n in names] if kind == "manifest_paths" else names
    # into the folder ("archive/"), as `mv inbox/a.csv archive/`: each name is copied once per move, not twice
    second = [call("move_file", source=f"{source}/{n}", destination=f"{destination}/") for n in names]
    if kind != "no_manifest":
        second.append(call("write_file", path=f"{destination}/{MANIFEST}", content=json.dumps(manifest)))
    messages: list[dict[str, Any]] = []
    for calls in ([first], second):
        messages.append({"role": "assistant", "content": "", "tool_calls": calls})
        for c in calls:
            f = c["function"]
            result = getattr(env, f["name"])(**f["arguments"])
            messages.append({"role": "tool", "name": f["name"], "content": result})
    messages.append({"role": "assistant", "content": "Done."})
    return messages


def tool_schemas() -> list[Any]:
    env = FileManagerEnv()
    return [env.list_files, env.read_file, env.write_file, env.move_file]


# ---- 2. tokenizer --------------------------------------------------------------------------------------
def train_tokenizer(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        min_frequency=4,
        special_tokens=[PAD, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(TOOL_OPEN, special=False), AddedToken(TOOL_CLOSE, special=False)])
    return tok


def save_tokenizer(tok: Tokenizer, out: Path) -> Any:
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=PAD, unk_token=PAD, bos_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.response_template = RESPONSE_TEMPLATE
    fast.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    # Loaded as written (Qwen2Tokenizer would rebuild it from its vocabulary and merges).
    cfg.update(tokenizer_class="PreTrainedTokenizerFast", model_max_length=MAX_POSITIONS)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return AutoTokenizer.from_pretrained(out)


def check_tokenizer(tok: Tokenizer, loaded: Any, texts: list[str]) -> None:
    """AutoTokenizer must encode like the tokenizer just trained, and TRL must accept the chat template."""
    from trl.chat_template_utils import (
        is_chat_template_prefix_preserving,
        parse_response,
        supports_tool_calling,
    )

    for s in texts[:50]:
        if tok.encode(s).ids != loaded(s)["input_ids"]:
            sys.exit(f"tokenizer mismatch on {s[:80]!r}")
    if not supports_tool_calling(loaded) or not is_chat_template_prefix_preserving(loaded):
        sys.exit("the chat template does not render tool calls, or is not prefix-preserving, as TRL needs")
    text = '<tool_call>{"name": "list_files", "arguments": {"folder": "inbox"}}</tool_call><|im_end|>'
    parsed = parse_response(
        loaded, loaded(text)["input_ids"], prefix=loaded("<|im_start|>assistant\n")["input_ids"]
    )
    if parsed.get("tool_calls") != [call("list_files", folder="inbox")]:
        sys.exit(f"TRL does not parse the demo's tool calls back: {parsed}")


# ---- 3. model ------------------------------------------------------------------------------------------
def make_model(tok: Any) -> Qwen2ForCausalLM:
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        max_new_tokens=MAX_COMPLETION_LENGTH,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return model


# ---- 4. warm-up ----------------------------------------------------------------------------------------
def encode_trace(
    tok: Any, prompt: list[dict[str, Any]], trace: list[dict[str, Any]]
) -> tuple[list[int], list[int]]:
    """Input ids and labels of a whole episode; the loss is on the assistant turns (to their <|im_end|>)."""
    text = tok.apply_chat_template(prompt + trace, tools=tool_schemas(), tokenize=False)
    enc = tok(text, return_offsets_mapping=True)
    spans, start = [], 0
    header = f"{IM_START}assistant\n"
    while (at := text.find(header, start)) >= 0:
        end = text.index(IM_END, at) + len(IM_END)
        spans.append((at + len(header), end))
        start = end
    ids = enc["input_ids"]
    labels = [
        i if any(a <= s < b for a, b in spans) else -100
        for i, (s, _) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    return ids, labels


def warm_up(model: Any, pool: list[tuple[list[int], list[int]]], pad_id: int, rng: random.Random) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=WARMUP_LR, weight_decay=0.01, betas=(0.9, 0.98))
    model.train()
    t0 = time.time()
    for step in range(WARMUP_STEPS):
        # constant after a short ramp (retrieving names from the context forms late: the rate must still be
        # high then), decayed over the last 15%
        lr = WARMUP_LR * min(1.0, (step + 1) / 50, (WARMUP_STEPS - step) / (0.15 * WARMUP_STEPS))
        for group in opt.param_groups:
            group["lr"] = lr
        # traces of similar length together (the pool is sorted by length): little compute spent on padding
        start = rng.randrange(len(pool) - WARMUP_BATCH + 1)
        pairs = pool[start : start + WARMUP_BATCH]
        width = max(len(ids) for ids, _ in pairs)
        ids = torch.full((len(pairs), width), pad_id)
        labels = torch.full((len(pairs), width), -100)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for i, (x, y) in enumerate(pairs):
            ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == WARMUP_STEPS - 1:
            print(
                f"  warm-up step {step:5d}  loss {loss.item():.3f}  lr {lr:.1e}  {time.time() - t0:4.0f}s",
                flush=True,
            )
    model.eval()


# ---- 5. report -----------------------------------------------------------------------------------------
def success(model: Any, tok: Any, rows: list[dict[str, Any]], temperature: float) -> float:
    envs = [FileManagerEnv() for _ in rows]
    play_episodes(
        model, tok, envs, rows, MAX_TURNS, MAX_COMPLETION_LENGTH, temperature=temperature, seed=SEED
    )
    return sum(env.get_reward() for env in envs) / len(rows)


def read_tasks(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (TASKS_DIR / name).read_text(encoding="utf-8").splitlines()]


def build() -> None:
    t_start = time.time()
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    rng = random.Random(SEED)

    print("1. traces")
    train, held_out = read_tasks("file_manager_train.jsonl"), read_tasks("file_manager_eval.jsonl")
    traces = warmup_traces(rng, train)
    print(
        f"  {len(traces)} traces of {WARMUP_TASKS + len(train)} tasks (the 72 training tasks and "
        f"{WARMUP_TASKS} drawn, {P_ALL:.0%} of them 'move every file')"
    )

    print("2. tokenizer")
    plain = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()))
    plain.chat_template = CHAT_TEMPLATE
    texts = [
        str(plain.apply_chat_template(p + t, tools=tool_schemas(), tokenize=False)) for p, t in traces[:1500]
    ]
    tok = train_tokenizer(texts)
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    for stale in MODEL_DIR.iterdir():  # an old config.json would change how the tokenizer loads
        stale.unlink()
    loaded = save_tokenizer(tok, MODEL_DIR)
    check_tokenizer(tok, loaded, texts)
    print(f"  byte-level BPE, {len(loaded)} tokens; chat template with tools; TRL parses its tool calls")

    print("3. model")
    torch.manual_seed(SEED)
    model = make_model(loaded)
    print(f"  Qwen2ForCausalLM, {sum(p.numel() for p in model.parameters()):,} parameters")

    pool = sorted((encode_trace(loaded, p, t) for p, t in traces), key=lambda pair: len(pair[0]))
    longest = max(len(ids) for ids, _ in pool)
    print(f"4. warm-up: {WARMUP_STEPS} steps x {WARMUP_BATCH} traces (longest {longest} tokens)")
    warm_up(model, pool, loaded.pad_token_id, rng)

    print("5. save and evaluate")
    model.save_pretrained(MODEL_DIR)
    loaded = AutoTokenizer.from_pretrained(MODEL_DIR)  # as a run loads it, beside the model's config.json
    check_tokenizer(tok, loaded, texts)
    size = sum(f.stat().st_size for f in MODEL_DIR.iterdir())
    print(f"  {MODEL_DIR}: {size / 1e6:.2f} MB")
    for name, split in (
        ("train", train[:24]),
        ("held-out easy", held_out[:12]),
        ("held-out hard", held_out[12:]),
    ):
        greedy = success(model, loaded, split, temperature=0.0)
        sampled = success(model, loaded, split, temperature=1.0)
        print(f"  {name:14s}: success greedy {greedy:.2f} | sampled at T=1 {sampled:.2f}", flush=True)
    print(f"done in {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    build()
