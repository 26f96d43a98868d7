"""Build the bundled demo: a small arithmetic task and a tiny Qwen2-shaped causal LM that GRPO visibly improves.

Run from the repository root (about 3 minutes on 2 CPU cores):

    python engine/assets/build_demo.py
    python -m engine.assets.build_demo --agent    # the agent demo's tool-using model instead

Run it in a checkout: the wheel carries it beside its output, which it would overwrite in place.
It writes, deterministically (fixed seeds, deterministic kernels, one CPU thread):

    engine/assets/demo/data/train.jsonl, eval.jsonl   the task, split into disjoint prompts
    engine/assets/demo/model/                         tokenizer + weights, loadable with AutoTokenizer /
                                                      AutoModelForCausalLM.from_pretrained

Why the model is the way it is: the demo must show RL post-training working in a couple of minutes on a
laptop CPU, so the model has to start where RL helps. Its supervised warm-up sees only the training
prompts, and a *noisy* target for each: the right number in the <answer>N</answer> format only part of
the time, otherwise the right number without the format, or a near miss. The model learns the arithmetic
(greedy decoding is right on almost every held-out prompt) but, sampled at temperature 1, it answers in
the verifiable format with the right number only about a third of the time. GRPO, rewarded by
`rewards.py:correct`, then has something real to learn from the reward alone, and the gain shows on the
held-out prompts it never trains on. The evaluation at the end of this script reports both numbers.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import time
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

SEED = 1234
DEMO_DIR = Path(__file__).resolve().parent / "demo"
MODEL_DIR = DEMO_DIR / "model"
DATA_DIR = DEMO_DIR / "data"

# The task: "a+b=" and "a-b=" for a, b in 0..OPERAND_MAX; the answer is an integer, possibly negative.
OPERAND_MAX = 19
OPERATORS = ("+", "-")
EVAL_SIZE = 150

# The warm-up's target mixture (sums to 1). A near miss is the answer plus one of NEAR_MISSES.
P_RIGHT_TAGGED = 0.35  # "<answer>12</answer>"            right, in format
P_WRONG_TAGGED = 0.15  # "<answer>13</answer>"            near miss, in format
P_RIGHT_BARE = 0.35  # "12" | "<answer>12" | "answer 12"   right number, format broken
P_WRONG_BARE = 0.15  # "13" | ...                          near miss, format broken
NEAR_MISSES = (-2, -1, 1, 2, -10, 10)

# The model (about 165k parameters, 0.7 MB as float32 safetensors) and its warm-up.
HIDDEN = 64
LAYERS = 3
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 192
MAX_POSITIONS = 64
WARMUP_STEPS = 2500
WARMUP_BATCH = 128
WARMUP_LR = 3e-3
MAX_NEW_TOKENS = 12

# Qwen2's split regex. AutoTokenizer loads a qwen2 tokenizer as Qwen2Tokenizer, which rebuilds its
# pre-tokenizer from this regex whatever tokenizer.json says; a tokenizer trained with another
# pre-tokenizer (plain ByteLevel, say) would silently get different ids once loaded.
QWEN2_SPLIT_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
EOS = "<|endoftext|>"
ANSWER = re.compile(r"<answer>\s*(-?\d+)\s*</answer>")  # the same rule as demo/rewards.py:correct


def tagged(n: int) -> str:
    return f"<answer>{n}</answer>"


# ---- 1. data -------------------------------------------------------------------------------------------
def make_rows() -> list[dict]:
    rows = []
    for a in range(OPERAND_MAX + 1):
        for b in range(OPERAND_MAX + 1):
            for op in OPERATORS:
                answer = a + b if op == "+" else a - b
                rows.append({"prompt": f"{a}{op}{b}=", "answer": str(answer), "reference": tagged(answer)})
    return rows


def noisy_target(answer: int, rng: random.Random) -> str:
    """One warm-up target for a prompt whose answer is `answer`, drawn from the mixture above."""
    u = rng.random()
    near_miss = answer + rng.choice(NEAR_MISSES)
    if u < P_RIGHT_TAGGED:
        return tagged(answer)
    if u < P_RIGHT_TAGGED + P_WRONG_TAGGED:
        return tagged(near_miss)
    n = answer if u < P_RIGHT_TAGGED + P_WRONG_TAGGED + P_RIGHT_BARE else near_miss
    return rng.choice((f"{n}", f"<answer>{n}", f"answer {n}"))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


# ---- 2. tokenizer --------------------------------------------------------------------------------------
def train_tokenizer(rows: list[dict], rng: random.Random) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()  # as Qwen2Tokenizer
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,  # an upper bound: this corpus stops merging well before it
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodes: no unknown tokens
        show_progress=False,
    )
    # GRPO tokenizes the prompt alone and generates the completion after it, so train on them apart too.
    corpus = [r["prompt"] for r in rows] + [r["reference"] for r in rows]
    corpus += [noisy_target(int(r["answer"]), rng) for r in rows]
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, out: Path) -> None:
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, unk_token=EOS)
    fast.save_pretrained(out)
    # Name the class AutoTokenizer would pick for a qwen2 model anyway, so there is one way it loads.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update(tokenizer_class="Qwen2Tokenizer", add_prefix_space=False, model_max_length=MAX_POSITIONS)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_tokenizer(tok: Tokenizer, loaded, rows: list[dict]) -> None:
    """AutoTokenizer must encode exactly like the tokenizer just trained."""
    samples = [s for r in rows for s in (r["prompt"], r["reference"])]
    samples += ["7+5=<answer>12</answer>", "answer -3", "<answer>-7", "Hello, world! It's 2 o'clock.\n  x y"]
    for s in samples:
        trained, auto = tok.encode(s).ids, loaded(s)["input_ids"]
        if trained != auto:
            sys.exit(f"tokenizer mismatch on {s!r}: trained {trained} vs AutoTokenizer {auto}")
        if loaded.decode(auto) != s:
            sys.exit(f"tokenizer does not round-trip {s!r}: {loaded.decode(auto)!r}")


# ---- 3. model ------------------------------------------------------------------------------------------
def make_model(tok) -> Qwen2ForCausalLM:
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
        max_new_tokens=MAX_NEW_TOKENS,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return model


# ---- 4. warm-up ----------------------------------------------------------------------------------------
def encode_pair(tok, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """Input ids and labels; the loss is on the completion and its end-of-text only."""
    p = tok(prompt)["input_ids"]
    c = tok(completion)["input_ids"] + [tok.eos_token_id]
    return p + c, [-100] * len(p) + c


def warm_up(model, tok, rows: list[dict], rng: random.Random) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=WARMUP_LR, weight_decay=0.01, betas=(0.9, 0.98))
    model.train()
    t0 = time.time()
    for step in range(WARMUP_STEPS):
        lr = WARMUP_LR * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / WARMUP_STEPS))
        for group in opt.param_groups:
            group["lr"] = lr
        # Fresh targets every step: the model learns the mixture, not one fixed wrong answer per prompt.
        pairs = [
            encode_pair(tok, r["prompt"], noisy_target(int(r["answer"]), rng))
            for r in rng.choices(rows, k=WARMUP_BATCH)
        ]
        width = max(len(ids) for ids, _ in pairs)
        ids = torch.full((len(pairs), width), tok.pad_token_id)
        labels = torch.full((len(pairs), width), -100)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for i, (x, y) in enumerate(pairs):
            ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 500 == 0 or step == WARMUP_STEPS - 1:
            print(f"  warm-up step {step:5d}  loss {loss.item():.3f}  lr {lr:.1e}  {time.time() - t0:4.0f}s")
    model.eval()


# ---- 5. report -----------------------------------------------------------------------------------------
@torch.no_grad()
def accuracy(model, tok, rows: list[dict], sample: bool) -> tuple[float, float]:
    """(mean of `correct`, fraction in format) over one completion per prompt."""
    tok.padding_side = "left"
    enc = tok([r["prompt"] for r in rows], return_tensors="pt", padding=True)
    torch.manual_seed(SEED)
    # Sampling as GRPO samples: plain temperature 1 over the whole vocabulary (TRL's top_k=0, top_p=1).
    how = (
        {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if sample else {"do_sample": False}
    )
    out = model.generate(**enc, **how, max_new_tokens=MAX_NEW_TOKENS)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    right = [
        (m := ANSWER.search(t)) is not None and m.group(1) == r["answer"]
        for t, r in zip(texts, rows, strict=True)
    ]
    in_format = [re.fullmatch(r"<answer>-?\d+</answer>", t) is not None for t in texts]
    return sum(right) / len(rows), sum(in_format) / len(rows)


def build() -> None:
    t_start = time.time()
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # reductions in one fixed order: the same weights on every machine's CPU
    rng = random.Random(SEED)

    print("1. data")
    rows = make_rows()
    shuffled = rng.sample(rows, len(rows))
    evals, train = shuffled[:EVAL_SIZE], shuffled[EVAL_SIZE:]
    write_jsonl(DATA_DIR / "train.jsonl", train)
    write_jsonl(DATA_DIR / "eval.jsonl", evals)
    print(f"  {len(train)} train + {len(evals)} held-out rows (disjoint prompts) -> {DATA_DIR}")

    print("2. tokenizer")
    tok = train_tokenizer(rows, rng)
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tok, MODEL_DIR)
    loaded = AutoTokenizer.from_pretrained(MODEL_DIR)
    check_tokenizer(tok, loaded, rows)
    pieces = loaded.convert_ids_to_tokens(loaded(tagged(12))["input_ids"])
    print(
        f"  byte-level BPE with Qwen2's split regex, {len(loaded)} tokens; {type(loaded).__name__} encodes identically"
    )
    print(f"  {tagged(12)!r} -> {pieces}")

    print("3. model")
    torch.manual_seed(SEED)
    model = make_model(loaded)
    print(f"  Qwen2ForCausalLM, {sum(p.numel() for p in model.parameters()):,} parameters")

    print(f"4. warm-up: {WARMUP_STEPS} steps x {WARMUP_BATCH} noisy targets, training prompts only")
    warm_up(model, loaded, train, rng)

    print("5. save and evaluate")
    model.save_pretrained(MODEL_DIR)
    size = sum(f.stat().st_size for f in MODEL_DIR.iterdir())
    print(f"  {MODEL_DIR}: {size / 1e6:.2f} MB ({', '.join(sorted(f.name for f in MODEL_DIR.iterdir()))})")
    for name, split in (("train", train), ("held-out", evals)):
        greedy, _ = accuracy(model, loaded, split, sample=False)
        sampled, in_format = accuracy(model, loaded, split, sample=True)
        print(
            f"  {name:8s}: correct greedy {greedy:.2f} | sampled at T=1 {sampled:.2f} (in format {in_format:.2f})"
        )
    print(f"done in {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    if "--agent" in sys.argv:  # the tool-using demo model (engine/assets/build_demo_agent.py)
        from engine.assets.build_demo_agent import build as build_agent

        build_agent()
    else:
        build()
