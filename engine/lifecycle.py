"""The decisions a training loop takes at each step boundary, in plain Python, for every algorithm.

A loop asks `before_step(step)` before it starts a step and `after_step(step)` when the step is done,
and carries out the `Decision` it gets back (save a checkpoint, evaluate, stop). The policy lives here
once: pause (waiting, and writing a checkpoint asked for while paused), stop (always with a checkpoint),
checkpoints on schedule and on request, the final checkpoint, held-out evaluation every `eval_every`
steps, progress events, and, under several processes, the main process's controls broadcast to all so
that every process takes the same decision at the same step.

Algorithms use it directly (algos/ppo.py) or through an adapter over their trainer's callbacks (a
TrainerCallback maps `before_step` to `on_step_begin`, `after_step` to `on_step_end` and
`control.should_save` / `should_training_stop`, and reports the Trainer's own saves with `saved`).

    lifecycle = Lifecycle(session, save=write_checkpoint, last_saved_step=resumed_step)
    lifecycle.begin(step)
    while step < max_steps:
        if lifecycle.before_step(step).stop: ...save if asked, then stop
        step += 1; train one step
        decision = lifecycle.after_step(step)
        evaluate / save / stop as decided
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine import control


@dataclass(frozen=True)
class Decision:
    save: bool = False
    """Write a checkpoint of this step (`Lifecycle.save_now` skips one already written)."""
    evaluate: bool = False
    """Run held-out evaluation at this step (only ever true on the main process)."""
    stop: bool = False
    """End the loop: a stop command or SIGTERM arrived."""


class Lifecycle:
    """Step-boundary policy over a RunSession; `save(step)` writes a checkpoint and records it complete."""

    def __init__(self, session: Any, save: Callable[[int], None], last_saved_step: int = -1) -> None:
        self.session = session
        self.save = save
        self.last_saved_step = last_saved_step
        self.max_steps = int(session.cfg.training.max_steps)
        self.is_main = control.is_main_process()

    @property
    def controller(self) -> control.Controller:
        return self.session.controller  # type: ignore[no-any-return]

    def begin(self, step: int) -> None:
        if self.is_main:
            self.session.set_status("running", step)

    # ---- step boundaries ------------------------------------------------------------------------
    def before_step(self, step: int) -> Decision:
        """Hold here while paused (checkpoints asked for meanwhile are written at once); on a stop,
        decide a checkpoint of `step` (unless it is step 0 or written already) and the end."""
        controller = self.controller
        self.sync_controls()
        if controller.paused and not controller.stop_requested:
            if self.is_main:
                self.session.set_status("paused", step)
                self.session.log(f"paused at step {step}")
            while controller.paused and not controller.stop_requested:
                controller.wait(0.5)
                self.sync_controls()
                if controller.take_checkpoint_request():
                    self.save_now(step)
            if not controller.stop_requested and self.is_main:
                self.session.set_status("running", step)
                self.session.log(f"resumed at step {step}")
        if controller.stop_requested:  # arrived while paused, or between steps (e.g. during evaluation)
            return Decision(save=self.needs_save(step), stop=True)
        self.session.step_began()
        return Decision()

    def after_step(self, step: int) -> Decision:
        """What to do now that `step` is done: a checkpoint on schedule, on request, on a stop and after
        the last step (the final state is always resumable and exportable); an evaluation every
        `eval_every` steps before the last (the algorithm evaluates after the last step itself)."""
        t = self.session.cfg.training
        controller = self.controller
        self.sync_controls()
        if self.is_main:
            self.session.step_ended(step)
        requested = controller.take_checkpoint_request()
        stop = controller.stop_requested
        scheduled = bool(t.checkpoint_every) and step % t.checkpoint_every == 0
        save = requested or stop or scheduled or step >= self.max_steps
        evaluate = bool(t.eval_every) and step % t.eval_every == 0 and step < self.max_steps and self.is_main
        return Decision(save=save, evaluate=evaluate, stop=stop)

    # ---- checkpoints ----------------------------------------------------------------------------
    def needs_save(self, step: int) -> bool:
        return step not in (0, self.last_saved_step)

    def save_now(self, step: int) -> None:
        """Write a checkpoint of `step` unless one exists already (or nothing was trained yet)."""
        if not self.needs_save(step):
            return
        self.save(step)
        self.saved(step)

    def saved(self, step: int) -> None:
        """Note a checkpoint written outside `save_now` (a Trainer's own save)."""
        self.last_saved_step = step

    # ---- several processes ----------------------------------------------------------------------
    def sync_controls(self) -> None:
        """Under `accelerate launch` or torchrun only the main process reads commands: at every step
        boundary all processes take its pause/stop/checkpoint flags, so they act on the same step."""
        if control.world_size() == 1:
            return
        import torch.distributed as dist

        c = self.controller
        box = [(c.paused, c.stop_requested, c.checkpoint_requested)]
        dist.broadcast_object_list(box, src=0)
        c.paused, c.stop_requested, c.checkpoint_requested = box[0]
