"""A stand-in for `python -m engine.cli` that replays a recorded event stream (tests only).

    python fake_engine.py --fixture events.jsonl [--interval S] run CONFIG --db WS [--name N]
    python fake_engine.py --fixture events.jsonl resume RUN_ID --db WS
    python fake_engine.py rubric test RUBRIC --samples FILE.jsonl --json
    python fake_engine.py rubric redteam RUBRIC --dataset FILE.jsonl --json

It speaks the real protocol (engine/contract/protocol.py): it replays the fixture's events on stdout,
writes the rows each event announces into the workspace first, the way engine/store.py does (a
synthetic but deterministic reward curve), obeys pause / resume / stop / checkpoint on stdin and
SIGTERM, and logs to stderr. A fixture line ``{"_fake": "crash", "exit_code": 1, "stderr": "..."}``
makes it die on the spot, the way a segfault or an OOM kill would: no `finished`, no `error`.

`rubric test` and `rubric redteam` print what the real commands print (engine/contract/command_outputs.py)
from a rule anyone can check by eye: criterion "fake_has_answer" scores 1.0 when the completion contains
"<answer>", and the rubric file must exist (else the real engine's one-line error and exit code 2).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.contract import schema
from engine.contract.command_outputs import (
    CheatScore,
    RedteamOutput,
    SampleScores,
    rubric_redteam_json,
    rubric_test_json,
)
from engine.contract.config import load_run_config
from engine.contract.protocol import make_event, parse_command

OUT = sys.stdout
CRITERIA = ("correct", "format")


class Controls:
    def __init__(self) -> None:
        self.paused = False
        self.stop = False
        self.checkpoint = False
        self.wake = threading.Event()

    def apply(self, cmd: str) -> None:
        if cmd == "pause":
            self.paused = True
        elif cmd == "resume":
            self.paused = False
        elif cmd == "stop":
            self.stop, self.paused = True, False
        elif cmd == "checkpoint":
            self.checkpoint = True
        self.wake.set()


def emit(type_: str, **data: object) -> None:
    try:
        OUT.write(make_event(type_, **data).to_json() + "\n")
        OUT.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the studio went away: keep "training"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def metric_values(step: int, max_steps: int) -> dict[str, float | None]:
    """A deterministic run that learns: reward rises, KL grows, entropy falls; one NaN for good measure."""
    t = step / max(max_steps, 1)
    wiggle = 0.05 * math.sin(step * 1.7)
    reward = 0.2 + 0.9 * t + wiggle
    values: dict[str, float | None] = {
        "reward": reward,
        "reward_std": 0.3 - 0.1 * t,
        "kl": 0.01 * step,
        "loss": 0.05 * math.cos(step) - 0.01,
        "entropy": 1.2 - 0.5 * t,
        "completions/mean_length": 14 + 5 * t,
        "frac_reward_zero_std": None if step == 2 else 0.5 - 0.3 * t,
        "grad_norm": 1.0 / (1 + step),
        "learning_rate": 1e-4,
    }
    for i, name in enumerate(CRITERIA):
        values[f"rewards/{name}/mean"] = min(1.0, 0.1 + (0.8 - 0.2 * i) * t + wiggle)
        values[f"rewards/{name}/std"] = 0.3
    return values


class Run:
    def __init__(
        self, db: str, run_id: int | None, name: str, config: dict[str, object], max_steps: int
    ) -> None:
        self.conn = schema.connect(db)
        schema.migrate(self.conn)
        now = time.time()
        with self.conn:
            if run_id is None:
                cur = self.conn.execute(
                    "INSERT INTO runs(name, status, algorithm, config, max_steps, created_at, updated_at)"
                    " VALUES (?, 'queued', 'grpo', ?, ?, ?, ?)",
                    (name, json.dumps(config), max_steps, now, now),
                )
                run_id = int(cur.lastrowid or 0)
            self.conn.execute(
                "UPDATE runs SET pid = ?, started_at = ?, error = NULL, finished_at = NULL WHERE id = ?",
                (os.getpid(), now, run_id),
            )
        self.id = run_id
        self.max_steps = max_steps
        self.step = int(self.conn.execute("SELECT step FROM runs WHERE id = ?", (run_id,)).fetchone()[0])

    def status(self, status: str, error: str | None = None) -> None:
        now = time.time()
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET status = ?, error = COALESCE(?, error), updated_at = ?,"
                " finished_at = CASE WHEN ? IN ('stopped', 'failed', 'finished') THEN ? ELSE finished_at END"
                " WHERE id = ?",
                (status, error, now, status, now, self.id),
            )
            self.conn.execute(
                "INSERT INTO events(run_id, time, type, payload) VALUES (?, ?, 'status', ?)",
                (self.id, now, json.dumps({"status": status, "step": self.step})),
            )

    def metrics(self, step: int) -> None:
        now = time.time()
        rows = [(self.id, step, k, v, now) for k, v in metric_values(step, self.max_steps).items()]
        with self.conn:
            self.conn.executemany(
                "INSERT INTO metrics(run_id, step, key, value, time) VALUES (?, ?, ?, ?, ?)", rows
            )
            self.conn.execute(
                "UPDATE runs SET step = MAX(step, ?), updated_at = ? WHERE id = ?", (step, now, self.id)
            )
        self.step = max(self.step, step)

    def evaluation(self, step: int) -> float:
        t = step / max(self.max_steps, 1)
        summary = {
            "eval/reward/mean": 0.3 + 0.6 * t,
            "eval/correct/mean": 0.2 + 0.6 * t,
            "eval/format/mean": 0.5 + 0.5 * t,
        }
        with self.conn:
            self.conn.executemany(
                "INSERT INTO metrics(run_id, step, key, value, time) VALUES (?, ?, ?, ?, ?)",
                [(self.id, step, k, v, time.time()) for k, v in summary.items()],
            )
        return summary["eval/reward/mean"]

    def checkpoint(self, step: int, folder: Path) -> str:
        path = folder / f"checkpoint-{step}"
        path.mkdir(parents=True, exist_ok=True)
        with self.conn:
            self.conn.execute(
                "INSERT INTO checkpoints(run_id, step, path, complete, created_at) VALUES (?, ?, ?, 1, ?)",
                (self.id, step, str(path), time.time()),
            )
        return str(path)

    def fail(self, message: str, traceback: str | None) -> None:
        self.status("failed", error=message)
        with self.conn:
            self.conn.execute(
                "INSERT INTO events(run_id, time, type, payload) VALUES (?, ?, 'error', ?)",
                (
                    self.id,
                    time.time(),
                    json.dumps({"message": message, "kind": "bug", "traceback": traceback}),
                ),
            )


def rubric_command(args: argparse.Namespace) -> int:
    if not Path(args.rubric).is_file():
        print(f"error: rubric file {args.rubric} does not exist", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    log(f"[fake] rubric {args.rubric_command} {args.rubric} on {len(rows)} rows in {os.getcwd()}")
    if args.rubric_command == "test":
        results = []
        for i, row in enumerate(rows):
            score = 1.0 if "<answer>" in str(row.get("completion")) else 0.0
            results.append(SampleScores(i, score, {"fake_has_answer": score}, {}))
        OUT.write(rubric_test_json(results) + "\n")
    else:
        cheats = [
            CheatScore("empty", 0.0, False, ""),
            CheatScore("format_only", 1.0, True, "<answer></answer>"),
        ]
        OUT.write(rubric_redteam_json(RedteamOutput(reference_mean=1.0, cheats=cheats)) + "\n")
    OUT.flush()
    return 0


def main() -> int:
    global OUT
    # Like engine/control.py: keep the real stdout for events, send everything else to stderr.
    OUT = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixture", default=os.environ.get("FAKE_ENGINE_FIXTURE"))
    parser.add_argument(
        "--interval", type=float, default=float(os.environ.get("FAKE_ENGINE_INTERVAL", "0.03"))
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run")
    run_p.add_argument("config")
    run_p.add_argument("--db", required=True)
    run_p.add_argument("--name")
    resume_p = sub.add_parser("resume")
    resume_p.add_argument("run_id", type=int)
    resume_p.add_argument("--db", required=True)
    rubric_p = sub.add_parser("rubric").add_subparsers(dest="rubric_command", required=True)
    for name, option in (("test", "--samples"), ("redteam", "--dataset")):
        command_p = rubric_p.add_parser(name)
        command_p.add_argument("rubric")
        command_p.add_argument(option, dest="data", required=True)
        command_p.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "rubric":
        return rubric_command(args)

    controls = Controls()

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip():
                controls.apply(parse_command(line))
                log(f"[fake] command {line.strip()}")

    threading.Thread(target=read_commands, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: controls.apply("stop"))

    lines = [json.loads(line) for line in Path(args.fixture).read_text().splitlines() if line.strip()]
    recorded_max = next((e["max_steps"] for e in lines if e.get("type") == "run_started"), 8)
    if args.command == "run":
        cfg = load_run_config(args.config)
        name = args.name or cfg.name or "fake"
        run = Run(args.db, None, name, cfg.to_dict(), recorded_max)
        resumed_from = None
    else:
        run = Run(args.db, args.run_id, "", {}, recorded_max)
        resumed_from = run.step
        # like the engine: rows after the resumed step are dropped
        with run.conn:
            run.conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run.id, run.step))
    folder = Path(args.db).resolve().parent / "fake_checkpoints" / str(run.id)
    log(f"[fake] run {run.id} pid {os.getpid()} replaying {args.fixture}")

    failed = False
    for event in lines:
        # ---- directives -------------------------------------------------------------------------
        if event.get("_fake") == "crash":
            sys.stderr.write(event.get("stderr", ""))
            sys.stderr.flush()
            os._exit(int(event.get("exit_code", 1)))
        etype = event.get("type")
        step = int(event.get("step") or 0)
        if (
            resumed_from is not None
            and etype
            in ("metrics_written", "progress", "rollouts_written", "checkpoint_saved", "eval_written")
            and step <= resumed_from
        ):
            continue
        # ---- controls between steps (the engine checks at step boundaries) -----------------------
        if etype == "metrics_written":
            if controls.paused:
                run.status("paused")
                emit("status", run_id=run.id, status="paused", step=run.step)
                log(f"[run {run.id}] paused at step {run.step}")
                while controls.paused and not controls.stop:
                    controls.wake.wait(0.05)
                    controls.wake.clear()
                if not controls.stop:
                    run.status("running")
                    emit("status", run_id=run.id, status="running", step=run.step)
                    log(f"[run {run.id}] resumed at step {run.step}")
            if controls.checkpoint:
                controls.checkpoint = False
                emit("checkpoint_saved", run_id=run.id, step=run.step, path=run.checkpoint(run.step, folder))
            if controls.stop:
                path = run.checkpoint(run.step, folder)
                emit("checkpoint_saved", run_id=run.id, step=run.step, path=path)
                run.status("stopped")
                emit("status", run_id=run.id, status="stopped", step=run.step)
                emit("finished", run_id=run.id, status="stopped", step=run.step)
                log(f"[run {run.id}] stopped at step {run.step}")
                return 0
        time.sleep(args.interval)
        # ---- write what the event announces, then announce it -------------------------------------
        data = {k: v for k, v in event.items() if k not in ("v", "type", "time")}
        if "run_id" in data:
            data["run_id"] = run.id
        if etype == "run_started":
            data.update(
                name=run.conn.execute("SELECT name FROM runs WHERE id = ?", (run.id,)).fetchone()[0],
                resumed_from_step=resumed_from,
            )
        elif etype == "status":
            if data["status"] != "failed":  # fail() recorded it with the message
                run.status(str(data["status"]))
            data["step"] = run.step
        elif etype == "metrics_written":
            run.metrics(step)
            log(f"[run {run.id}] step {step}: reward {metric_values(step, run.max_steps)['reward']:.3f}")
        elif etype == "eval_written":
            data["reward"] = run.evaluation(step)
        elif etype == "checkpoint_saved":
            data["path"] = run.checkpoint(step, folder)
        elif etype == "error":
            run.fail(str(data.get("message")), data.get("traceback"))
            log(f"error: {data.get('message')}\n{data.get('traceback') or ''}")
        elif etype == "finished":
            data["step"] = run.step
        emit(etype, **data)
        failed = failed or etype == "error"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
