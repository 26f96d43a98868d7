"""`rl-studio-engine env check`: try an environment on its tasks before spending compute on training.

    rl-studio-engine env check ENV --tasks FILE.jsonl [--policy scripted FILE.jsonl | --policy model MODEL]
                               [--episodes N] [--max-turns N] [--tool-timeout S] [--temperature T]
                               [--max-completion-length N] [--json]

ENV is FILE.py:ClassName or builtin:NAME. The check loads the class in its worker, lists the tools with
their signatures (and whether TRL can build their JSON schemas: every parameter needs a type hint and a
line in the docstring's Args), resets every task, and with a policy plays each task and reports per task
and episode: the task text, reset errors, tool errors, invalid calls and the reward.

Policies: `scripted FILE.jsonl` plays each task's tool calls as written (engine/envs/episodes.py);
`model MODEL` lets a model play, exactly as an agent run's held-out evaluation does (the same tool loop
as TRL's): MODEL is a model folder or hub id, or a run config (.toml), whose model, sampling temperature,
max_completion_length and [environment] max_turns are then used unless given here.

Exit codes: 0 checked (problems are in the report), 2 bad input (the message says what and where).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from engine.data import DataError, json_lines
from engine.envs.episodes import PolicyError, run_scripted, scripted_turns
from engine.envs.proxy import EnvironmentFactory, EnvironmentLoadError, load_environment
from engine.envs.trajectory import Trajectory

EXIT_OK = 0
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add `env check` to the engine CLI's argparse subparsers."""
    env = subparsers.add_parser("env", help="Check an agent environment (tools, tasks, rewards).")
    commands = env.add_subparsers(dest="env_command", metavar="{check,play}", required=True)
    check = commands.add_parser(
        "check", help="Reset every task, list the tools, play a scripted policy, report errors and rewards."
    )
    check.add_argument("environment", help="FILE.py:ClassName or builtin:NAME (builtin:file_manager).")
    check.add_argument(
        "--tasks", required=True, help="JSONL dataset: one row per task, passed to reset(**row)."
    )
    check.add_argument(
        "--policy",
        nargs=2,
        metavar=("KIND", "FILE"),
        help="'scripted FILE.jsonl': tool calls per task (see engine/envs/episodes.py for the format); "
        "'model MODEL': a model folder, hub id or run config (.toml) plays the tasks with the tools.",
    )
    check.add_argument("--episodes", type=int, default=1, help="Episodes per task (1).")
    check.add_argument(
        "--max-turns",
        type=int,
        default=None,
        help="The most tool-calling rounds per episode (8, or the config's).",
    )
    check.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="--policy model: sampling temperature (1.0; 0 greedy).",
    )
    check.add_argument(
        "--max-completion-length",
        type=int,
        default=None,
        help="--policy model: the most tokens of an episode after the prompt, tool results included (512).",
    )
    check.add_argument("--tool-timeout", type=float, default=5.0, help="Seconds per tool call (5.0).")
    check.add_argument("--json", action="store_true", help="Print a JSON report instead of a table.")
    check.set_defaults(func=cmd_env_check, protocol=False)
    from engine.envs.play import add_parser as add_play  # `env play`: a person plays the agent

    add_play(commands)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def tool_report(factory: EnvironmentFactory) -> list[dict[str, Any]]:
    """Each tool's signature, docstring's first line, and what would stop TRL from building its schema."""
    from transformers.utils import get_json_schema  # TRL builds tool schemas with it

    probe = factory.proxy_class.__new__(factory.proxy_class)  # the class's functions, no worker
    out = []
    for name, info in factory.tools.items():
        problems = list(info.problems)
        if not problems:
            try:
                get_json_schema(getattr(probe, name))
            except Exception as exc:
                problems.append(f"TRL cannot build its tool schema: {exc}")
        out.append(
            {
                "name": name,
                "signature": info.text(),
                "doc": info.doc.splitlines()[0] if info.doc else "",
                "problems": problems,
            }
        )
    return out


