"""PPO with LoRA: a compact actor-critic for language models, on one base model (TRL 1.16 has none).

Reads top to bottom like CleanRL's ppo.py: build, then a loop of generate, score, optimise, log, with the
run's lifecycle (pause, stop, checkpoints, evaluation) decided by engine/lifecycle.py as for GRPO.

Three roles, one copy of the base weights:
- policy: the base with the LoRA adapter "default" (PEFT's default name, so the exported adapter loads
  exactly like GRPO's);
- reference: the same base with every adapter disabled (`with model.disable_adapter():`);
- value: the base with a second LoRA adapter "value" and a linear head on the last hidden state. The head
  starts at zero, so every value starts at 0 and the first advantages are the rewards themselves. A
  separate adapter, rather than a head on the policy's own hidden states, keeps the value loss from moving
  the policy (PPO's two losses then share no parameters, and the policy equals the reference until the
  first policy update); it costs one more forward and backward pass of the base per minibatch.

The reward of a completion is the rubric's total (session.score: GRPO's scoring path), minus
`missing_eos_penalty` when it was cut off, placed on its last token; every token also pays
`kl_coef x KL(policy || reference)` (estimator k1 or k3). `kl_coef` starts at `beta` and, with a
`target_kl`, follows Ziegler et al. (2019)'s adaptive controller. Advantages are GAE(gamma, lam) over the
completion tokens, whitened over the step's tokens; the losses are PPO's clipped policy objective and a
clipped value loss. Log-probabilities are taken at the sampling temperature, as GRPO does.

One step = one batch of prompts_per_step x num_generations completions per process, then ppo_epochs
passes over num_minibatches minibatches (one optimizer step each); the learning-rate schedule advances
once per step. The prompts of step s and its sampling seed are functions of (seed, s), so a resumed run
draws the same prompts and samples a killed run would have.

Several processes (torchrun / accelerate launch): each trains on its own share of each step's prompts and
the gradients are averaged by an explicit all-reduce before clipping (DDP's reducer expects one backward
per forward over one set of parameters; here two adapters are used in separate passes).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from torch import Tensor, nn
from transformers import get_scheduler

from engine import control
from engine.algos.grpo import lora_config
from engine.contract import token_stats as ts
from engine.generation import generate
from engine.lifecycle import Lifecycle
from engine.memory_use import record_peak_memory
from engine.modeling import DevicePlan
from engine.rewards.api import ScoredBatch
from engine.session import COMPLETE_MARKER, Rollouts, RunSession
from engine.token_evidence import TokenTexts, token_blobs

POLICY, VALUE = "default", "value"  # the two LoRA adapters


# ---- math: the pieces tests check by hand -----------------------------------------------------------
def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / std over the masked entries (unbiased variance); masked-out entries become 0."""
    n = mask.sum()
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask) * n / (n - 1).clamp(min=1)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and returns over right-padded sequences [batch, tokens]. The state
    after a sequence's last token is terminal (value 0)."""
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    width = rewards.shape[1]
    for t in reversed(range(width)):
        next_value = values[:, t + 1] if t + 1 < width else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages * mask, (advantages + values) * mask


def kl_per_token(logprobs: Tensor, ref_logprobs: Tensor, estimator: str) -> Tensor:
    """KL(policy || reference) per sampled token: k1 = log(p/q), k3 = q/p - 1 - log(q/p) (Schulman)."""
    log_ratio = ref_logprobs - logprobs
    if estimator == "k3":
        return torch.exp(log_ratio) - 1 - log_ratio
    return -log_ratio


def clipped_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, cliprange: float
) -> tuple[Tensor, Tensor]:
    """0.5 x the larger of the plain and the clipped squared error; and the fraction where clipping bit."""
    clipped = old_values + (values - old_values).clamp(-cliprange, cliprange)
    plain_error, clipped_error = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(plain_error, clipped_error), mask)
    return loss, masked_mean((clipped_error > plain_error).float(), mask)


