"""The one TrainerCallback: records metrics, and adapts TRL's loop to the run lifecycle every algorithm
shares (engine/lifecycle.py: pause, stop, checkpoints, evaluation, control sync across processes).

Rollouts are recorded by the algorithm when they are generated (see algos/grpo.py); everything else a
step produces passes through here. Only the main process writes to the workspace and emits events.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from engine.algos.trl_compat import save_checkpoint
from engine.lifecycle import Lifecycle
from engine.session import RunSession, StopRun

# Trainer's end-of-training summary is not a per-step metric.
_SUMMARY_KEYS = {
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "total_flos",
    "train_loss",
}


class Telemetry(TrainerCallback):
    """TRL's loop as a thin adapter over engine/lifecycle.py: the pause, stop, checkpoint and evaluation
    decisions (and, under several processes, the control sync) are the lifecycle's, the same as PPO's."""

    def __init__(self, session: RunSession, trainer: Any, tokenizer: Any, last_saved_step: int = -1):
        self.session = session
        self.trainer = trainer
        self.tokenizer = tokenizer
        self.lifecycle = Lifecycle(session, save=self.write_checkpoint, last_saved_step=last_saved_step)

    # ---- the loop -------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.lifecycle.begin(state.global_step)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        decision = self.lifecycle.before_step(state.global_step)
        if decision.save:
            self.lifecycle.save_now(state.global_step)
        if decision.stop:  # the Trainer has no "stop before this step": end its loop from inside
            raise StopRun()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        decision = self.lifecycle.after_step(state.global_step)
        # only ever raised: the Trainer's own schedule (save_steps) may have asked for this step already
        control.should_save = control.should_save or decision.save
        control.should_training_stop = control.should_training_stop or decision.stop
        if decision.evaluate:
            self.session.evaluate(self.trainer.model, self.tokenizer, state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not logs or not state.is_world_process_zero or _SUMMARY_KEYS & set(logs):
            return
        values = {k: v for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        values = {k: v for k, v in values.items() if k != "epoch" or math.isfinite(v)}
        self.session.record_metrics(state.global_step, values)
        every = max(1, state.max_steps // 20)
        if state.global_step % every == 0 or state.global_step == state.max_steps:
            criteria = [
                k
                for k in values
                if k.startswith("rewards/") and k.endswith("/mean") and k != "rewards/total/mean"
            ]
            shown = ["reward", *criteria, "kl", "loss", "entropy", "completions/mean_length"]
            parts = [
                f"{k.removeprefix('rewards/').removesuffix('/mean')}={values[k]:.3g}"
                for k in shown
                if k in values
            ]
            self.session.log(f"step {state.global_step}/{state.max_steps} " + " ".join(parts))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The Trainer wrote checkpoint-<step> (on its schedule, or as `control.should_save` asked)."""
        self.lifecycle.saved(state.global_step)
        self.checkpoint_written(state.global_step)

    # ---- checkpoints outside the Trainer's own schedule -------------------------------------------
    def write_checkpoint(self, step: int) -> None:
        """The lifecycle's `save`: a checkpoint now (a stop, or one asked for while paused)."""
        save_checkpoint(self.trainer)
        self.checkpoint_written(step)

    def checkpoint_written(self, step: int) -> None:
        if self.lifecycle.is_main:
            self.session.checkpoint_written(step, Path(self.trainer.args.output_dir) / f"checkpoint-{step}")
