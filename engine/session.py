"""A run's life around the algorithm: the workspace rows, the rubric, evaluation, events and controls.

An algorithm file (algos/grpo.py, algos/ppo.py) builds its trainer and calls the session's hooks; the
session owns everything that is the same for every algorithm: creating or resuming the run, scoring
with the rubric, recording rollouts and metrics, held-out evaluation, checkpoints and status.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import control
from engine.contract.config import RunConfig
from engine.contract.paths import run_dir
from engine.data import prompt_text, read_jsonl
from engine.monitor import Monitor, for_session
from engine.recorder import Recorder
from engine.rewards.api import RewardBatch, ScoredBatch
from engine.store import GroupRecord, RolloutRecord, Workspace, with_trajectory

COMPLETE_MARKER = "rl_studio_complete.json"
ADAPTER_DIR = "adapter"  # the trained LoRA adapter, written whole or not at all (see RunSession.finish)
ROW_INDEX = "_row"  # the dataset row index carried through the trainer with each prompt


class StopRun(Exception):
    """Raised inside the training loop to end a run gracefully (a stop arrived while paused)."""


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, s


@dataclass
class Rollouts:
    """One generation batch in TRL's layout: row i belongs to group i // num_generations."""

    prompts: list[Any]
    completions: list[str]
    columns: list[dict[str, Any]]
    completion_tokens: list[int]
    truncated: list[bool]
    advantages: list[float]
    scored: ScoredBatch
    trajectories: list[Any] | None = None
    """An agent batch: one engine.envs.trajectory.Trajectory per rollout (None for a single-turn run)."""
    token_stats: list[bytes] | None = None
    """Token-level evidence, one engine.contract.token_stats blob per rollout ([training] record_token_stats;
    engine/token_evidence.py builds them); None when not recorded."""
    values: list[float] | None = None
    """PPO: the critic's value at each completion's first token; None for algorithms without a critic."""
    value_targets: list[float] | None = None
    """PPO: the return at each completion's first token (the value head's target); None without a critic."""


