"""`rl-studio-engine env play`: JSON lines in, typed messages out, the environment contained as in
training (one subprocess of the real CLI on the built-in file manager)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import engine_cmd, engine_env

from engine.contract.env_play import (
    PlayError,
    PlayObservation,
    PlayReady,
    PlayReward,
    call_request,
    command_request,
    parse_message,
)
from engine.contract.trajectory import call_outcome, read_trajectory
from engine.envs.file_manager import solution

TASKS = Path(__file__).resolve().parents[2] / "engine" / "envs" / "data" / "file_manager_eval.jsonl"


def play(lines: list[str], *args: str) -> tuple[int, list[object], str]:
    done = subprocess.run(
        engine_cmd("env", "play", "builtin:file_manager", "--tasks", str(TASKS), *args),
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=120,
    )
    return (
        done.returncode,
        [parse_message(line) for line in done.stdout.splitlines() if line.strip()],
        done.stderr,
    )


def test_a_played_episode_is_observed_and_rewarded() -> None:
    task = json.loads(TASKS.read_text().splitlines()[2])
    calls = [call_request(c["name"], c["arguments"]) for c in solution(task)]
    lines = [
        call_request("move_file", {"source": 1}),  # does not fit the signature
        call_request("shred", {}),  # no such tool
        call_request("list_files", '{"folder": '),  # arguments that do not parse
        call_request("read_file", {"path": "nowhere"}),  # the tool raises
        "this is not json",
        *calls,
        command_request("reward"),
        command_request("reset", task=5),
        command_request("reward"),
        command_request("quit"),
        call_request("list_files", {"folder": ""}),  # after quit: never read
    ]
    code, messages, stderr = play(lines, "--task", "2")
    assert code == 0, stderr
    ready = messages[0]
    assert isinstance(ready, PlayReady) and ready.task_index == 2 and ready.task_id == task["task_id"]
    assert ready.tasks == len(TASKS.read_text().splitlines()) and ready.has_reward
    assert [t.name for t in ready.tools] == ["list_files", "move_file", "read_file", "write_file"]
    move = next(t for t in ready.tools if t.name == "move_file")
    assert move.parameters == ["source", "destination"] and "Args:" in move.doc and not move.problems
    assert ready.prompt == task["prompt"][0]["content"]

    observed = [m for m in messages if isinstance(m, PlayObservation)]
    assert [o.turn for o in observed] == list(range(1, 5 + len(calls)))
    unfit, unknown, garbled, raised = observed[:4]
    assert not unfit.valid and "destination" in (unfit.error or "")
    assert not unknown.valid and "unknown tool 'shred'" in (unknown.error or "")
    assert not garbled.valid and "JSON object" in (garbled.error or "")
    assert raised.valid and "FileNotFoundError" in (raised.error or "") and raised.result is None
    assert all(o.valid and o.error is None for o in observed[4:])
    errors = [m for m in messages if isinstance(m, PlayError)]
    assert len(errors) == 1 and "one JSON object per line" in errors[0].message

    solved, fresh = [m for m in messages if isinstance(m, PlayReward)]
    assert solved.reward == 1.0 and solved.success is True and solved.reward_error is None
    trajectory = read_trajectory(json.dumps(solved.trajectory))
    assert trajectory is not None and trajectory.num_turns == 4 + len(calls)
    assert [call_outcome(c) for c in trajectory.calls[:4]] == ["invalid", "invalid", "invalid", "tool_error"]
    assert fresh.reward == 0.0 and fresh.success is False  # task 5, reset and left untouched
    assert isinstance(messages[-2], PlayReady) and messages[-2].task_index == 5
    assert isinstance(messages[-1], PlayReward)


def test_bad_input_stops_before_playing(tmp_path: Path) -> None:
    code, messages, stderr = play([], "--task", "999")
    assert code == 2 and not messages and "--task 999" in stderr and "tasks" in stderr
    missing = subprocess.run(
        engine_cmd("env", "play", "nowhere.py:Env", "--tasks", str(TASKS)),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=120,
    )
    assert missing.returncode == 2 and "nowhere.py" in missing.stderr and "does not exist" in missing.stderr
