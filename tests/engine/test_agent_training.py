"""An agent run end to end on the agent demo model, with an environment written only against TRL's
`environment_factory` convention (a plain class: reset(**kwargs), typed tools with docstrings, get_reward),
not in this repository's style: two GRPO steps, the trajectories recorded, the agent metrics, the
held-out evaluation played with the tools, and a Python criterion reading the episode columns."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import engine_cmd, engine_env

from engine.contract.paths import DEMO_DIR
from engine.contract.token_stats import unpack
from engine.envs.trajectory import ENDINGS

AGENT_DIR = DEMO_DIR.parent / "demo_agent"
TASKS = DEMO_DIR.parent.parent / "envs" / "data"

requires_agent_demo = pytest.mark.skipif(
    not (AGENT_DIR / "model" / "model.safetensors").is_file(),
    reason="the agent demo model is missing: run python -m engine.assets.build_demo --agent",
)

SHELF = '''
import fnmatch


class Shelf:
    """Files on a shelf."""

    def __init__(self):
        self.items = {}
        self.goal = ("", "", "")
        self.moves = 0

    def reset(self, **kwargs):
        self.items = {f["path"]: f["content"] for f in kwargs.get("files") or []}
        self.goal = (kwargs.get("source"), kwargs.get("destination"), kwargs.get("pattern"))
        self.moves = 0

    def list_files(self, folder: str) -> str:
        """List what is in a folder.

        Args:
            folder: The folder to look in.
        """
        names = sorted({p[len(folder) + 1 :].split("/")[0] for p in self.items if p.startswith(folder + "/")})
        if not names:
            raise ValueError(f"shelf has nothing in {folder}")
        return "shelf holds " + "\\n".join(names)

    def move_file(self, source: str, destination: str) -> str:
        """Move a file.

        Args:
            source: Where the file is.
            destination: Where it goes.
        """
        self.items[destination] = self.items.pop(source)
        self.moves += 1
        return f"shelf moved {source}"

    def write_file(self, path: str, content: str) -> str:
        """Write a file.

        Args:
            path: The file to write.
            content: Its text.
        """
        self.items[path] = content
        return "shelf wrote it"

    def get_reward(self) -> float:
        source, _, pattern = self.goal
        left = [p for p in self.items if p.rpartition("/")[0] == source and fnmatch.fnmatch(p.rpartition("/")[2], pattern)]
        return 1.0 if self.moves and not left else 0.0
'''

REWARDS = '''
def moves(completions, trajectories, environments, **kwargs):
    """How many files the episode moved, read from the environment's end state."""
    assert len(trajectories) == len(environments) == len(completions)
    return [float(env.moves) for env in environments]
