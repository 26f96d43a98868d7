"""The one TrainerCallback: records metrics, drives evaluation and checkpoints, obeys run controls.

Rollouts are recorded by the algorithm when they are generated (see algos/grpo.py); everything else a
step produces passes through here. Only the main process writes to the workspace and emits events.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from engine import control as engine_control
from engine.algos.trl_compat import save_checkpoint
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
    def __init__(self, session: RunSession, trainer: Any, tokenizer: Any):
        self.session = session
        self.trainer = trainer
        self.tokenizer = tokenizer
        self.last_saved_step = -1

    # ---- the loop -------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.session.set_status("running", state.global_step)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        controller = self.session.controller
        self._sync_controls()
        if controller.paused and not controller.stop_requested:
            if state.is_world_process_zero:
                self.session.set_status("paused", state.global_step)
                self.session.log(f"paused at step {state.global_step}")
            while controller.paused and not controller.stop_requested:
                controller.wait(0.5)
                self._sync_controls()
                self._checkpoint_while_paused(state)
            if not controller.stop_requested and state.is_world_process_zero:
                self.session.set_status("running", state.global_step)
                self.session.log(f"resumed at step {state.global_step}")
        if controller.stop_requested:  # arrived while paused, or between steps (e.g. during evaluation)
            self.save_now(state)
            raise StopRun()
        self.session.step_began()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        t = self.session.cfg.training
        controller = self.session.controller
        self._sync_controls()
        if state.is_world_process_zero:
            self.session.step_ended(step)
        if controller.take_checkpoint_request():
            control.should_save = True
        if controller.stop_requested:
            control.should_save = True
            control.should_training_stop = True
        if step >= state.max_steps:
            control.should_save = True  # the final state is always resumable and exportable
        if (
            t.eval_every
            and step % t.eval_every == 0
            and step < state.max_steps
            and state.is_world_process_zero
        ):
            self.session.evaluate(self.trainer.model, self.tokenizer, step)

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
        if state.is_world_process_zero:
            self.last_saved_step = state.global_step
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.session.checkpoint_written(state.global_step, path)

    def _sync_controls(self) -> None:
        """Under `accelerate launch` only the main process reads commands: every step, all processes
        take its pause/stop/checkpoint flags so they act on the same step together."""
        if engine_control.world_size() == 1:
            return
        import torch.distributed as dist

        c = self.session.controller
        box = [(c.paused, c.stop_requested, c.checkpoint_requested)]
        dist.broadcast_object_list(box, src=0)
        c.paused, c.stop_requested, c.checkpoint_requested = box[0]

    # ---- checkpoints outside the Trainer's own schedule -------------------------------------------
    def save_now(self, state: Any) -> None:
        """Write a checkpoint of the current step unless one exists already."""
        if state.global_step == self.last_saved_step or state.global_step == 0:
            return
        save_checkpoint(self.trainer)
        self.on_save(self.trainer.args, state, self.trainer.control)

    def _checkpoint_while_paused(self, state: Any) -> None:
        if self.session.controller.take_checkpoint_request():
            self.save_now(state)
