"""The built-in file-manager environment: its tools, its binary reward on hand-made end states, its
committed task sets, and `env check` on them (the real CLI, real worker processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.envs import file_manager as fm
from engine.envs.file_manager import FileManagerEnv

DATA = Path(fm.__file__).parent / "data"
ROW = {
    "files": [
        {"path": "inbox/a.csv", "content": "A"},
        {"path": "inbox/b.csv", "content": "B"},
        {"path": "inbox/notes.txt", "content": "N"},
        {"path": "inbox/old/c.csv", "content": "C"},
        {"path": "archive/keep.md", "content": "K"},
    ],
    "source": "inbox",
    "destination": "archive",
    "pattern": "*.csv",
}


def solved_env() -> FileManagerEnv:
    env = FileManagerEnv()
    env.reset(**ROW, prompt=[{"role": "user", "content": "..."}])
    env.move_file("inbox/a.csv", "archive/a.csv")
    env.move_file("/inbox/b.csv", "archive")  # into a folder, keeping the name
    env.write_file("archive/manifest.json", '["b.csv", "a.csv"]')  # any order
    return env


def test_a_correct_end_state_earns_1():
    assert solved_env().get_reward() == 1.0


def test_tools():
    env = FileManagerEnv()
    env.reset(**ROW)
    assert env.list_files("inbox") == "a.csv\nb.csv\nnotes.txt\nold/"
    assert env.list_files("/") == "archive/\ninbox/"
    assert env.list_files("inbox", pattern="*.csv") == "a.csv\nb.csv"  # a glob on the names
    assert env.list_files("inbox", pattern="*.pdf") == "(no entry matches *.pdf)"
    assert env.read_file("./inbox/a.csv") == "A"
    with pytest.raises(FileNotFoundError):
        env.list_files("nowhere")
    with pytest.raises(FileExistsError):
        env.move_file("inbox/a.csv", "inbox/b.csv")
    with pytest.raises(ValueError, match=r"'\.\.'"):
        env.read_file("../etc/passwd")


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda e: e.move_file("archive/a.csv", "inbox/a.csv"), id="a matching file not moved"),
        pytest.param(lambda e: e.move_file("inbox/notes.txt", "archive"), id="an extra file moved"),
        pytest.param(lambda e: e.move_file("inbox/old/c.csv", "archive"), id="a subfolder's match moved"),
        pytest.param(lambda e: e.files.pop("archive/manifest.json"), id="manifest missing"),
        pytest.param(lambda e: e.write_file("archive/manifest.json", '["a.csv"]'), id="manifest misses one"),
        pytest.param(
            lambda e: e.write_file("archive/manifest.json", '["a.csv", "b.csv", "notes.txt"]'),
            id="manifest has an extra entry",
        ),
        pytest.param(
            lambda e: e.write_file("archive/manifest.json", '["a.csv", "b.csv", "b.csv"]'),
            id="manifest repeats an entry",
        ),
        pytest.param(
            lambda e: e.write_file("archive/manifest.json", '["inbox/a.csv", "inbox/b.csv"]'),
            id="manifest lists paths",
        ),
        pytest.param(lambda e: e.write_file("archive/manifest.json", "a.csv, b.csv"), id="manifest not JSON"),
        pytest.param(lambda e: e.files.pop("archive/keep.md"), id="a file deleted"),
        pytest.param(lambda e: e.write_file("archive/keep.md", "changed"), id="a file overwritten"),
        pytest.param(lambda e: e.write_file("archive/a.csv", "changed"), id="a moved file changed"),
        pytest.param(lambda e: e.write_file("scratch.txt", "x"), id="a scratch file left"),
    ],
)
def test_wrong_end_states_earn_0(spoil):
    env = solved_env()
    spoil(env)
    assert env.get_reward() == 0.0


def test_only_the_end_state_counts_not_the_path_to_it():
    env = solved_env()
    env.files.pop("archive/b.csv")
    env.write_file("archive/b.csv", "B")  # the same file, rewritten: the end state is still right
    env.write_file("archive/manifest.json", '[\n  "a.csv",\n  "b.csv"\n]')  # any JSON layout
    assert env.get_reward() == 1.0


def test_task_sets_are_committed_and_reproducible():
    train, held_out = fm.make_tasks()
    tiers = [r["tier"] for r in train], [r["tier"] for r in held_out]
    assert [(t.count("easy"), t.count("hard")) for t in tiers] == [(54, 18), (12, 12)]
    committed_train = [json.loads(x) for x in (DATA / "file_manager_train.jsonl").read_text().splitlines()]
    committed_eval = [json.loads(x) for x in (DATA / "file_manager_eval.jsonl").read_text().splitlines()]
    assert committed_train == train and committed_eval == held_out
    assert not {r["task_id"] for r in train} & {r["task_id"] for r in held_out}
    hard = [r for r in held_out if r["tier"] == "hard"]
    easy = [r for r in held_out if r["tier"] == "easy"]
    assert min(len(r["files"]) for r in hard) > max(len(r["files"]) for r in easy)
    assert min(len(r["answer"]) for r in hard) >= 3
    for row in train + held_out:  # every task is solvable, and doing nothing is not rewarded
        env = FileManagerEnv()
        env.reset(**row)
        assert env.get_reward() == 0.0
        for call in fm.solution(row):
            getattr(env, call["name"])(**call["arguments"])
        assert env.get_reward() == 1.0, row["task_id"]


def env_check(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`rl-studio-engine env check ARGS...` in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "env", "check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_env_check_cli_with_a_scripted_policy(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    rows = fm.make_tasks()[1][-3:]  # hard tasks
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    policy = tmp_path / "policy.jsonl"
    lines = []
    for i, row in enumerate(rows):
        calls = fm.solution(row)
        if i == 1:
            calls.insert(1, {"name": "list_files", "arguments": {"folder": 7}})  # wrong type
            calls.insert(1, {"name": "shred", "arguments": {}})  # unknown tool
        if i == 2:
            calls = calls[:-1]  # no manifest
        lines.append(json.dumps({"task_id": row["task_id"], "calls": calls}))
    policy.write_text("\n".join(lines) + "\n")
    out = env_check(
        "builtin:file_manager",
        "--tasks",
        str(tasks),
        "--policy",
        "scripted",
        str(policy),
        "--max-turns",
        "20",
        "--json",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert [t["name"] for t in report["tools"]] == ["list_files", "move_file", "read_file", "write_file"]
    assert all(not t["problems"] for t in report["tools"])
    episodes = [t["episodes"][0] for t in report["tasks"]]
    assert [e["reward"] for e in episodes] == [1.0, 1.0, 0.0]
    assert [e["invalid_calls"] for e in episodes] == [0, 2, 0]
    assert report["summary"]["mean_reward"] == pytest.approx(2 / 3)


def test_env_check_reports_bad_input(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"files": []}\n')
    out = env_check("envs/missing.py:Env", "--tasks", str(tasks))
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_env_check_cli_with_a_model_policy(tmp_path):
    """`--policy model CONFIG`: the config's model plays every task with the tools, each episode recorded."""
    from engine.contract.paths import AGENT_DEMO_CONFIG

    tasks = tmp_path / "tasks.jsonl"
    rows = fm.make_tasks()[1][:2]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in [*rows, {"files": []}]))
    out = env_check(
        "builtin:file_manager",
        "--tasks",
        str(tasks),
        "--policy",
        "model",
        str(AGENT_DEMO_CONFIG),
        "--episodes",
        "2",
        "--json",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["policy"] == {
        "kind": "model",
        "model": str(AGENT_DEMO_CONFIG),
        "temperature": 1.0,  # the config's (its other two values differ from the defaults)
        "max_completion_length": 448,
        "max_turns": 3,
    }
    played, unplayable = report["tasks"][:2], report["tasks"][2]
    assert "no 'prompt'" in unplayable["note"] and unplayable["episodes"] == []
    tools = {"list_files", "move_file", "read_file", "write_file", "?"}
    for task in played:
        assert len(task["episodes"]) == 2
        for episode in task["episodes"]:
            turns = episode["trajectory"]["turns"]
            assert 1 <= len(turns) <= 3 + 1 and episode["turns"] == len(turns)
            assert episode["reward"] in (0.0, 1.0) and episode["ended"] in (
                "answered",
                "max_turns",
                "length",
                "error",
            )
            calls = [c for turn in turns for c in turn["calls"]]
            assert episode["calls"] == len(calls) and all(c["tool"] in tools or not c["valid"] for c in calls)
    assert report["summary"]["episodes"] == 4


def test_env_check_names_a_model_that_does_not_load(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(fm.make_tasks()[1][0]) + "\n")
    out = env_check(
        "builtin:file_manager", "--tasks", str(tasks), "--policy", "model", str(tmp_path / "no-model")
    )
    assert out.returncode == 2 and "--policy model" in out.stderr and "Traceback" not in out.stderr
