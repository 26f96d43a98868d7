"""Start, resume and finish runs: the lifecycle every algorithm shares, and its error handling.

User-fixable problems (a bad config value, a malformed dataset line, a missing model path, a rubric
that does not load, a full disk, a damaged workspace) end with one clear message, an `error` event and
exit code 2, and no traceback. Anything else is a bug: its traceback goes to stderr and into the event.
The config and every input are checked before a run row is created, so a typo leaves no run behind.

One engine per run: a run is held by the process that trains it (a lease taken in a write transaction,
see Workspace.take_lease); a second `resume` of the same run is refused with the holder's pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from engine import control
from engine.contract.config import ConfigError, RunConfig, config_from_dict, load_run_config
from engine.contract.run_status import own_token
from engine.contract.schema import damaged_message, is_damage_error
from engine.data import DataError
from engine.logs import route_library_noise
from engine.store import DamagedWorkspaceError, FollowerWorkspace, StoreError, Workspace, is_disk_full

EXIT_OK, EXIT_BUG, EXIT_INPUT = 0, 1, 2


def _input_errors() -> tuple[type[BaseException], ...]:
    from engine.rewards import RubricError

    return (ConfigError, DataError, StoreError, RubricError)


def _fail(
    workspace: Workspace | None, run_id: int | None, message: str, kind: str, tb: str | None = None
) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    if tb:
        print(tb, file=sys.stderr, flush=True)
    control.emit("error", run_id=run_id, message=message, kind=kind, traceback=tb)
    if workspace is not None and run_id is not None and not workspace.damaged:
        try:
            step = workspace.run(run_id)["step"]
            workspace.set_status(run_id, "failed", error=message)
            workspace.log_event(run_id, "error", {"message": message, "kind": kind, "traceback": tb})
            control.emit("status", run_id=run_id, status="failed", step=step)
            control.emit("finished", run_id=run_id, status="failed", step=step)
        except Exception as exc:  # the workspace itself may be what failed (a full disk)
            print(f"error: could not record the failure in the workspace: {exc}", file=sys.stderr)


def open_workspace(db: str, create: bool = True) -> Workspace | None:
    """The workspace a run writes to, checked first (PRAGMA quick_check): a damaged file is refused."""
    try:
        if control.is_main_process():
            return Workspace(db, create=create, verify=True)
        return FollowerWorkspace(db, create=create)
    except StoreError as exc:
        _fail(None, None, str(exc), "input")
        return None


def stored_config(run: dict[str, Any]) -> RunConfig:
    data = json.loads(run["config"])
    base_dir = data.pop("base_dir", "")
    # an optional section the config did not have is recorded as null (e.g. "environment": null)
    data = {key: value for key, value in data.items() if value is not None}
    return config_from_dict(data, base_dir=base_dir)


class RunInputs:
    """What a run reads besides its config, loaded and checked before anything is recorded."""

    def __init__(self, cfg: RunConfig, workspace: Workspace):
        from engine import preflight
        from engine.modeling import _check_model_source as check_model_source
        from engine.rewards import load_rubric
        from engine.session import load_rows

        self.train_rows, self.eval_rows = load_rows(cfg)
        check_model_source(cfg)
        self.rubric = load_rubric(cfg.resolve(cfg.rubric.path), tokenizer=None, cache_db=workspace.path)
        preflight.check(cfg, self.rubric, self.train_rows, self.eval_rows)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.rubric.close()


def start(
    config_path: str, db: str, name: str | None = None, max_steps: int | None = None
) -> tuple[int, int | None]:
    """Create a run from a config file and train it. Returns (exit code, run id).

    A config or input error is reported before the run row exists: no `failed` run is left behind.
    """
    workspace = open_workspace(db)
    if workspace is None:
        return EXIT_INPUT, None
    inputs: RunInputs | None = None
    try:
        cfg = load_run_config(config_path)
        if max_steps is not None:
            cfg.training.max_steps = max_steps
            cfg.__post_init__()
        inputs = RunInputs(cfg, workspace)
    except _input_errors() as exc:
        if inputs is not None:
            inputs.close()
        _fail(None, None, str(exc), "input")
        return EXIT_INPUT, None
    run_name = name or cfg.name or f"{cfg.algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_id = 0
    if control.is_main_process():
        try:
            run_id = workspace.create_run(
                run_name,
                cfg.algorithm,
                cfg.to_dict(),
                cfg.training.max_steps,
                config_path=str(Path(config_path).resolve()),
                lease=(os.getpid(), own_token()),
            )
        except StoreError as exc:
            inputs.close()
            _fail(None, None, str(exc), "input")
            return EXIT_INPUT, None
    run_id = _share_from_main(run_id)
    return execute(workspace, run_id, cfg, resume_from=None, inputs=inputs), run_id


def _share_from_main(value: int) -> int:
    """Under `accelerate launch` or torchrun, every process learns the run id the main process created."""
    if control.world_size() == 1:
        return value
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():  # the Trainer reuses this process group
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return int(box[0])


def resume(run_id: int, db: str) -> int:
    """Continue a stopped, failed or killed run from its last complete checkpoint (or from the start
    when it has none). Refused while another live process holds the run."""
    from engine.session import last_complete_checkpoint

    workspace = open_workspace(db, create=False)
    if workspace is None:
        return EXIT_INPUT
    try:
        run = workspace.run(run_id)
        cfg = stored_config(run)
    except StoreError as exc:
        _fail(None, None, str(exc), "input")
        return EXIT_INPUT
    except ConfigError as exc:
        _fail(None, None, f"The stored config of run {run_id} no longer validates: {exc}", "input")
        return EXIT_INPUT
    if run["status"] == "finished":
        _fail(None, None, _finished_message(run), "input")
        return EXIT_INPUT
    try:
        run = workspace.take_lease(run_id, os.getpid(), own_token())
    except StoreError as exc:
        _fail(None, None, str(exc), "input")
        return EXIT_INPUT
    if run["status"] == "finished":  # finished by the holder while we waited for the lease
        workspace.release_lease(run_id, os.getpid())
        _fail(None, None, _finished_message(run), "input")
        return EXIT_INPUT
    ckpt = last_complete_checkpoint(workspace, run_id)
    return execute(workspace, run_id, cfg, resume_from=ckpt)


def _finished_message(run: dict[str, Any]) -> str:
    return f"Run {run['id']} already finished all {run['max_steps']} steps; nothing to resume."


def execute(
    workspace: Workspace,
    run_id: int,
    cfg: RunConfig,
    resume_from: dict[str, Any] | None,
    inputs: RunInputs | None = None,
) -> int:
    """Load everything, train, and leave the run in a final status. Never raises. The caller holds the
    run's lease; it is released here."""
    from engine.session import RunSession, StopRun, clean_run_files

    controller = control.Controller()
    controller.listen()
    controller.handle_sigterm()
    session: RunSession | None = None
    try:
        from_step = int(resume_from["step"]) if resume_from else 0
        # A resume forgets what was recorded after its checkpoint; with no checkpoint it starts over
        # and forgets everything, the step-0 evaluation too (it is recorded again, once).
        workspace.truncate_after(run_id, from_step if resume_from else -1)
        if control.is_main_process():
            clean_run_files(workspace, run_id, keep_adapter=from_step >= cfg.training.max_steps)
        workspace.update_run(run_id, started_at=time.time(), error=None, finished_at=None)
        run = workspace.run(run_id)
        control.emit(
            "run_started",
            run_id=run_id,
            name=run["name"],
            max_steps=cfg.training.max_steps,
            resumed_from_step=from_step if resume_from else None,
        )
        workspace.log_event(run_id, "run_started", {"resumed_from_step": from_step, "config": cfg.to_dict()})
        route_library_noise(workspace.path, run_id)  # warnings and library logs: a debug file, not stderr
        print(f"[run {run_id}] config:\n{cfg.to_toml(absolute_paths=True)}", file=sys.stderr, flush=True)

        if inputs is None:
            inputs = RunInputs(cfg, workspace)
        for path, rows in ((cfg.data.train, inputs.train_rows), (cfg.data.eval, inputs.eval_rows)):
            if path:
                columns = sorted({k for r in rows for k in r if not k.startswith("_")})
                workspace.register_dataset(str(cfg.resolve(path).resolve()), len(rows), columns)
        _record_rubric(inputs.rubric, workspace, run_id)
        session = RunSession(
            workspace,
            run_id,
            cfg,
            inputs.rubric,
            inputs.train_rows,
            inputs.eval_rows,
            controller,
            resumed_from_step=from_step,
        )
        if controller.stop_requested:
            raise StopRun()
        if resume_from and from_step >= cfg.training.max_steps:
            # Killed or stopped after the last checkpoint was written: never train past max_steps;
            # finish only what is missing (the adapter, the final evaluation).
            step = _finish_from_checkpoint(session, resume_from)
            done = step >= cfg.training.max_steps and session.finished_work_done(step)
        else:
            step = _train(session, resume_from)
            done = step >= cfg.training.max_steps and session.finished_work_done(step)
        session.flush()
        if done:
            session.set_status("finished", step)
            control.emit("finished", run_id=run_id, status="finished", step=step)
        else:
            session.set_status("stopped", step)
            control.emit("finished", run_id=run_id, status="stopped", step=step)
        return EXIT_OK
    except StopRun:
        if session is not None:
            session.flush()
        step = workspace.run(run_id)["step"]
        if session is not None:
            session.set_status("stopped", step)
        else:
            workspace.set_status(run_id, "stopped")
        control.emit("finished", run_id=run_id, status="stopped", step=step)
        return EXIT_OK
    except BaseException as exc:
        if not isinstance(exc, Exception):  # KeyboardInterrupt and friends: not ours to report
            raise
        _quiesce(session)
        code, message, kind, tb = _classify(exc, workspace, run_id)
        if is_disk_full(exc, workspace.path) and control.is_main_process():
            # what filled the disk is most often the checkpoint being written: free it, so that the
            # failure itself can be recorded
            with contextlib.suppress(Exception):
                clean_run_files(workspace, run_id, keep_adapter=True)
        _fail(workspace, run_id, message, kind, tb)
        return code
    finally:
        if session is not None:
            try:
                session.close()
            except Exception as exc:  # already reported above when it mattered
                print(f"[engine] while closing: {exc}", file=sys.stderr)
        elif inputs is not None:
            inputs.close()
        with contextlib.suppress(Exception):
            if not workspace.damaged:
                workspace.release_lease(run_id, os.getpid())