'''

RUBRIC = """
name = "shelf"
[[criteria]]
name = "success"
kind = "env_reward"
[[criteria]]
name = "well_formed"
kind = "valid_tool_calls"
weight = 0.1
[[criteria]]
name = "moves"
kind = "python"
source = "rewards.py:moves"
weight = 0.0
"""


@requires_agent_demo
def test_a_trl_style_environment_trains_and_its_trajectories_are_recorded(tmp_path: Path) -> None:
    (tmp_path / "shelf.py").write_text(SHELF)
    (tmp_path / "rewards.py").write_text(REWARDS)
    (tmp_path / "rubric.toml").write_text(RUBRIC)
    held_out = (TASKS / "file_manager_eval.jsonl").read_text().splitlines()
    (tmp_path / "eval.jsonl").write_text(
        "\n".join([*held_out[:2], *held_out[12:13]]) + "\n"
    )  # 2 easy, 1 hard
    (tmp_path / "run.toml").write_text(
        f"""
algorithm = "grpo"
[model]
path = "{AGENT_DIR / "model"}"
[data]
train = "{TASKS / "file_manager_train.jsonl"}"
eval = "eval.jsonl"
[rubric]
path = "rubric.toml"
[environment]
path = "shelf.py:Shelf"
max_turns = 3
[eval]
eval_samples = 2
[lora]
r = 8
alpha = 16
[training]
max_steps = 2
num_generations = 2
prompts_per_step = 2
max_completion_length = 256
learning_rate = 1e-3
checkpoint_every = 0
device = "cpu"
seed = 3
"""
    )
    db = tmp_path / "ws.sqlite"
    done = subprocess.run(
        engine_cmd("run", str(tmp_path / "run.toml"), "--db", str(db)),
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT step, completion, completion_tokens, trajectory, turns, ended, scores_json FROM rollouts ORDER BY id"
    ).fetchall()
    blobs = conn.execute(
        "SELECT t.data FROM token_stats t JOIN rollouts r ON r.id = t.rollout_id ORDER BY r.id"
    )
    token_views = [unpack(blob) for (blob,) in blobs]
    assert len(token_views) == len(rows)  # token-level evidence of every episode
    assert [r[0] for r in rows] == [1] * 4 + [2] * 4
    calls = []
    for (_step, completion, tokens, trajectory_json, turns, ended, scores_json), view in zip(
        rows, token_views, strict=True
    ):
        trajectory = json.loads(trajectory_json)
        assert turns == len(trajectory["turns"]) >= 1 and ended in ENDINGS and ended == trajectory["ended"]
        counted = [t["tokens"] for t in trajectory["turns"]]
        assert all(isinstance(n, int) and n > 0 for n in counted) and sum(counted) == tokens
        assert trajectory["prompt"][0]["role"] == "user"
        assert trajectory["reward"] in (0.0, 1.0)  # Shelf.get_reward, run in the environment's process
        scores = json.loads(scores_json)
        assert scores["success"] == trajectory["reward"]
        assert scores["moves"] is not None  # the Python criterion read the environment's end state
        calls += [c for t in trajectory["turns"] for c in t["calls"]]
        assert completion.startswith("[turn 1]")
        # the model's tokens carry their log-prob; the tool results' (not sampled, masked out of the loss) NaN
        sampled = [not math.isnan(v) for v in view.stats["logprob"]]
        assert sum(sampled) == tokens and all(v <= 0 for v in view.stats["logprob"] if not math.isnan(v))
        assert len(view) >= tokens
    assert any(len(view) > tokens for view, (_, _, tokens, *_) in zip(token_views, rows, strict=True))
    # the model called the environment's tools, and the environment's own code answered
    ran = [c for c in calls if c["valid"] and c["tool"] in ("list_files", "move_file", "write_file")]
    assert ran, calls
    assert any(
        (c["result"] or "").startswith("shelf")
        or (c["error"] or "").startswith(("ValueError: shelf", "KeyError"))
        for c in ran
    )
    assert all(json.loads(c["arguments"]) is not None for c in ran)  # arguments stored as JSON
    hits = conn.execute("SELECT COUNT(*) FROM rollouts_fts WHERE rollouts_fts MATCH 'list_files'").fetchone()[
        0
    ]
    assert hits >= 1

    keys = {k for (k,) in conn.execute("SELECT DISTINCT key FROM metrics WHERE step = 1")}
    assert {"agent/success_rate", "agent/turns_mean", "agent/loop_rate", "agent/max_turns_rate"} <= keys
    # calls per tool are logged at the steps with well-formed calls (the model's list_files(pattern=...)
    # does not fit Shelf's list_files(folder), so a step may have none)
    trained = {k for (k,) in conn.execute("SELECT DISTINCT key FROM metrics WHERE step IN (1, 2)")}
    assert any(k.startswith("agent/calls/") for k in trained)
    evaluated = {k for (k,) in conn.execute("SELECT DISTINCT key FROM metrics WHERE step IN (0, 2)")}
    assert {"eval/success/mean", "eval/success/all", "eval/success/easy", "eval/success/hard"} <= evaluated
    assert "eval/agent/turns_mean" in evaluated
    samples = conn.execute("SELECT step, trajectory, prompt_index FROM evaluations ORDER BY id").fetchall()
    assert [s[0] for s in samples] == [0] * 6 + [2] * 6  # 3 held-out tasks x eval_samples = 2 episodes
    assert [s[2] for s in samples[:6]] == [0, 0, 1, 1, 2, 2]
    assert all(json.loads(s[1])["turns"] for s in samples)