@dataclass
class RunSession:
    workspace: Workspace
    run_id: int
    cfg: RunConfig
    rubric: Any
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]
    controller: control.Controller
    resumed_from_step: int = 0
    started: float = field(default_factory=time.time)
    recorder: Recorder = field(default_factory=Recorder)
    _step_times: list[float] = field(default_factory=list)
    _step_began: float = 0.0
    monitor: Monitor | None = None
    """The training-time detectors (engine/monitor.py), fed on the recorder thread after each write."""

    def __post_init__(self) -> None:
        if self.monitor is None:
            self.monitor = for_session(self)

    @property
    def files(self) -> Path:
        return run_dir(self.workspace.path, self.run_id)

    def log(self, message: str) -> None:
        print(f"[run {self.run_id}] {message}", file=sys.stderr, flush=True)

    # ---- status ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Make every queued record durable (before a status change, a checkpoint, the end)."""
        self.recorder.flush()

    def close(self) -> None:
        try:
            self.recorder.flush()
        finally:
            self.recorder.close()
            self.rubric.close()

    def set_status(self, status: str, step: int, error: str | None = None) -> None:
        self.flush()
        self.workspace.set_status(self.run_id, status, error=error)
        self.workspace.log_event(self.run_id, "status", {"status": status, "step": step})
        control.emit("status", run_id=self.run_id, status=status, step=step)

    # ---- scoring --------------------------------------------------------------------------------
    def score(
        self,
        prompts: list[Any],
        completions: list[Any],
        columns: dict[str, list[Any]],
        completion_ids: list[list[int]] | None,
        step: int,
    ) -> ScoredBatch:
        """Score a batch with the rubric: the one code path for training, evaluation and `rubric test`."""
        user_columns = {k: v for k, v in columns.items() if k != ROW_INDEX}
        batch = RewardBatch(prompts, completions, user_columns, completion_ids, step=step)
        return self.rubric.score(batch)

    def criterion_metrics(self, scored: ScoredBatch, prefix: str = "rewards") -> dict[str, float]:
        out: dict[str, float] = {}
        for name, values in scored.scores.items():
            m, s = mean_std(values)
            out[f"{prefix}/{name}/mean"] = m if m is not None else float("nan")
            if prefix == "rewards":
                out[f"{prefix}/{name}/std"] = s if s is not None else float("nan")
                errors = scored.errors.get(name, [])
                out[f"{prefix}/{name}/error_rate"] = sum(e is not None for e in errors) / max(len(errors), 1)
        return out

    # ---- recording ------------------------------------------------------------------------------
    def record_rollouts(self, step: int, batch: Rollouts, num_generations: int) -> None:
        groups: list[GroupRecord] = []
        for start in range(0, len(batch.completions), num_generations):
            rows = range(start, min(start + num_generations, len(batch.completions)))
            cols = batch.columns[start]
            records = []
            for i in rows:
                total, scores, errors = batch.scored.row(i)
                records.append(
                    RolloutRecord(
                        completion=batch.completions[i],
                        reward=total,
                        advantage=batch.advantages[i],
                        completion_tokens=batch.completion_tokens[i],
                        truncated=batch.truncated[i],
                        scores=scores,
                        errors=errors,
                        explanations={
                            name: text
                            for name, texts in batch.scored.explanations.items()
                            if (text := texts[i]) is not None
                        },
                    )
                )
                if batch.trajectories is not None:
                    records[-1] = with_trajectory(records[-1], batch.trajectories[i], batch.prompts[start])
                if batch.token_stats is not None:
                    records[-1].token_stats = batch.token_stats[i]
                if batch.values is not None and batch.value_targets is not None:
                    records[-1].value = batch.values[i]
                    records[-1].value_target = batch.value_targets[i]
            groups.append(
                GroupRecord(
                    prompt=prompt_text(batch.prompts[start]),
                    prompt_index=cols.get(ROW_INDEX),
                    columns={k: v for k, v in cols.items() if k not in ("prompt", ROW_INDEX)},
                    rollouts=records,
                )
            )
        self.recorder.submit(self._write_rollouts, step, groups)

    def _write_rollouts(self, step: int, groups: list[GroupRecord]) -> None:  # on the recorder thread
        up_to = self.workspace.write_rollouts(self.run_id, step, groups)
        control.emit("rollouts_written", run_id=self.run_id, up_to_id=up_to, step=step)
        if self.monitor is not None:
            self.monitor.rollouts_written(step, groups, up_to)

    def record_metrics(self, step: int, values: dict[str, Any]) -> None:
        self.recorder.submit(self._write_metrics, step, values)

    def _write_metrics(self, step: int, values: dict[str, Any]) -> None:  # on the recorder thread
        if self.workspace.write_metrics(self.run_id, step, values):
            control.emit("metrics_written", run_id=self.run_id, step=step)
            if self.monitor is not None:
                self.monitor.metrics_written(step, values)

    # ---- progress -------------------------------------------------------------------------------
    def step_began(self) -> None:
        self._step_began = time.perf_counter()

    def step_ended(self, step: int, phase: str = "train") -> None:
        if self._step_began:
            self._step_times.append(time.perf_counter() - self._step_began)
            self._step_times = self._step_times[-20:]
        per_step = sum(self._step_times) / len(self._step_times) if self._step_times else 0.0
        remaining = max(self.cfg.training.max_steps - step, 0)
        control.emit(
            "progress",
            run_id=self.run_id,
            step=step,
            max_steps=self.cfg.training.max_steps,
            steps_per_s=round(1.0 / per_step, 3) if per_step else None,
            eta_s=round(remaining * per_step, 1) if per_step else None,
            phase=phase,
        )

    # ---- evaluation -----------------------------------------------------------------------------
    def evaluate(self, model: Any, tokenizer: Any, step: int) -> dict[str, float | None]:
        """Score one sampled completion per held-out prompt; record eval/<criterion>/mean."""
        if not self.eval_rows:
            return {}
        if self.cfg.environment is not None:  # an agent run: play each held-out task with the tools
            from engine.envs.evaluation import evaluate_agent

            return evaluate_agent(self, model, tokenizer, step)
        from engine.evaluation_metrics import evaluate_sampled, pass_figures

        if self.cfg.eval.eval_samples > 1 or self.cfg.eval.eval_greedy:  # pass@k, mean@n, greedy pass@1
            return evaluate_sampled(self, model, tokenizer, step)
        from engine.generation import generate

        control.emit(
            "progress",
            run_id=self.run_id,
            step=step,
            max_steps=self.cfg.training.max_steps,
            steps_per_s=None,
            eta_s=None,
            phase="eval",
        )
        t0 = time.perf_counter()
        rows = self.eval_rows
        prompts = [r["prompt"] for r in rows]
        out = generate(model, tokenizer, prompts, self.cfg, seed=self.cfg.training.seed + 7919 * (step + 1))
        columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
        scored = self.score(prompts, out.completions_for_rubric, columns, out.completion_ids, step)
        summary: dict[str, float | None] = {}
        for name, values in scored.scores.items():
            summary[f"eval/{name}/mean"] = mean_std(values)[0]
        summary["eval/reward/mean"] = mean_std(list(scored.totals))[0]
        summary |= pass_figures(self, rows, scored)  # eval/pass@1, eval/mean@1 (per tier too)
        samples = []
        for i, row in enumerate(rows):
            total, scores, errors = scored.row(i)
            samples.append(
                {
                    "prompt_index": row.get(ROW_INDEX, i),
                    "prompt": prompt_text(row["prompt"]),
                    "completion": out.texts[i],
                    "reward": total,
                    "scores": scores,
                    "errors": errors,
                }
            )
        self.flush()
        self.workspace.write_evaluation(self.run_id, step, samples, summary)
        control.emit("eval_written", run_id=self.run_id, step=step, reward=summary["eval/reward/mean"])
        pretty = ", ".join(f"{k.split('/')[1]}={v:.3f}" for k, v in summary.items() if v is not None)
        self.log(f"eval at step {step} on {len(rows)} prompts ({time.perf_counter() - t0:.1f}s): {pretty}")
        return summary

    # ---- checkpoints ----------------------------------------------------------------------------
    def checkpoint_written(self, step: int, path: Path) -> None:
        """Mark a checkpoint complete (after every file is on disk), record it, drop old ones."""
        marker = {"run_id": self.run_id, "step": step, "time": time.time()}
        tmp = path / (COMPLETE_MARKER + ".tmp")
        tmp.write_text(json.dumps(marker))
        tmp.replace(path / COMPLETE_MARKER)
        self.flush()  # the checkpoint's step is fully recorded before the checkpoint is
        self.workspace.add_checkpoint(self.run_id, step, str(path))
        self.workspace.log_event(self.run_id, "checkpoint_saved", {"step": step, "path": str(path)})
        control.emit("checkpoint_saved", run_id=self.run_id, step=step, path=str(path))
        self.log(f"checkpoint at step {step}: {path}")
        complete = self.workspace.checkpoints(self.run_id)
        for old in complete[: -self.cfg.training.keep_checkpoints]:
            self.workspace.forget_checkpoint(old["id"])
            shutil.rmtree(old["path"], ignore_errors=True)

    # ---- the end of a run ---------------------------------------------------------------------------
    def needs_final_evaluation(self, step: int) -> bool:
        if not self.eval_rows:
            return False
        row = self.workspace.conn.execute(
            "SELECT 1 FROM metrics WHERE run_id = ? AND step = ? AND key = 'eval/reward/mean' LIMIT 1",
            (self.run_id, step),
        ).fetchone()
        return row is None

    def finished_work_done(self, step: int) -> bool:
        """Whether what a finished run leaves behind is all there: the adapter and the final evaluation."""
        return (self.files / ADAPTER_DIR).is_dir() and not self.needs_final_evaluation(step)

    def finish(self, model: Any, tokenizer: Any, step: int, save_adapter: Callable[[str], None]) -> None:
        """After the last step: write the adapter and the final evaluation, each only if it is missing,
        so a run killed or stopped between its last checkpoint and its end finishes exactly once.

        The adapter is written into `adapter.partial/` and renamed: a kill leaves no half adapter. A stop
        that arrives before the evaluation leaves it for `resume` (the run ends `stopped`)."""
        adapter = self.files / ADAPTER_DIR
        if not adapter.is_dir():
            partial = self.files / (ADAPTER_DIR + ".partial")
            if control.is_main_process():
                shutil.rmtree(partial, ignore_errors=True)
            save_adapter(str(partial))
            if control.is_main_process():
                partial.replace(adapter)
        if control.is_main_process() and self.needs_final_evaluation(step):
            if self.controller.stop_requested:
                return
            self.evaluate(model, tokenizer, step)