def _classify(exc: Exception, workspace: Workspace, run_id: int) -> tuple[int, str, str, str | None]:
    """(exit code, message, kind, traceback) for an exception that ended a run."""
    if is_disk_full(exc, workspace.path):
        detail = exc.detail if isinstance(exc, StoreError) and hasattr(exc, "detail") else exc
        return (
            EXIT_INPUT,
            f"The disk holding the workspace {workspace.path} is full ({detail}). Free some space, then "
            f"continue run {run_id} with `rl-studio-engine resume {run_id} --db {workspace.path}`; "
            "everything committed before this is kept.",
            "input",
            None,
        )
    if isinstance(exc, sqlite3.DatabaseError) and is_damage_error(exc):
        workspace.damaged = True
        return EXIT_INPUT, damaged_message(workspace.path, exc), "input", None
    if isinstance(exc, DamagedWorkspaceError):
        workspace.damaged = True
        return EXIT_INPUT, str(exc), "input", None
    if isinstance(exc, _input_errors()):
        return EXIT_INPUT, str(exc), "input", None
    if isinstance(exc, MemoryError):
        return (
            EXIT_INPUT,
            "Out of memory. Lower prompts_per_step, num_generations or max_completion_length.",
            "input",
            None,
        )
    return EXIT_BUG, f"{type(exc).__name__}: {exc}", "bug", traceback.format_exc()


