"""rl-studio-engine: run, resume, demo, runs, export, rubric test / redteam.

`run` and `resume` speak the protocol: JSON-line events on stdout, commands on stdin, a human log on
stderr. The other commands print their results on stdout (a table, or JSON with --json).
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine import control
from engine.contract.paths import AGENT_DEMO_CONFIG, DEMO_CONFIG, default_workspace
from engine.contract.protocol import ErrorReported, Event, Finished, Progress
from engine.contract.rollout_rows import csv_cell
from engine.contract.schema import damaged_message, is_damage_error

ENGINE_VERSION = "0.1.0"


def _cmd_run(args: argparse.Namespace) -> int:
    from engine import runner

    code, _ = runner.start(args.config, args.db, name=args.name)
    return code


def _cmd_resume(args: argparse.Namespace) -> int:
    from engine import runner

    return runner.resume(args.run_id, args.db)


# ---- demo ---------------------------------------------------------------------------------------------
class ProgressBar:
    """A terminal progress bar on stderr, fed by the engine's own events."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last_line = ""

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            step, total = event.step, event.max_steps or 1
            width = 30
            filled = int(width * min(step / total, 1.0))
            rate, eta = event.steps_per_s, event.eta_s
            phase = " evaluating" if event.phase == "eval" else ""
            extra = f" {rate:.2f} steps/s, ETA {eta:.0f}s" if rate and eta is not None else ""
            line = f"[{'#' * filled}{'.' * (width - filled)}] {step}/{total}{extra}{phase}"
            if self.tty:
                sys.stderr.write("\r" + line.ljust(len(self.last_line)))
                sys.stderr.flush()
            elif step % 10 == 0 or phase:
                print(line, file=sys.stderr, flush=True)
            self.last_line = line
        elif isinstance(event, Finished | ErrorReported) and self.tty:
            sys.stderr.write("\n")