def clean_run_files(workspace: Workspace, run_id: int, keep_adapter: bool) -> list[Path]:
    """Remove what a kill or a full disk left half-written in a run's folder: checkpoint folders that are
    not recorded complete (a kill during a save or a rotation, a second SIGTERM), a partial adapter, and
    (unless the run already reached its last step) an adapter from a life of the run that is forgotten
    now. Returns what was removed."""
    folder = run_dir(workspace.path, run_id)
    if not folder.is_dir():
        return []
    complete = {Path(c["path"]).resolve() for c in workspace.checkpoints(run_id)}
    removed = []
    for child in folder.iterdir():
        stale = (
            (re.fullmatch(r"(tmp-)?checkpoint-\d+", child.name) and child.resolve() not in complete)
            or child.name == ADAPTER_DIR + ".partial"
            or (child.name == ADAPTER_DIR and not keep_adapter)
        )
        if stale and child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def last_complete_checkpoint(workspace: Workspace, run_id: int) -> dict[str, Any] | None:
    """The newest checkpoint recorded complete whose marker is on disk (an interrupted write never counts)."""
    for ckpt in reversed(workspace.checkpoints(run_id)):
        if (Path(ckpt["path"]) / COMPLETE_MARKER).is_file():
            return ckpt
    return None


def load_rows(cfg: RunConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train = read_jsonl(cfg.resolve(cfg.data.train))
    for i, row in enumerate(train):
        row[ROW_INDEX] = i
    evals: list[dict[str, Any]] = []
    if cfg.data.eval:
        evals = read_jsonl(cfg.resolve(cfg.data.eval))
        for i, row in enumerate(evals):
            row[ROW_INDEX] = i
        if cfg.data.eval_limit:
            evals = evals[: cfg.data.eval_limit]
    return train, evals