def cmd_env_check(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        return _fail(f"--episodes must be at least 1, not {args.episodes}")
    if args.max_turns is not None and args.max_turns < 1:
        return _fail(f"--max-turns must be at least 1, not {args.max_turns}")
    try:
        tasks = [row for _, row in json_lines(args.tasks, DataError)]
        policy = _read_policy(args.policy, tasks) if args.policy and args.policy[0] != "model" else None
        factory = load_environment(args.environment, tool_timeout=args.tool_timeout)
    except (DataError, PolicyError, EnvironmentLoadError) as exc:
        return _fail(str(exc))
    with factory:
        if args.policy and args.policy[0] == "model":  # loaded last: the slow part, after the cheap checks
            try:
                model_policy = load_model_policy(args.policy[1], args)
            except PolicyError as exc:
                return _fail(str(exc))
            max_turns = args.max_turns or model_policy.max_turns or 8
            report = check_with_model(factory, tasks, model_policy, args.episodes, max_turns)
        else:
            report = check(factory, tasks, policy, args.episodes, args.max_turns or 8)
    report["environment"] = args.environment
    if args.json:
        print(json.dumps(report, ensure_ascii=False, default=str))
    else:
        print(_table(report))
    return EXIT_OK


def _read_policy(spec: list[str], tasks: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    kind, path = spec
    if kind != "scripted":
        raise PolicyError(f"--policy {kind}: the policies are: scripted FILE.jsonl, model MODEL")
    entries = [(number, row) for number, row in json_lines(path, PolicyError)]
    by_id = {row["task_id"]: (n, row) for n, row in entries if "task_id" in row}
    out: list[dict[str, Any] | None] = []
    for i, task in enumerate(tasks):
        found = by_id.get(task.get("task_id")) if "task_id" in task and by_id else None
        if found is None and not by_id and i < len(entries):
            found = entries[i]
        if found is None:
            out.append(None)
            continue
        number, entry = found
        where = f"{path}:{number}"
        entry = dict(entry, turns=scripted_turns(entry, where))
        if "final" in entry and not isinstance(entry["final"], str):
            raise PolicyError(f"{where}: 'final' must be a string (the model's closing message)")
        out.append(entry)
    return out


def check(
    factory: EnvironmentFactory,
    tasks: list[dict[str, Any]],
    policy: list[dict[str, Any] | None] | None,
    episodes: int,
    max_turns: int,
) -> dict[str, Any]:
    env = factory()
    results = []
    for i, row in enumerate(tasks):
        entry: dict[str, Any] = {"index": i, "task_id": row.get("task_id")}
        plan = policy[i] if policy is not None else None
        if plan is None:
            task = env.reset(**row)
            entry["reset_error"] = env._rl_reset_error
            entry["task"] = None if entry["reset_error"] else task
            entry["episodes"] = []
            if policy is not None:
                entry["note"] = "the scripted policy has no calls for this task"
        else:
            runs = [
                _episode_report(
                    run_scripted(factory, env, row, plan["turns"], max_turns, plan.get("final")).trajectory
                )
                for _ in range(episodes)
            ]
            entry["task"] = runs[-1]["trajectory"]["task"]
            entry["reset_error"] = runs[-1]["trajectory"]["reset_error"]
            entry["episodes"] = runs
        results.append(entry)
    return _report(factory, results)


def _episode_report(t: Trajectory) -> dict[str, Any]:
    return {
        "reward": t.reward,
        "reward_error": t.reward_error,
        "turns": t.num_turns,
        "calls": len(t.calls),
        "invalid_calls": sum(not c.valid for c in t.calls),
        "tool_errors": [f"{c.tool}: {c.error}" for c in t.calls if c.error],
        "environment_error": t.environment_error,
        "ended": t.ended,
        "trajectory": t.as_dict(),
    }


@dataclass
class ModelPolicy:
    """A model that plays the tasks, with how it samples."""

    name: str
    model: Any
    tokenizer: Any
    temperature: float
    max_completion_length: int
    max_turns: int | None = None


def load_model_policy(spec: str, args: argparse.Namespace) -> ModelPolicy:
    """The model of `--policy model SPEC`: a run config (.toml: its model, loaded as a run loads it, and its
    sampling settings) or a model folder / hub id (float32 on the CPU, or the first GPU)."""
    import torch

    from engine.contract.config import ConfigError, load_run_config

    temperature = args.temperature
    length = args.max_completion_length
    max_turns = None
    try:
        if spec.endswith(".toml"):
            from engine.modeling import load_model, load_tokenizer, plan_device

            cfg = load_run_config(spec)
            tokenizer = load_tokenizer(cfg)
            model = load_model(cfg, plan_device(cfg))
            temperature = cfg.training.temperature if temperature is None else temperature
            length = length or cfg.training.max_completion_length
            max_turns = cfg.environment.max_turns if cfg.environment else None
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(spec)
            model = AutoModelForCausalLM.from_pretrained(spec, dtype=torch.float32)
    except (ConfigError, OSError, ValueError) as exc:
        raise PolicyError(
            f"--policy model {spec}: could not load it ({exc}). Give a model folder (with config.json), "
            "a hub id, or a run config (.toml)."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise PolicyError(
            f"--policy model {spec}: the tokenizer has no chat template, so it cannot be given the tools"
        )
    if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
        model = model.to("cuda")
    return ModelPolicy(
        spec, model, tokenizer, 1.0 if temperature is None else temperature, length or 512, max_turns
    )


def check_with_model(
    factory: EnvironmentFactory,
    tasks: list[dict[str, Any]],
    policy: ModelPolicy,
    episodes: int,
    max_turns: int,
) -> dict[str, Any]:
    """Every task played `episodes` times by the model, in the contained environment, with the tool loop
    an agent run's evaluation uses; each episode is recorded as a trajectory."""
    from engine.envs.evaluation import play_episodes
    from engine.envs.training import episode_columns

    results: list[dict[str, Any]] = [
        {"index": i, "task_id": row.get("task_id"), "episodes": []} for i, row in enumerate(tasks)
    ]
    playable = [i for i, row in enumerate(tasks) if isinstance(row.get("prompt"), list)]
    for i in set(range(len(tasks))) - set(playable):
        results[i].update(
            task=None, reset_error=None, note="no 'prompt' list of chat messages to give the model"
        )
    rows = [tasks[i] for i in playable]
    for episode in range(episodes):
        envs = [factory() for _ in rows]
        completions = play_episodes(
            policy.model,
            policy.tokenizer,
            envs,
            rows,
            max_turns=max_turns,
            max_completion_length=policy.max_completion_length,
            temperature=policy.temperature,
            seed=episode,
        )
        trajectories = episode_columns(envs, completions, max_turns)["trajectories"]
        for i, trajectory in zip(playable, trajectories, strict=True):
            results[i]["episodes"].append(_episode_report(trajectory))
            results[i]["task"], results[i]["reset_error"] = trajectory.task, trajectory.reset_error
    report = _report(factory, results)
    report["policy"] = {
        "kind": "model",
        "model": policy.name,
        "temperature": policy.temperature,
        "max_completion_length": policy.max_completion_length,
        "max_turns": max_turns,
    }
    return report


def _report(factory: EnvironmentFactory, results: list[dict[str, Any]]) -> dict[str, Any]:
    rewards = [e["reward"] for r in results for e in r["episodes"] if e["reward"] is not None]
    return {
        "class": factory.class_name,
        "tools": tool_report(factory),
        "has_reward": factory.has_reward,
        "tasks": results,
        "summary": {
            "tasks": len(results),
            "reset_errors": sum(r["reset_error"] is not None for r in results),
            "episodes": sum(len(r["episodes"]) for r in results),
            "mean_reward": sum(rewards) / len(rewards) if rewards else None,
            "tool_errors": sum(len(e["tool_errors"]) for r in results for e in r["episodes"]),
            "invalid_calls": sum(e["invalid_calls"] for r in results for e in r["episodes"]),
        },
    }


def _table(report: dict[str, Any]) -> str:
    lines = [f"environment {report['environment']} ({report['class']})", "", "tools:"]
    for tool in report["tools"]:
        lines.append(f"  {tool['signature']}  {tool['doc']}")
        lines.extend(f"    PROBLEM: {p}" for p in tool["problems"])
    if not report["has_reward"]:
        lines.append("  (no get_reward: score episodes with the rubric's other criteria)")
    lines += ["", f"{'#':>4}  {'task':<16}{'reward':>8}{'turns':>7}{'calls':>7}{'invalid':>9}  errors"]
    for r in report["tasks"]:
        task_id = str(r["task_id"] if r["task_id"] is not None else "")[:15]
        if not r["episodes"]:
            lines.append(
                f"{r['index']:>4}  {task_id:<16}{'-':>8}{'-':>7}{'-':>7}{'-':>9}  {r['reset_error'] or ''}"
            )
        for e in r["episodes"]:
            reward = "ERROR" if e["reward"] is None and e["reward_error"] else _num(e["reward"])
            errors = "; ".join(x for x in [r["reset_error"], e["reward_error"], *e["tool_errors"]] if x)
            lines.append(
                f"{r['index']:>4}  {task_id:<16}{reward:>8}{e['turns']:>7}{e['calls']:>7}"
                f"{e['invalid_calls']:>9}  {errors[:200]}"
            )
    s = report["summary"]
    lines += [
        "",
        f"{s['tasks']} tasks, {s['reset_errors']} reset errors, {s['episodes']} episodes, mean reward "
        f"{_num(s['mean_reward'])}, {s['tool_errors']} tool errors, {s['invalid_calls']} invalid calls",
    ]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