@dataclass
class KLController:
    """kl_coef, fixed at `value` or adapted toward `target` nats per completion (Ziegler et al. 2019)."""

    value: float
    target: float = 0.0
    horizon: int = 10000

    def update(self, completion_kl: float, completions: int) -> None:
        if self.target <= 0:
            return
        error = min(max(completion_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * completions / self.horizon


# ---- the model: one base, three roles ----------------------------------------------------------------
@dataclass
class Tokens:
    """A step's sequences: prompts left-padded, completions right-padded after them; `mask` marks the
    completion tokens that were generated (padding after an EOS is 0)."""

    input_ids: Tensor
    attention_mask: Tensor
    mask: Tensor
    prompt_width: int

    @property
    def completion_ids(self) -> Tensor:
        return self.input_ids[:, self.prompt_width :]

    def rows(self, index: Tensor) -> Tokens:
        return Tokens(self.input_ids[index], self.attention_mask[index], self.mask[index], self.prompt_width)

    def to(self, device: torch.device) -> Tokens:
        ids, attention, mask = self.input_ids.to(device), self.attention_mask.to(device), self.mask.to(device)
        return Tokens(ids, attention, mask, self.prompt_width)


def make_tokens(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int) -> Tokens:
    completion_ids = [ids or [pad_id] for ids in completion_ids]  # never empty: a reward needs a token
    p_width, c_width = max(map(len, prompt_ids)), max(map(len, completion_ids))
    ids = torch.full((len(prompt_ids), p_width + c_width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for row, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
        ids[row, p_width - len(p) : p_width] = torch.tensor(p)
        ids[row, p_width : p_width + len(c)] = torch.tensor(c)
        attention[row, p_width - len(p) : p_width + len(c)] = 1
    return Tokens(ids, attention, attention[:, p_width:].float(), p_width)


def build_model(session: RunSession, base: Any) -> tuple[PeftModel, nn.Linear]:
    torch.manual_seed(session.cfg.training.seed)  # the LoRA A matrices start the same on every process
    model = get_peft_model(base, lora_config(session))
    model.add_adapter(VALUE, lora_config(session))
    use_adapter(model, POLICY)
    head = nn.Linear(base.config.hidden_size, 1, device=base.device, dtype=torch.float32)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return model, head


def use_adapter(model: PeftModel, name: str) -> None:
    """Route forward passes through adapter `name`, and keep both adapters trainable: PEFT's set_adapter
    freezes the inactive one, and autograd drops the gradient of a parameter frozen between its forward
    pass and the backward (the value pass's backward runs after the switch back to the policy)."""
    model.set_adapter(name)
    model.set_requires_grad([POLICY, VALUE], True)


@contextmanager
def value_adapter(model: PeftModel) -> Iterator[None]:
    use_adapter(model, VALUE)
    try:
        yield
    finally:
        use_adapter(model, POLICY)


def hidden_states(model: PeftModel, tokens: Tokens) -> Tensor:
    """Last hidden states at the positions that predict each completion token [batch, tokens, hidden],
    through the active adapter; the vocabulary projection is left to the caller (only the policy needs it)."""
    causal_lm: Any = model.get_base_model()
    body = getattr(causal_lm, causal_lm.base_model_prefix)
    device = next(model.parameters()).device
    attention = tokens.attention_mask.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)  # as generate() numbers left-padded prompts
    out = body(input_ids=tokens.input_ids.to(device), attention_mask=attention, position_ids=positions)
    return out.last_hidden_state[:, tokens.prompt_width - 1 : -1]  # type: ignore[no-any-return]


def policy_logprobs(model: PeftModel, tokens: Tokens, temperature: float) -> tuple[Tensor, Tensor]:
    """Log-probability of each completion token and the entropy of each next-token distribution."""
    causal_lm: Any = model.get_base_model()
    logits = causal_lm.get_output_embeddings()(hidden_states(model, tokens)).float()
    logprobs = F.log_softmax(logits / temperature, dim=-1)
    chosen = logprobs.gather(-1, tokens.completion_ids.to(logits.device).unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(logprobs.exp() * logprobs).sum(-1)
    return chosen, entropy


def reference_logprobs(model: PeftModel, tokens: Tokens, temperature: float) -> Tensor:
    try:
        with model.disable_adapter():
            return policy_logprobs(model, tokens, temperature)[0]
    finally:
        use_adapter(model, POLICY)  # re-enabling the adapters froze all but the active one


def state_values(model: PeftModel, head: nn.Linear, tokens: Tokens) -> Tensor:
    with value_adapter(model):
        hidden = hidden_states(model, tokens)
    return head(hidden.float()).squeeze(-1)  # type: ignore[no-any-return]


# ---- several processes -------------------------------------------------------------------------------
def rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if control.world_size() > 1 and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def average_gradients(params: list[nn.Parameter], world: int) -> None:
    if world == 1:
        return
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads]) / world
    dist.all_reduce(flat)
    for p, g in zip(params, flat.split([g.numel() for g in grads]), strict=True):
        p.grad = g.view_as(p).clone()


def average_stats(stats: dict[str, float], world: int) -> dict[str, float]:
    if world == 1:
        return stats
    import torch.distributed as dist

    keys = sorted(stats)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
    values = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=device) / world
    dist.all_reduce(values)
    return dict(zip(keys, values.tolist(), strict=True))


def gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


# ---- data: the prompts of step s are a function of (seed, s) -------------------------------------------
def step_rows(rows: list[dict[str, Any]], step: int, per_process: int, seed: int) -> list[dict[str, Any]]:
    """This process's prompts for `step` (1-based), from a fresh shuffle of the dataset per pass."""
    rank, world = rank_and_world()
    first = (step - 1) * per_process * world + rank * per_process
    out = []
    for i in range(first, first + per_process):
        epoch, position = divmod(i, len(rows))
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed + epoch))
        out.append(rows[int(order[position])])
    return out


