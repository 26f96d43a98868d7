"""Start, resume and finish runs: the lifecycle every algorithm shares, and its error handling.

User-fixable problems (a bad config value, a malformed dataset line, a missing model path, a rubric
that does not load, a full disk) end the run as `failed` with one clear message, an `error` event and
exit code 2, and no traceback. Anything else is a bug: its traceback goes to stderr and into the event.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from engine import control
from engine.contract.config import ConfigError, RunConfig, config_from_dict, load_run_config
from engine.data import DataError
from engine.store import FollowerWorkspace, StoreError, Workspace

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
    if workspace is not None and run_id is not None:
        try:
            step = workspace.run(run_id)["step"]
            workspace.set_status(run_id, "failed", error=message)
            workspace.log_event(run_id, "error", {"message": message, "kind": kind, "traceback": tb})
            control.emit("status", run_id=run_id, status="failed", step=step)
            control.emit("finished", run_id=run_id, status="failed", step=step)
        except Exception as exc:  # the workspace itself may be what failed (a full disk)
            print(f"error: could not record the failure in the workspace: {exc}", file=sys.stderr)


def open_workspace(db: str) -> Workspace | None:
    try:
        return Workspace(db) if control.is_main_process() else FollowerWorkspace(db)
    except StoreError as exc:
        _fail(None, None, str(exc), "input")
        return None


def stored_config(run: dict[str, Any]) -> RunConfig:
    data = json.loads(run["config"])
    base_dir = data.pop("base_dir", "")
    return config_from_dict(data, base_dir=base_dir)


def start(
    config_path: str, db: str, name: str | None = None, max_steps: int | None = None
) -> tuple[int, int | None]:
    """Create a run from a config file and train it. Returns (exit code, run id)."""
    workspace = open_workspace(db)
    if workspace is None:
        return EXIT_INPUT, None
    try:
        cfg = load_run_config(config_path)
        if max_steps is not None:
            cfg.training.max_steps = max_steps
            cfg.__post_init__()
    except ConfigError as exc:
        if not control.is_main_process():
            return EXIT_INPUT, None
        run_id = workspace.create_run(
            name or Path(config_path).stem, "unknown", {}, 0, config_path=config_path
        )
        _fail(workspace, run_id, str(exc), "input")
        return EXIT_INPUT, run_id
    run_name = name or cfg.name or f"{cfg.algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_id = 0
    if control.is_main_process():
        run_id = workspace.create_run(
            run_name,
            cfg.algorithm,
            cfg.to_dict(),
            cfg.training.max_steps,
            config_path=str(Path(config_path).resolve()),
        )
    run_id = _share_from_main(run_id)
    return execute(workspace, run_id, cfg, resume_from=None), run_id


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
    """Continue a stopped, failed or killed run from its last complete checkpoint."""
    from engine.session import last_complete_checkpoint

    workspace = open_workspace(db)
    if workspace is None:
        return EXIT_INPUT
    try:
        run = workspace.run(run_id)
    except StoreError as exc:
        _fail(workspace, None, str(exc), "input")
        return EXIT_INPUT
    if run["status"] == "finished":
        _fail(
            workspace,
            None,
            f"Run {run_id} already finished all {run['max_steps']} steps; nothing to resume.",
            "input",
        )
        return EXIT_INPUT
    if run["status"] in ("running", "paused") and run["pid"] and _alive(run["pid"]):
        _fail(
            workspace, None, f"Run {run_id} is still training (process {run['pid']}). Stop it first.", "input"
        )
        return EXIT_INPUT
    ckpt = last_complete_checkpoint(workspace, run_id)
    try:
        cfg = stored_config(run)
    except ConfigError as exc:
        _fail(workspace, run_id, f"The stored config of run {run_id} no longer validates: {exc}", "input")
        return EXIT_INPUT
    return execute(workspace, run_id, cfg, resume_from=ckpt)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return pid != os.getpid()


def execute(workspace: Workspace, run_id: int, cfg: RunConfig, resume_from: dict[str, Any] | None) -> int:
    """Load everything, train, and leave the run in a final status. Never raises."""
    from engine.session import RunSession, StopRun, load_rows

    controller = control.Controller()
    controller.listen()
    controller.handle_sigterm()
    session: RunSession | None = None
    try:
        from_step = int(resume_from["step"]) if resume_from else 0
        if resume_from:
            workspace.truncate_after(run_id, from_step)
        else:
            workspace.truncate_after(run_id, 0)  # a resume with no complete checkpoint starts over
        workspace.update_run(run_id, pid=os.getpid(), started_at=time.time(), error=None, finished_at=None)
        run = workspace.run(run_id)
        control.emit(
            "run_started",
            run_id=run_id,
            name=run["name"],
            max_steps=cfg.training.max_steps,
            resumed_from_step=from_step if resume_from else None,
        )
        workspace.log_event(run_id, "run_started", {"resumed_from_step": from_step, "config": cfg.to_dict()})
        print(f"[run {run_id}] config:\n{cfg.to_toml(absolute_paths=True)}", file=sys.stderr, flush=True)

        train_rows, eval_rows = load_rows(cfg)
        for path, rows in ((cfg.data.train, train_rows), (cfg.data.eval, eval_rows)):
            if path:
                columns = sorted({k for r in rows for k in r if not k.startswith("_")})
                workspace.register_dataset(str(cfg.resolve(path).resolve()), len(rows), columns)
        rubric = _load_rubric(cfg, workspace, run_id)
        session = RunSession(
            workspace, run_id, cfg, rubric, train_rows, eval_rows, controller, resumed_from_step=from_step
        )
        if controller.stop_requested:
            raise StopRun()
        step = _train(session, resume_from)
        session.flush()
        if controller.stop_requested or step < cfg.training.max_steps:
            session.set_status("stopped", step)
            control.emit("finished", run_id=run_id, status="stopped", step=step)
        else:
            session.set_status("finished", step)
            control.emit("finished", run_id=run_id, status="finished", step=step)
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
    except _input_errors() as exc:
        _quiesce(session)
        _fail(workspace, run_id, str(exc), "input")
        return EXIT_INPUT
    except OSError as exc:
        _quiesce(session)
        if exc.errno != 28:  # only ENOSPC is the user's to fix; other OS errors are reported as bugs below
            _fail(workspace, run_id, f"{type(exc).__name__}: {exc}", "bug", traceback.format_exc())
            return EXIT_BUG
        _fail(
            workspace,
            run_id,
            f"The disk is full ({exc}). Free some space, then continue with "
            f"`rl-studio-engine resume {run_id} --db {workspace.path}`.",
            "input",
        )
        return EXIT_INPUT
    except MemoryError:
        _quiesce(session)
        _fail(
            workspace,
            run_id,
            "Out of memory. Lower prompts_per_step, num_generations or max_completion_length.",
            "input",
        )
        return EXIT_INPUT
    except Exception as exc:
        _quiesce(session)
        _fail(workspace, run_id, f"{type(exc).__name__}: {exc}", "bug", traceback.format_exc())
        return EXIT_BUG
    finally:
        if session is not None:
            try:
                session.close()
            except Exception as exc:  # already reported above when it mattered
                print(f"[engine] while closing: {exc}", file=sys.stderr)


def _quiesce(session: Any) -> None:
    """Let the recorder finish before the failure is written from this thread (errors were raised already)."""
    if session is not None:
        with contextlib.suppress(Exception):
            session.flush()


def _load_rubric(cfg: RunConfig, workspace: Workspace, run_id: int) -> Any:
    from engine.rewards import load_rubric

    path = cfg.resolve(cfg.rubric.path)
    tokenizer = None
    rubric = load_rubric(path, tokenizer=tokenizer, cache_db=workspace.path)
    toml_text, sources = rubric.snapshot()
    version_id = workspace.save_rubric_version(rubric.name, toml_text, sources, note=f"used by run {run_id}")
    workspace.update_run(run_id, rubric_version_id=version_id)
    return rubric


def _train(session: Any, resume_from: dict[str, Any] | None) -> int:
    from engine.modeling import load_model, load_tokenizer, plan_device, set_cpu_threads

    cfg = session.cfg
    plan = plan_device(cfg)
    session.log(f"device {plan.device}, dtype {plan.dtype_name}")
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg, plan)
    threads = set_cpu_threads(cfg, plan, model)
    if threads is not None:
        session.log(f"{threads} CPU thread(s)")
    if cfg.algorithm == "grpo":
        from engine.algos import grpo

        return grpo.train(session, model, tokenizer, plan, resume_from["path"] if resume_from else None)
    raise ConfigError(
        f'algorithm = "{cfg.algorithm}" is not available in this version of the engine; use "grpo".'
    )
