"""GRPO with LoRA, around trl.GRPOTrainer.

Reads top to bottom: build (config, dataset, LoRA, reward), a trainer subclass that records every
rollout it generates, then train. The rubric is handed to TRL as ONE reward function whose value is the
rubric's total, so the reward TRL optimises is exactly the reward RL Studio logs; per-criterion means
and error rates go through TRL's own `log_metric` so they are averaged across processes like TRL's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from accelerate.utils import gather_object
from datasets import Dataset
from peft import LoraConfig
from transformers import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from engine.algos.trl_compat import GenerationHook, SamplerHook, sampling_logps_and_entropies
from engine.contract.token_stats import ENTROPY, KL, LOGPROB, LOSS
from engine.envs.metrics import agent_metrics
from engine.envs.training import environment_factory, episode_columns, turn_tokens
from engine.memory_use import record_peak_memory
from engine.modeling import DevicePlan
from engine.prompts import model_prompt, rendered_text
from engine.rewards.shapes import shape_completions
from engine.sampling import difficulty_stats, make_sampler, observe_batch
from engine.session import ROW_INDEX, Rollouts, RunSession
from engine.telemetry import Telemetry
from engine.token_evidence import TokenTexts, token_blobs

# Arguments TRL passes to reward functions that are not dataset columns.
_TRL_EXTRAS = ("trainer_state", "log_extra", "log_metric", "environments")


# ---- build ----------------------------------------------------------------------------------------
def grpo_args(session: RunSession, plan: DevicePlan) -> GRPOConfig:
    t, g = session.cfg.training, session.cfg.generation
    return GRPOConfig(
        output_dir=str(session.files),
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        per_device_train_batch_size=t.prompts_per_step * t.num_generations,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_generations=t.num_generations,
        max_completion_length=t.max_completion_length,
        temperature=t.temperature,
        top_p=t.top_p,
        top_k=t.top_k,
        min_p=t.min_p or None,  # 0 = off; TRL's off is None
        repetition_penalty=t.repetition_penalty,
        beta=t.beta,
        epsilon=t.epsilon,
        loss_type=t.loss_type,
        scale_rewards=t.scale_rewards,
        num_iterations=t.num_iterations,
        importance_sampling_level=t.importance_sampling_level,
        mask_truncated_completions=t.mask_truncated_completions,
        generation_batch_size=t.generation_batch_size or None,  # 0 = TRL's: one generation per optimizer step
        top_entropy_quantile=t.top_entropy_quantile,
        entropy_coef=t.entropy_coef,
        use_adaptive_entropy=t.use_adaptive_entropy,
        entropy_coef_min=t.entropy_coef_min,
        entropy_coef_max=t.entropy_coef_max,
        entropy_coef_delta=t.entropy_coef_delta,
        entropy_target=t.entropy_target,
        chat_template_kwargs=dict(session.cfg.data.chat_template_kwargs) or None,  # TRL renders with these
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.log_every,
        save_strategy="steps" if t.checkpoint_every else "no",
        save_steps=t.checkpoint_every or t.max_steps,
        save_total_limit=None,  # the session rotates only complete checkpoints
        bf16=plan.bf16,
        fp16=plan.fp16,
        use_cpu=plan.device == "cpu",
        gradient_checkpointing=t.gradient_checkpointing,
        use_vllm=g.use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        report_to=[],
        disable_tqdm=True,
        log_completions=False,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        # an agent run: TRL's tool loop, up to max_turns tool-calling rounds per rollout
        max_tool_calling_iterations=session.cfg.environment.max_turns if session.cfg.environment else None,
    )


def lora_config(session: RunSession) -> LoraConfig:
    lora = session.cfg.lora
    targets: Any = lora.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def rubric_reward(session: RunSession) -> Any:
    """The rubric as one TRL reward function. Keeps the last scored batch for the rollout recorder."""

    def total(
        prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], **kwargs: Any
    ) -> list[float]:
        log_metric = kwargs.get("log_metric")
        state = kwargs.get("trainer_state")
        columns = {k: v for k, v in kwargs.items() if k not in _TRL_EXTRAS}
        step = (state.global_step + 1) if state is not None else 0
        if ROW_INDEX in columns and session.cfg.environment is None:  # the dataset's prompt, unwrapped
            prompts = [session.train_rows[int(i)]["prompt"] for i in columns[ROW_INDEX]]
        completions = shape_completions(prompts, completions)  # TRL's shapes already; the one shaping rule
        scoring, trajectories = columns, None
        environments = kwargs.get("environments")
        if environments is not None and session.cfg.environment is not None:
            # an agent batch: the rubric also sees each rollout's trajectory and environment end state
            episodes = episode_columns(environments, completions, session.cfg.environment.max_turns)
            scoring, trajectories = columns | episodes, episodes["trajectories"]
        scored = session.score(prompts, completions, scoring, completion_ids, step)
        total.last = (prompts, completions, columns, scored)  # type: ignore[attr-defined]
        total.trajectories = trajectories  # type: ignore[attr-defined]
        if log_metric is not None:
            metrics = session.criterion_metrics(scored)
            metrics |= agent_metrics(trajectories) if trajectories is not None else {}
            for key, value in metrics.items():
                if math.isfinite(value):
                    log_metric(key, value)
        return scored.totals

    total.last = None  # type: ignore[attr-defined]
    total.trajectories = None  # type: ignore[attr-defined]
    return total


# ---- the trainer: TRL's, plus a recorder of every generated rollout ------------------------------------
class RecordingGRPOTrainer(GenerationHook, SamplerHook, GRPOTrainer):  # hooks: TRL private API, trl_compat
    session: RunSession
    reward_fn: Any
    row_columns: list[str]
    """Every column of the training set (a row lacking one gets None, as Arrow would give it)."""
    model: Any
    processing_class: Any
    num_generations: int
    difficulty: Any
    """engine.sampling.DifficultyStats when [data] sampling is difficulty or skip_zero_variance is on."""
    rendered: dict[int, str]
    """The exact text of each training prompt the model has seen, by row index."""
    token_texts: TokenTexts

    def before_generation(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.session_rows(inputs)

    def after_generation(self, output: dict[str, Any]) -> None:
        if self.model.training and self.reward_fn.last is not None:
            self._record(output)

    def train_sampler(self, layout: dict[str, Any]) -> Any:
        if self.difficulty is None:
            return None  # [data] sampling = "uniform": TRL's RepeatSampler
        return make_sampler(self.difficulty, **layout)

    def session_rows(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The dataset rows the sampler picked, as Python read them from the JSONL (see `row_index_dataset`),
        each prompt as the model gets it (engine.prompts: a plain prompt wrapped in the chat template); the
        exact rendered text is kept per row for the rollout records."""
        rows, columns, data = self.session.train_rows, self.row_columns, self.session.cfg.data
        picked = [{k: rows[item[ROW_INDEX]].get(k) for k in columns} for item in inputs]
        if self.session.cfg.environment is None:  # an agent run's prompts are TRL's tool loop's business
            for row in picked:
                row["prompt"] = model_prompt(row["prompt"], data, self.processing_class)
                if row[ROW_INDEX] not in self.rendered:
                    self.rendered[row[ROW_INDEX]] = rendered_text(row["prompt"], data, self.processing_class)
        return picked

    def _record(self, output: dict[str, Any]) -> None:
        prompts, completions, columns, scored = self.reward_fn.last
        trajectories = self.reward_fn.trajectories
        self.reward_fn.last = self.reward_fn.trajectories = None
        if trajectories is not None:  # per-turn token counts: the runs of model tokens between tool results
            turn_tokens(trajectories, output["completion_mask"], output.get("tool_mask"))
        ids = output["completion_ids"].tolist()
        mask = output["completion_mask"].tolist()
        eos = self.processing_class.eos_token_id
        token_counts = [int(sum(m)) for m in mask]
        truncated = [eos not in row[:n] for row, n in zip(ids, token_counts, strict=True)]
        texts = [c if isinstance(c, str) else str(c[-1].get("content", "")) for c in completions]
        record_tokens = self.session.cfg.training.record_token_stats
        n = len(texts)
        rows = [{k: v[i] for k, v in columns.items()} | {"prompt": prompts[i]} for i in range(n)]
        seen = [self.rendered.get(row.get(ROW_INDEX)) for row in rows]  # type: ignore[arg-type]
        local = {
            "prompts": [text if text is not None else p for text, p in zip(seen, prompts, strict=True)],
            "texts": texts,
            "rows": rows,
            "tokens": token_counts,
            "truncated": truncated,
            "advantages": output["advantages"].tolist(),
            "scored": scored,
            "trajectories": trajectories,
            "token_stats": self._token_stats(output, ids, token_counts) if record_tokens else None,
        }
        gathered = gather_object([local])
        if self.difficulty is not None:  # every process folds in the same groups, so their samplers agree
            for part in gathered:
                observe_batch(self.difficulty, part["rows"], part["scored"], self.num_generations, ROW_INDEX)
        if not self.state.is_world_process_zero:
            return
        for part in gathered:
            batch = Rollouts(
                prompts=part["prompts"],
                completions=part["texts"],
                columns=part["rows"],
                completion_tokens=part["tokens"],
                truncated=part["truncated"],
                advantages=part["advantages"],
                scored=part["scored"],
                trajectories=part["trajectories"],
                token_stats=part["token_stats"],
            )
            self.session.record_rollouts(self.state.global_step + 1, batch, self.num_generations)

    def _token_stats(self, output: dict[str, Any], ids: list[list[int]], counts: list[int]) -> list[bytes]:
        """Token-level evidence of the batch (docs/inspector.md): each token's log-prob and entropy under
        the policy that sampled it (one no-grad forward pass), its share of the loss at the first update
        (importance weight 1: (-advantage + beta x kl) / tokens, loss_type grpo's per-sequence form) and,
        with beta > 0, its KL against the reference (TRL's k3, from the reference pass TRL already did).
        In an agent episode the tool results' tokens are part of the completion but were not sampled and
        are masked out of the loss (TRL's tool_mask): their statistics are NaN, "not the model's"."""
        logps, entropies = sampling_logps_and_entropies(self, output)
        loss = -output["advantages"].to(logps.dtype).unsqueeze(1).expand_as(logps)
        stats = {LOGPROB: logps, ENTROPY: entropies}
        if output.get("ref_per_token_logps") is not None:
            delta = output["ref_per_token_logps"] - logps
            stats[KL] = torch.exp(delta) - delta - 1
            loss = loss + self.beta * stats[KL]
        model_tokens = output["completion_mask"]
        tool_mask = output.get("tool_mask")
        if tool_mask is not None:
            model_tokens = model_tokens * tool_mask
        tokens = model_tokens.sum(1, keepdim=True).clamp(min=1).to(logps.dtype)
        stats[LOSS] = loss / tokens
        if tool_mask is not None:
            stats = {k: v.masked_fill(tool_mask == 0, float("nan")) for k, v in stats.items()}
        return token_blobs(self.token_texts, ids, counts, {k: v.float().tolist() for k, v in stats.items()})


