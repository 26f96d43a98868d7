"""rl-studio-engine alerts: list a run's training-time alerts (engine/monitor.py), or acknowledge them.

rl-studio-engine alerts RUN --db WS [--json]
rl-studio-engine alerts ack RUN --db WS [--id ID ...]     (every unacknowledged alert without --id)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _cmd_alerts(args: argparse.Namespace) -> int:
    from engine.alerts_store import acknowledge, list_alerts
    from engine.cli import _workspace_for_reading
    from engine.store import StoreError

    words = list(args.target)
    ack = words[0] == "ack"
    if ack:
        words = words[1:]
    if len(words) != 1 or not words[0].isdigit():
        print(
            "error: name one run by its id: `rl-studio-engine alerts RUN --db WS` lists its alerts, "
            "`rl-studio-engine alerts ack RUN --db WS [--id ID ...]` acknowledges them.",
            file=sys.stderr,
        )
        return 2
    run_id = int(words[0])
    if args.ids and not ack:
        print("error: --id only goes with `alerts ack`.", file=sys.stderr)
        return 2
    workspace = _workspace_for_reading(args.db)
    if workspace is None:
        return 2
    try:
        workspace.run(run_id)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ack:
        known = {a["id"] for a in list_alerts(workspace, run_id)}
        unknown = [i for i in args.ids or [] if i not in known]
        if unknown:
            print(
                f"error: run {run_id} has no alert {', '.join(map(str, unknown))}; "
                f"`rl-studio-engine alerts {run_id} --db {args.db}` lists its alerts.",
                file=sys.stderr,
            )
            return 2
        changed = acknowledge(workspace, run_id, args.ids or None)
        if args.json:
            print(json.dumps({"run_id": run_id, "acknowledged": changed}))
        else:
            print(f"acknowledged {changed} alert{'s' if changed != 1 else ''} of run {run_id}")
        return 0
    alerts = list_alerts(workspace, run_id)
    if args.json:
        print(json.dumps(alerts))
        return 0
    if not alerts:
        print(f"run {run_id} raised no alerts")
        return 0
    print(f"{'id':>4}  {'step':>6}  {'kind':<20}{'severity':<10}{'ack':<5}message")
    for a in alerts:
        print(
            f"{a['id']:>4}  {a['step']:>6}  {a['kind']:<20}{a['severity']:<10}{'yes' if a['acknowledged'] else '':<5}"
            f"{a['message']}"
        )
        examples = a["evidence"].get("examples") or []
        if examples:
            print(f"{'':>14}example rollouts: {', '.join(map(str, examples))}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "alerts",
        help="list a run's training-time alerts (reward hacking tripwires), or `alerts ack RUN` them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", nargs="+", metavar="[ack] RUN", help="a run id, or `ack` and a run id")
    p.add_argument("--db", required=True, help="workspace .sqlite file")
    p.add_argument(
        "--id", dest="ids", type=int, action="append", help="with ack: only this alert (repeatable)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_alerts, protocol=False)