# ---- checkpoints ---------------------------------------------------------------------------------------
@dataclass
class Trainer:
    """What a PPO run is made of and what a checkpoint holds."""

    session: RunSession
    model: PeftModel
    head: nn.Linear
    optimizer: torch.optim.Optimizer
    scheduler: Any
    kl: KLController
    _token_texts: TokenTexts | None = None

    def token_texts(self, tokenizer: Any) -> TokenTexts:
        """Token texts decoded once per id for the run (token-level evidence)."""
        if self._token_texts is None:
            self._token_texts = TokenTexts(tokenizer)
        return self._token_texts

    def save(self, step: int) -> None:
        """checkpoint-<step>: both adapters (policy at the root, value in value/), the value head, the
        optimizer, the scheduler, the KL controller and each process's RNG states."""
        rank, world = rank_and_world()
        path = self.session.files / f"checkpoint-{step}"
        path.mkdir(parents=True, exist_ok=True)
        if rank == 0:  # a marker left by an earlier write of this step: complete only at the end
            (path / COMPLETE_MARKER).unlink(missing_ok=True)
        rng = {"python": random.getstate(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()  # this process's GPU
        torch.save(rng, path / f"rng_state_{rank}.pth")
        if rank == 0:
            self.model.save_pretrained(str(path))
            torch.save(self.head.state_dict(), path / "value_head.pt")
            torch.save(self.optimizer.state_dict(), path / "optimizer.pt")
            torch.save(self.scheduler.state_dict(), path / "scheduler.pt")
            state = {"step": step, "kl_coef": self.kl.value, "target_kl": self.kl.target}
            (path / "trainer_state.json").write_text(json.dumps(state))
        if world > 1:
            import torch.distributed as dist

            dist.barrier()  # every process's files are on disk before the checkpoint is marked complete
        if rank == 0:
            self.session.checkpoint_written(step, path)

    def load(self, path: Path) -> int:
        rank, _ = rank_and_world()
        for name, folder in ((POLICY, path), (VALUE, path / VALUE)):
            set_peft_model_state_dict(
                self.model, load_file(str(folder / "adapter_model.safetensors")), adapter_name=name
            )
        self.head.load_state_dict(torch.load(path / "value_head.pt", weights_only=True))
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        state = json.loads((path / "trainer_state.json").read_text())
        self.kl.value = float(state["kl_coef"])
        rng_file = path / f"rng_state_{rank}.pth"
        if rng_file.is_file():  # absent when resumed with more processes than it was saved with
            rng = torch.load(rng_file, weights_only=False)  # our own file: Python's RNG state is a tuple
            random.setstate(rng["python"])
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state(rng["cuda"])
        return int(state["step"])


# ---- one step: generate, score, optimise ------------------------------------------------------------------
def ppo_step(trainer: Trainer, tokenizer: Any, step: int) -> tuple[dict[str, float], dict[str, Any]]:
    session, model, head = trainer.session, trainer.model, trainer.head
    cfg, t = session.cfg, session.cfg.training
    rank, world = rank_and_world()

    # -- generate: num_generations samples per prompt, through evaluation's own generate()
    rows = step_rows(session.train_rows, step, t.prompts_per_step, t.seed)
    rows = [row for row in rows for _ in range(t.num_generations)]
    prompts = [row["prompt"] for row in rows]
    generated = generate(model, tokenizer, prompts, cfg, seed=t.seed + 100_003 * step + rank + 1)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    tokens = make_tokens(generated.prompt_ids, generated.completion_ids, pad_id).to(device)
    mask = tokens.mask
    lengths = mask.sum(1).long()

    # -- score: the rubric's total on the last token, a KL penalty on every token
    columns = {k: [row.get(k) for row in rows] for k in rows[0] if k != "prompt"}
    scored = session.score(prompts, generated.completions_for_rubric, columns, generated.completion_ids, step)
    truncated = torch.tensor(generated.truncated, dtype=torch.float32, device=device)
    score = torch.nan_to_num(torch.tensor(scored.totals, dtype=torch.float32, device=device), nan=0.0)
    score = score - t.missing_eos_penalty * truncated
    model.eval()
    with torch.no_grad():
        old_logprobs, old_entropy = policy_logprobs(model, tokens, t.temperature)
        old_values = state_values(model, head, tokens) * mask
        if t.beta > 0:
            ref = reference_logprobs(model, tokens, t.temperature)
            token_kl = kl_per_token(old_logprobs, ref, t.kl_estimator) * mask
        else:  # beta = 0: no penalty, and no reference pass (as GRPO)
            token_kl = torch.zeros_like(mask)
        kl_coef = trainer.kl.value
        rewards = -kl_coef * token_kl
        rewards[torch.arange(len(rows), device=device), lengths - 1] += score
        advantages, returns = gae(rewards, old_values, mask, t.gamma, t.lam)
        if t.whiten_advantages:
            advantages = masked_whiten(advantages, mask)

    # -- optimise: ppo_epochs passes over shuffled minibatches; both losses, one optimizer step each
    model.train()
    params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    shuffle = torch.Generator().manual_seed(t.seed + 7_919 * step + rank)
    totals: dict[str, float] = {}
    updates = 0
    for _epoch in range(t.ppo_epochs):
        for index in torch.tensor_split(torch.randperm(len(rows), generator=shuffle), t.num_minibatches):
            mb, m = tokens.rows(index), mask[index]
            logprobs, entropy = policy_logprobs(model, mb, t.temperature)
            log_ratio = logprobs - old_logprobs[index]
            ratio = torch.exp(log_ratio)
            adv = advantages[index]
            policy_loss = masked_mean(
                torch.max(-adv * ratio, -adv * ratio.clamp(1 - t.epsilon, 1 + t.epsilon)), m
            )
            policy_loss.backward()
            values = state_values(model, head, mb)
            value_loss, value_clipped = clipped_value_loss(
                values, old_values[index], returns[index], m, t.cliprange_value
            )
            (t.vf_coef * value_loss).backward()
            average_gradients(params, world)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                minibatch = {
                    "ppo/policy_loss": policy_loss.item(),
                    "ppo/value_loss": value_loss.item(),
                    "loss": policy_loss.item() + t.vf_coef * value_loss.item(),
                    "entropy": masked_mean(entropy, m).item(),
                    "ppo/approx_kl": masked_mean(ratio - 1 - log_ratio, m).item(),
                    "ppo/clip_fraction": masked_mean(((ratio - 1).abs() > t.epsilon).float(), m).item(),
                    "ppo/value_clip_fraction": value_clipped.item(),
                    "ppo/ratio_mean": masked_mean(ratio, m).item(),
                    "grad_norm": float(grad_norm),
                }
            for key, value in minibatch.items():
                totals[key] = totals.get(key, 0.0) + value
            updates += 1
    learning_rate = trainer.scheduler.get_last_lr()[0]
    trainer.scheduler.step()

    # -- statistics of the step, averaged over processes; the KL controller sees every completion
    stats = {key: value / updates for key, value in totals.items()}
    residual = (returns - old_values)[mask.bool()]
    flat_returns = returns[mask.bool()]
    stats |= {
        "kl": masked_mean(token_kl, mask).item(),
        "ppo/sequence_kl": token_kl.sum(1).mean().item(),
        "ppo/return_mean": masked_mean(returns, mask).item(),
        "ppo/value_mean": masked_mean(old_values, mask).item(),
        "ppo/advantage_mean": masked_mean(advantages, mask).item(),
        "ppo/explained_variance": (1 - residual.var() / flat_returns.var()).item()
        if flat_returns.numel() > 1 and flat_returns.var() > 0
        else float("nan"),
    }
    stats = average_stats(stats, world)
    trainer.kl.update(stats["ppo/sequence_kl"], len(rows) * world)
    stats |= {"ppo/kl_coef": kl_coef, "learning_rate": learning_rate}

    local = {
        "rows": rows,
        "texts": generated.texts,
        "rendered": generated.rendered,  # the prompt as the model saw it (chat template applied)
        "tokens": lengths.tolist(),
        "truncated": generated.truncated,
        "advantages": advantages[:, 0].tolist(),  # the advantage of each completion's first token
        "values": old_values[:, 0].tolist(),  # the critic's value there, and the return it is trained toward
        "value_targets": returns[:, 0].tolist(),
        "scored": scored,
    }
    if t.record_token_stats:  # token-level evidence: what this step already computed, per token
        evidence = {ts.LOGPROB: old_logprobs, ts.ENTROPY: old_entropy, ts.ADVANTAGE: advantages}
        # the token's share of the policy loss at the first update (ratio 1), per completion token;
        # PPO's KL penalty is in its reward, so in the advantage
        evidence[ts.LOSS] = -advantages / lengths.clamp(min=1).unsqueeze(1)
        evidence |= {ts.KL: token_kl} if t.beta > 0 else {}
        evidence[ts.VALUE] = old_values
        local["token_stats"] = token_blobs(
            trainer.token_texts(tokenizer),
            tokens.completion_ids.tolist(),
            lengths.tolist(),
            {k: v.float().tolist() for k, v in evidence.items()},
        )
    return stats, local


# ---- log ---------------------------------------------------------------------------------------------
def record(session: RunSession, step: int, stats: dict[str, float], parts: list[dict[str, Any]]) -> None:
    """On the main process: every rollout of every process, and the step's metrics under TRL's names."""
    t = session.cfg.training
    for part in parts:
        session.record_rollouts(
            step,
            Rollouts(
                prompts=part["rendered"],
                completions=part["texts"],
                columns=part["rows"],
                completion_tokens=part["tokens"],
                truncated=part["truncated"],
                advantages=part["advantages"],
                scored=part["scored"],
                token_stats=part.get("token_stats"),
                values=part["values"],
                value_targets=part["value_targets"],
            ),
            t.num_generations,
        )
    if step % t.log_every and step != t.max_steps:
        return
    scored = [part["scored"] for part in parts]
    merged = ScoredBatch(  # every process's rollouts of this step, as one batch
        totals=[x for batch in scored for x in batch.totals],
        scores={name: [v for batch in scored for v in batch.scores[name]] for name in scored[0].scores},
        errors={name: [e for batch in scored for e in batch.errors[name]] for name in scored[0].errors},
    )
    values = stats | merged.summary()  # reward, reward_std, rewards/<criterion>/mean|std|error_rate
    lengths = [n for part in parts for n in part["tokens"]]
    values["completions/mean_length"] = sum(lengths) / len(lengths)
    values["completions/min_length"] = float(min(lengths))
    values["completions/max_length"] = float(max(lengths))
    truncated = [x for part in parts for x in part["truncated"]]
    values["completions/clipped_ratio"] = sum(truncated) / len(truncated)
    session.record_metrics(step, {k: v for k, v in values.items() if math.isfinite(v)})
    every = max(1, t.max_steps // 20)
    if step % every == 0 or step == t.max_steps:
        shown = ["reward", "rewards/correct/mean", "kl", "loss", "ppo/value_loss", "entropy"]
        line = " ".join(f"{k.removeprefix('rewards/')}={values[k]:.3g}" for k in shown if k in values)
        session.log(f"step {step}/{t.max_steps} {line}")


# ---- build and train -------------------------------------------------------------------------------------
def train(session: RunSession, model: Any, tokenizer: Any, plan: DevicePlan, resume_from: str | None) -> int:
    """Run PPO until max_steps or a stop; returns the last completed step."""
    t = session.cfg.training
    rank, world = rank_and_world()
    device = torch.device(plan.device)
    if device.type == "cuda":  # under torchrun / accelerate launch, each process on its own GPU
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    policy, head = build_model(session, model.to(device))
    params = [p for p in policy.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=0.0)
    scheduler = get_scheduler(
        t.lr_scheduler, optimizer, num_warmup_steps=t.warmup_steps, num_training_steps=t.max_steps
    )
    kl = KLController(t.beta, t.target_kl, t.kl_horizon)
    trainer = Trainer(session, policy, head, optimizer, scheduler, kl)
    step = trainer.load(Path(resume_from)) if resume_from else 0
    lifecycle = Lifecycle(session, save=trainer.save, last_saved_step=step if resume_from else -1)

    if resume_from is None and rank == 0:
        session.evaluate(policy, tokenizer, step=0)  # the baseline every curve is read against
    lifecycle.begin(step)
    while step < t.max_steps:
        decision = lifecycle.before_step(step)
        if decision.stop:
            if decision.save:
                lifecycle.save_now(step)
            break
        step += 1
        stats, local = ppo_step(trainer, tokenizer, step)
        parts = gather(local, world)
        if rank == 0:
            record(session, step, stats, parts)
        decision = lifecycle.after_step(step)
        if decision.evaluate:
            session.evaluate(policy, tokenizer, step)
        if decision.save:
            lifecycle.save_now(step)
        if decision.stop:
            break
    if rank == 0:
        record_peak_memory(session, step, plan, tokenizer)  # memory/peak_gb next to memory/estimate_gb
    if step >= t.max_steps and rank == 0:
        policy.save_pretrained(str(session.files / "adapter"), selected_adapters=[POLICY])
        session.evaluate(policy, tokenizer, step)
    return step