def _eval_at(workspace: Any, run_id: int, which: str) -> dict[str, float | None]:
    rows = workspace.db.query(
        f"SELECT key, value FROM metrics WHERE run_id = ? AND key LIKE 'eval/%' AND step = "
        f"(SELECT {which}(step) FROM metrics WHERE run_id = ? AND key = 'eval/reward/mean')",
        (run_id, run_id),
    )
    # eval/<name>/mean only: an agent run also records eval/success/<tier> and eval/agent/...
    return {
        row["key"].split("/")[1]: row["value"]
        for row in rows
        if row["key"].count("/") == 2 and row["key"].endswith("/mean")
    }


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    from engine import runner
    from engine.contract.config import load_run_config
    from engine.store import Workspace

    config_name = "run.toml" if args.algorithm == "grpo" else f"run_{args.algorithm}.toml"
    demo_config = DEMO_CONFIG.with_name(config_name)
    if args.agent:  # the tool-using demo: GRPO on the file manager's tasks (demo_agent/run.toml)
        demo_config = AGENT_DEMO_CONFIG
    if args.print_config:
        sys.stdout.write(load_run_config(demo_config).to_toml(absolute_paths=True))
        return 0
    db = args.db or str(default_workspace())
    control.quiet()
    control.add_listener(ProgressBar())
    started = time.perf_counter()
    name = args.name or ("demo" if args.algorithm == "grpo" else f"demo-{args.algorithm}")
    if args.agent:
        name = args.name or "demo-agent"
    code, run_id = runner.start(str(demo_config), db, name=name, max_steps=args.steps)
    seconds = round(time.perf_counter() - started, 1)
    if run_id is None:
        return code
    workspace = Workspace(db)
    before, after = _eval_at(workspace, run_id, "MIN"), _eval_at(workspace, run_id, "MAX")
    status = workspace.run(run_id)["status"]
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": run_id,
                    "status": status,
                    "eval_before": before,
                    "eval_after": after,
                    "seconds": seconds,
                }
            )
        )
    else:
        print(f"run {run_id} {status} in {seconds:.0f}s (workspace {db})")
        print(f"{'held-out':<12}{'before':>10}{'after':>10}")
        for name in before:
            b, a = before.get(name), after.get(name)
            print(f"{name:<12}{_fmt(b):>10}{_fmt(a):>10}")
    return code


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# ---- runs and export -------------------------------------------------------------------------------------
def _workspace_for_reading(db: str) -> Any:
    from engine.store import StoreError, Workspace

    if not Path(db).expanduser().is_file():
        print(
            f"error: workspace {db} does not exist. Pass the path of a workspace .sqlite file.",
            file=sys.stderr,
        )
        return None
    try:
        return Workspace(db)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _cmd_runs(args: argparse.Namespace) -> int:
    workspace = _workspace_for_reading(args.db)
    if workspace is None:
        return 2
    from engine.contract.run_status import run_states

    # An active status whose process is gone (kill -9, power cut) is shown as `interrupted`.
    states = run_states(workspace.conn)
    runs = [
        {k: r[k] for k in ("id", "name", "status", "algorithm", "step", "max_steps", "error")}
        | {"status": states[r["id"]].status, "resumable": states[r["id"]].resumable}
        for r in workspace.runs()
    ]
    if args.json:
        print(json.dumps(runs))
        return 0
    print(f"{'id':>4}  {'name':<24}{'status':<24}{'step':>12}  error")
    for r in runs:
        label = states[r["id"]].label
        print(
            f"{r['id']:>4}  {r['name'][:23]:<24}{label:<24}{r['step']:>6}/{r['max_steps']:<5}  {r['error'] or ''}"
        )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from engine.store import StoreError

    workspace = _workspace_for_reading(args.db)
    if workspace is None:
        return 2
    try:
        workspace.run(args.run_id)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows: Iterable[dict[str, Any]]
    if args.what == "metrics":
        rows, fields = workspace.metrics(args.run_id), ["step", "key", "value"]
    elif args.what == "trajectories":  # one JSON object per agent rollout, messages in OpenAI's chat format
        if args.format != "jsonl":
            print("error: trajectories export as JSON lines only; pass --format jsonl", file=sys.stderr)
            return 2
        rows, fields = workspace.trajectories(args.run_id), []
    else:  # see engine/contract/rollout_rows.py for what joins a rollout back to its dataset row
        rows, fields = workspace.rollouts(args.run_id), workspace.rollout_fields(args.run_id)
    out = sys.stdout
    if args.format == "jsonl":
        for row in rows:
            out.write(json.dumps(row) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=fields, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return 0


# ---- parser ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rl-studio-engine", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rl-studio-engine {ENGINE_VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train a run from a config file (events on stdout, commands on stdin)")
    p.add_argument("config", help="run config TOML")
    p.add_argument("--db", required=True, help="workspace .sqlite file (created if missing)")
    p.add_argument("--name", help="run name (default: the config's name, or algorithm and time)")
    p.set_defaults(func=_cmd_run, protocol=True)

    p = sub.add_parser("resume", help="continue a stopped or killed run from its last complete checkpoint")
    p.add_argument("run_id", type=int)
    p.add_argument("--db", required=True)
    p.set_defaults(func=_cmd_resume, protocol=True)

    p = sub.add_parser("demo", help="train the bundled demo and print held-out scores before and after")
    p.add_argument("--db", help=f"workspace (default: {default_workspace()})")
    p.add_argument("--steps", type=int, help="override max_steps")
    p.add_argument("--name", help="run name (default: demo, or demo-ppo)")
    p.add_argument(
        "--algorithm",
        choices=("grpo", "ppo"),
        default="grpo",
        help="train the demo with GRPO (run.toml) or PPO (run_ppo.toml)",
    )
    p.add_argument(
        "--agent",
        action="store_true",
        help="train the tool-using demo instead: GRPO on the file manager's tasks (demo_agent/run.toml)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--print-config", action="store_true", help="print the demo config with absolute paths")
    p.set_defaults(func=_cmd_demo, protocol=False)

    p = sub.add_parser("runs", help="list the runs in a workspace")
    p.add_argument("--db", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_runs, protocol=False)

    p = sub.add_parser(
        "export",
        help="export a run's metrics or rollouts",
        description="Rollouts carry the run, step, group (workspace id and index in the run), the prompt's"
        " row in the training file (prompt_index) and that row's other columns, so they join back to it.",
    )
    p.add_argument("run_id", type=int)
    p.add_argument("--db", required=True)
    p.add_argument(
        "--what",
        choices=("metrics", "rollouts", "trajectories"),
        required=True,
        help="trajectories: one JSON object per rollout of an agent run, its episode as OpenAI chat messages",
    )
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.set_defaults(func=_cmd_export, protocol=False)

    from engine.rewards.commands import register

    register(sub)
    from engine.envs.commands import register as register_env

    register_env(sub)  # env check
    from engine.model_commands import register as register_models

    register_models(sub)  # data check, model info, export-model
    from engine.monitor_commands import register as register_alerts

    register_alerts(sub)  # alerts, alerts ack
    __import__("engine.playground").playground.register(sub)  # playground (engine/playground.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "protocol", False):
        control.claim_stdout()
        import os

        control.emit("hello", pid=os.getpid(), engine_version=ENGINE_VERSION)
    try:
        return int(args.func(args))
    except sqlite3.DatabaseError as exc:  # a damaged page met by any command that reads the workspace
        if not is_damage_error(exc):
            raise
        print(f"error: {damaged_message(getattr(args, 'db', '') or 'the workspace', exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; not an error
        return 0


if __name__ == "__main__":
    sys.exit(main())
