"""Agent rollouts in the workspace: migration 4 converts an existing workspace, an agent rollout keeps its
trajectory (searchable by its tool calls and results), and `export --what trajectories` gives OpenAI-format
messages."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from conftest import engine_cmd, engine_env

from engine.contract.schema import MIGRATIONS, SCHEMA_VERSION, schema_version
from engine.envs.trajectory import ToolCall, Trajectory, Turn, build_trajectory, finish
from engine.store import GroupRecord, RolloutRecord, Workspace, with_trajectory

PROMPT = [{"role": "user", "content": "Move the csv files from inbox to archive."}]


def agent_trajectory() -> Trajectory:
    """Two turns: a listing, then a move that works and one whose tool raised; then the answer."""
    messages: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "list_files", "arguments": {"folder": "inbox"}}}
            ],
        },
        {"role": "tool", "name": "list_files", "content": "a.csv\nb.txt"},
        {
            "role": "assistant",
            "content": "Moving.",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "move_file", "arguments": {"source": "inbox/a.csv"}},
                },
                {"type": "function", "function": {"name": "delete_all", "arguments": {}}},
            ],
        },
        {"role": "tool", "name": "move_file", "content": "moved inbox/a.csv"},
        {"role": "tool", "name": "delete_all", "content": "{'error': 'Tool delete_all not found.'}"},
        {"role": "assistant", "content": "Done."},
    ]
    records = [
        ToolCall("list_files", '{"folder": "inbox"}', result="a.csv\nb.txt"),
        ToolCall("move_file", '{"source": "inbox/a.csv"}', result="moved inbox/a.csv"),
    ]
    trajectory = build_trajectory(messages, records, {"list_files", "move_file"}, task=" (3 files)")
    trajectory.reward = 1.0
    for turn, tokens in zip(trajectory.turns, (12, 30, 3), strict=True):
        turn.tokens = tokens
    return finish(trajectory, max_turns=4, messages=messages)


def version_3_workspace(path: Path) -> None:
    """A workspace as RL Studio wrote it before agent rollouts: a run with one single-turn rollout."""
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '3')")
    conn.execute(
        "INSERT INTO runs(id, name, algorithm, config, created_at) VALUES (1, 'old', 'grpo', '{}', 0)"
    )
    conn.execute("INSERT INTO groups(id, run_id, step, prompt) VALUES (1, 1, 1, '2+2=')")
    conn.execute(
        "INSERT INTO rollouts(id, run_id, step, group_id, completion, reward, scores_json)"
        " VALUES (1, 1, 1, 1, '<answer>4</answer>', 1.0, '{\"correct\":1.0}')"
    )
    conn.execute("INSERT INTO rollouts_fts(rowid, completion) VALUES (1, '<answer>4</answer>')")
    conn.commit()
    conn.close()


def test_migration_4_converts_a_workspace_and_agent_rollouts_are_recorded(workspace_path: Path) -> None:
    version_3_workspace(workspace_path)
    ws = Workspace(workspace_path)
    assert SCHEMA_VERSION >= 4 and schema_version(ws.conn) == SCHEMA_VERSION
    old = ws.conn.execute(
        "SELECT completion, reward, trajectory, turns, ended FROM rollouts WHERE id = 1"
    ).fetchone()
    assert tuple(old) == ("<answer>4</answer>", 1.0, None, None, None)
    assert ws.conn.execute("SELECT rowid FROM rollouts_fts WHERE rollouts_fts MATCH 'answer'").fetchall() == [
        (1,)
    ]

    # a step of an agent run (two rollouts) beside a single-turn group, written in one call
    trajectory = agent_trajectory()
    agent = [
        with_trajectory(
            RolloutRecord(
                "Done.", reward=r, advantage=0.0, completion_tokens=99, truncated=False, scores={"success": r}
            ),
            trajectory,
            PROMPT,
        )
        for r in (1.0, 0.0)
    ]
    plain = [RolloutRecord("<answer>5</answer>", 0.0, 0.0, 4, False, scores={"correct": 0.0})]
    ws.write_rollouts(1, 2, [GroupRecord("agent", 3, {}, agent), GroupRecord("2+3=", 4, {}, plain)])
    rows = ws.conn.execute(
        "SELECT id, turns, ended, completion_tokens, trajectory FROM rollouts ORDER BY id"
    ).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (1, None, None, None),
        (2, 3, "answered", 45),  # the model's tokens over its three turns, not the tool results'
        (3, 3, "answered", 45),
        (4, None, None, 4),
    ]
    assert rows[3][4] is None
    stored = json.loads(rows[1][4])
    assert stored["prompt"] == PROMPT and stored["reward"] == 1.0 and stored["ended"] == "answered"
    calls = [c for t in stored["turns"] for c in t["calls"]]
    assert [(c["tool"], c["valid"], c["error"]) for c in calls] == [
        ("list_files", True, None),
        ("move_file", True, None),
        ("delete_all", False, "unknown tool 'delete_all' (tools: list_files, move_file)"),
    ]
    assert [t["tokens"] for t in stored["turns"]] == [12, 30, 3]
    # full-text search reaches the tool calls and their results
    for word in ("list_files", "moved", "delete_all"):
        hits = ws.conn.execute(
            "SELECT rowid FROM rollouts_fts WHERE rollouts_fts MATCH ?", (word,)
        ).fetchall()
        assert hits == [(2,), (3,)], word
    ws.truncate_after(1, 1)  # forgetting the step removes the agent rows from the index too
    assert (
        ws.conn.execute("SELECT COUNT(*) FROM rollouts_fts WHERE rollouts_fts MATCH 'moved'").fetchone()[0]
        == 0
    )


def test_export_trajectories_gives_openai_chat_messages(workspace_path: Path) -> None:
    ws = Workspace(workspace_path)
    run_id = ws.create_run("agent", "grpo", {"algorithm": "grpo"}, max_steps=1)
    record = with_trajectory(
        RolloutRecord("", 1.0, 0.5, 0, False, scores={"success": 1.0}), agent_trajectory(), PROMPT
    )
    ws.write_rollouts(run_id, 1, [GroupRecord("agent", 7, {"tier": "easy"}, [record])])
    ws.close()

    out = subprocess.run(
        engine_cmd("export", str(run_id), "--db", str(workspace_path), "--what", "trajectories"),
        capture_output=True,
        text=True,
        env=engine_env(),
        check=True,
    ).stdout
    lines = out.splitlines()
    assert len(lines) == 1
    exported = json.loads(lines[0])
    assert exported["run_id"] == run_id and exported["step"] == 1 and exported["prompt_index"] == 7
    assert exported["reward"] == 1.0 and exported["scores"] == {"success": 1.0}
    assert exported["turns"] == 3 and exported["ended"] == "answered"
    messages = exported["messages"]
    # the prompt, with the task reset returned appended as TRL appends it
    assert messages[0] == {"role": "user", "content": PROMPT[0]["content"] + " (3 files)"}
    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    first, second = messages[1], messages[3]
    assert first["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "list_files", "arguments": '{"folder": "inbox"}'},
        }
    ]
    assert [c["function"]["name"] for c in second["tool_calls"]] == ["move_file", "delete_all"]
    replies = [m for m in messages if m["role"] == "tool"]
    asked = [c["id"] for m in messages if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert [m["tool_call_id"] for m in replies] == asked
    assert replies[0]["content"] == "a.csv\nb.txt" and replies[1]["content"] == "moved inbox/a.csv"
    assert replies[2]["content"].startswith("error: unknown tool 'delete_all'")
    assert messages[-1] == {"role": "assistant", "content": "Done."}

    single = subprocess.run(
        engine_cmd(
            "export", str(run_id), "--db", str(workspace_path), "--what", "trajectories", "--format", "csv"
        ),
        capture_output=True,
        text=True,
        env=engine_env(),
    )
    assert single.returncode == 2 and "--format jsonl" in single.stderr


def test_how_an_episode_ended() -> None:
    call = {"type": "function", "function": {"name": "list_files", "arguments": {"folder": ""}}}
    asked = [{"role": "assistant", "content": "", "tool_calls": [call]}]
    still_calling = build_trajectory(asked, [], {"list_files"})
    finish(still_calling, max_turns=0, messages=asked)
    assert still_calling.ended == "max_turns"
    assert still_calling.calls[0].valid  # well formed: the loop had no round left to run it
    cut = finish(build_trajectory(asked, [], {"list_files"}), max_turns=3, messages=asked)
    assert cut.ended == "length"
    lost = Trajectory(turns=[Turn("")], environment_error="the environment was restarted")
    assert finish(lost, 3, [{"role": "assistant", "content": ""}]).ended == "error"