def row_index_dataset(rows: list[dict[str, Any]]) -> Dataset:
    """The training set as TRL's sampler sees it: only each row's index.

    Arrow stores a column in one type, so a dataset whose `answer` is 3 in one row and "3" in the next,
    or whose `info` is a dict here and a string there, cannot become a `datasets.Dataset` (and a message
    list with an extra key would come back with that key set to None in every other row). The rows stay
    in Python; the trainer looks each sampled index up (`session_rows`), so the prompt is generated from,
    and reward functions receive, the values exactly as the JSONL holds them."""
    return Dataset.from_dict({ROW_INDEX: [int(row[ROW_INDEX]) for row in rows]})


# ---- train ----------------------------------------------------------------------------------------
def train(session: RunSession, model: Any, tokenizer: Any, plan: DevicePlan, resume_from: str | None) -> int:
    """Run GRPO until max_steps or a stop; returns the last completed step."""
    reward_fn = rubric_reward(session)
    dataset = row_index_dataset(session.train_rows)
    factory = environment_factory(session.cfg)  # None for a single-turn run
    try:
        return _train(session, model, tokenizer, plan, resume_from, reward_fn, dataset, factory)
    finally:
        if factory is not None:
            factory.close()  # every environment worker this run started


def _train(
    session: RunSession,
    model: Any,
    tokenizer: Any,
    plan: DevicePlan,
    resume_from: str | None,
    reward_fn: Any,
    dataset: Dataset,
    factory: Any,
) -> int:
    trainer = RecordingGRPOTrainer(
        model=model,
        reward_funcs=[reward_fn],
        args=grpo_args(session, plan),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(session),
        environment_factory=factory,
    )
    trainer.session = session
    trainer.reward_fn = reward_fn
    trainer.row_columns = list(dict.fromkeys(k for row in session.train_rows for k in row))
    trainer.difficulty = difficulty_stats(session)  # None: uniform sampling
    trainer.rendered = {}
    trainer.token_texts = TokenTexts(tokenizer)
    telemetry = Telemetry(session, trainer, tokenizer, session.resumed_from_step if resume_from else -1)
    trainer.add_callback(telemetry)
    trainer.remove_callback(PrinterCallback)  # the session logs a compact line instead of a dict per step

    if resume_from is None and trainer.accelerator.is_main_process:
        session.evaluate(trainer.model, tokenizer, step=0)  # the baseline every curve is read against
    trainer.train(resume_from_checkpoint=resume_from)
    step = int(trainer.state.global_step)
    if trainer.accelerator.is_main_process:
        record_peak_memory(session, step, plan, tokenizer)  # memory/peak_gb next to memory/estimate_gb
    if step >= session.cfg.training.max_steps:
        # the trained LoRA adapter, ready to load or merge, and the final evaluation (each exactly once)
        session.finish(trainer.model, tokenizer, step, trainer.save_model)
    return step