def _quiesce(session: Any) -> None:
    """Let the recorder finish before the failure is written from this thread (errors were raised already)."""
    if session is not None:
        with contextlib.suppress(Exception):
            session.flush()


def _record_rubric(rubric: Any, workspace: Workspace, run_id: int) -> None:
    toml_text, sources = rubric.snapshot()
    version_id = workspace.save_rubric_version(rubric.name, toml_text, sources, note=f"used by run {run_id}")
    workspace.update_run(run_id, rubric_version_id=version_id)


def _finish_from_checkpoint(session: Any, resume_from: dict[str, Any]) -> int:
    """A run whose checkpoint at max_steps exists: load that adapter and finish what is missing."""
    from engine.modeling import load_model, load_tokenizer, plan_device

    step = int(resume_from["step"])
    checkpoint = Path(resume_from["path"])
    session.log(f"the checkpoint at step {step} is the last one: finishing without training")
    model = tokenizer = None
    if session.needs_final_evaluation(step):
        plan = plan_device(session.cfg)
        tokenizer = load_tokenizer(session.cfg)
        model = load_model(session.cfg, plan)
        if (checkpoint / "adapter_config.json").is_file():
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(checkpoint))
        model.to(plan.device)

    def copy_adapter(target: str) -> None:
        shutil.copytree(checkpoint, target, ignore=shutil.ignore_patterns(*_TRAINER_STATE_FILES))

    session.finish(model, tokenizer, step, copy_adapter)
    return step


_TRAINER_STATE_FILES = (
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "trainer_state.json",
    "rl_studio_complete.json*",
)


def _train(session: Any, resume_from: dict[str, Any] | None) -> int:
    from engine.modeling import load_model, load_tokenizer, plan_device, set_cpu_threads
    from engine.prompts import refuse_long_prompts

    cfg = session.cfg
    plan = plan_device(cfg)
    session.log(f"device {plan.device}, dtype {plan.dtype_name}")
    tokenizer = load_tokenizer(cfg)
    refuse_long_prompts(cfg, tokenizer, session.train_rows, session.eval_rows)  # [training] max_prompt_length
    model = load_model(cfg, plan)
    threads = set_cpu_threads(cfg, plan, model)
    if threads is not None:
        session.log(f"{threads} CPU thread(s)")
    if cfg.algorithm == "grpo":
        from engine.algos import grpo

        return grpo.train(session, model, tokenizer, plan, resume_from["path"] if resume_from else None)
    if cfg.algorithm == "ppo":
        from engine.algos import ppo

        return ppo.train(session, model, tokenizer, plan, resume_from["path"] if resume_from else None)
    raise ConfigError(
        f'algorithm = "{cfg.algorithm}" is not available in this version of the engine; use "grpo" or "ppo".'
    )
