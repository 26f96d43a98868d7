"""Trajectory criteria and the [environment] config section, through the real rubric loader and reward
workers: built-in kinds read the `trajectories` column, Python reward functions receive `trajectories`
and `environments` (snapshots of the environment's end state) as TRL's convention passes them."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from engine.contract.config import ConfigError, config_from_dict
from engine.envs.episodes import run_scripted
from engine.envs.file_manager import make_tasks, solution
from engine.envs.proxy import load_environment
from engine.rewards import RewardBatch
from engine.rewards.errors import RubricError
from engine.rewards.rubric import rubric_from_text

RUBRIC = """
name = "agent"

[[criteria]]
name = "solved"
kind = "env_reward"

[[criteria]]
name = "valid"
kind = "valid_tool_calls"
weight = 0.5

[[criteria]]
name = "brief"
kind = "turn_budget"
max_turns = 4
weight = 0.25

[[criteria]]
name = "moved_count"
kind = "python"
source = "agent_rewards.py:moved_count"
weight = 0
"""

REWARDS = '''
def moved_count(completions, trajectories, environments, **kwargs):
    """TRL's convention: environments= the per-rollout environments, plus RL Studio's trajectories=."""
    out = []
    for trajectory, env in zip(trajectories, environments):
        moves = [c for c in trajectory.calls if c.tool == "move_file" and c.error is None]
        out.append(float(len(moves)) + env.get_reward() * 100 + 1000 * ("manifest.json" in str(env.files)))
    return out
'''


@pytest.fixture(scope="module")
def episodes():
    row = make_tasks()[0][0]
    good = solution(row)
    bad = [{"name": "list_files", "arguments": {"folder": 3}}, *good[:-1]]  # no manifest, one invalid call
    with load_environment("builtin:file_manager") as factory:
        env = factory()
        out = []
        for calls in (good, bad):
            episode = run_scripted(factory, env, row, [[c] for c in calls], max_turns=8)
            out.append((episode.trajectory, env._rl_snapshot()))
    return row, out


def test_trajectory_kinds_and_python_functions_score_episodes(tmp_path, episodes):
    row, ((good, good_env), (bad, bad_env)) = episodes
    (tmp_path / "agent_rewards.py").write_text(REWARDS)
    with rubric_from_text(RUBRIC, tmp_path) as rubric:
        batch = RewardBatch(
            prompts=[row["prompt"]] * 2,
            completions=["", ""],
            columns={"trajectories": [good, bad], "environments": [good_env, bad_env]},
        )
        scored = rubric.score(batch)
    moves = len(row["answer"])
    assert scored.scores["solved"] == [1.0, 0.0]
    assert scored.scores["valid"] == [1.0, pytest.approx(1 - 1 / (moves + 2))]
    assert scored.scores["brief"] == [float(good.num_turns <= 4), float(bad.num_turns <= 4)]
    assert scored.errors["moved_count"] == [None, None]
    assert scored.scores["moved_count"] == [1100.0 + moves, float(moves)]


def test_trajectory_kinds_without_trajectories_fail_with_the_reason(tmp_path):
    with rubric_from_text(RUBRIC.split('[[criteria]]\nname = "moved_count"')[0], tmp_path) as rubric:
        scored = rubric.score(RewardBatch(prompts=["p"], completions=["c"]))
    assert scored.scores == {"solved": [None], "valid": [None], "brief": [None]}
    assert "needs the rollout's trajectory" in scored.errors["solved"][0]


def test_turn_budget_needs_max_turns(tmp_path):
    with pytest.raises(RubricError, match="max_turns"):
        rubric_from_text('name = "x"\n[[criteria]]\nname = "b"\nkind = "turn_budget"\n', tmp_path)


def test_valid_tool_calls_options(tmp_path, episodes):
    _, ((good, _), _) = episodes
    text = (
        'name = "x"\n[[criteria]]\nname = "v"\nkind = "valid_tool_calls"\ncount_tool_errors = true\n'
        "no_calls = 0.5\n"
    )
    failing = json.loads(json.dumps(good.as_dict()))
    failing["turns"][0]["calls"][0]["error"] = "FileNotFoundError: no folder"
    empty = {"turns": [{"text": "I am done.", "calls": []}]}
    with rubric_from_text(text, tmp_path) as rubric:
        scored = rubric.score(RewardBatch(["p"] * 2, ["", ""], {"trajectories": [failing, empty]}))
    n = len(good.calls)
    assert scored.scores["v"] == [pytest.approx((n - 1) / n), 0.5]


# ---- config ----------------------------------------------------------------------------------------------

BASE = {"model": {"path": "m"}, "data": {"train": "t.jsonl"}, "rubric": {"path": "r.toml"}}


def test_environment_section_is_optional_and_round_trips():
    plain = config_from_dict(BASE)
    assert plain.environment is None and "[environment]" not in plain.to_toml()
    cfg = config_from_dict({**BASE, "environment": {"path": "envs/fm.py:FileManagerEnv", "max_turns": 3}})
    assert (cfg.environment.path, cfg.environment.max_turns, cfg.environment.tool_timeout) == (
        "envs/fm.py:FileManagerEnv",
        3,
        5.0,
    )
    again = config_from_dict(tomllib.loads(cfg.to_toml()))
    assert again.to_dict() == cfg.to_dict()
    moved = config_from_dict(tomllib.loads(cfg.to_toml()), base_dir="/somewhere")
    assert (
        tomllib.loads(moved.to_toml(absolute_paths=True))["environment"]["path"]
        == str(Path("/somewhere/envs/fm.py")) + ":FileManagerEnv"
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"path": ""}, "path is empty"),
        ({"path": "envs/fm.py"}, "must be FILE.py:ClassName"),
        ({"path": "builtin:chess"}, "names no built-in environment"),
        ({"path": "builtin:file_manager", "max_turns": 0}, "max_turns must be at least 1"),
        ({"path": "builtin:file_manager", "tool_timeout": -1}, "tool_timeout must be a positive number"),
        ({"path": "builtin:file_manager", "turns": 3}, r"Unknown key \[environment\] turns"),
    ],
)
def test_environment_section_validation(section, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**BASE, "environment": section})


# ---- what training hands the rubric --------------------------------------------------------------------


def test_episode_columns_from_trl_layout(tmp_path):
    from engine.envs.training import episode_columns, write_trajectories

    row = make_tasks()[0][1]
    with load_environment("builtin:file_manager") as factory:
        env = factory()
        env.reset(**row)
        # What TRL's tool loop does: call the tools the parsed message names, then append tool messages.
        first = solution(row)[0]
        result = env.list_files(**first["arguments"])
        completion = [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"type": "function", "function": {"name": "list_files", "arguments": first["arguments"]}}
                ],
            },
            {"role": "tool", "name": "list_files", "content": result},
            {"role": "assistant", "content": "Done."},
        ]
        columns = episode_columns([env], [completion])
    (trajectory,) = columns["trajectories"]
    (snapshot,) = columns["environments"]
    assert trajectory.num_turns == 2 and [c.tool for c in trajectory.calls] == ["list_files"]
    assert trajectory.reward == 0.0 and snapshot.get_reward() == 0.0
    assert snapshot.source == row["source"]
    out = tmp_path / "trajectories.jsonl"
    write_trajectories(out, 1, [0], columns["trajectories"])
    record = json.loads(out.read_text())
    assert record["messages"][0]["tool_calls"][0]["function"]["name"] == "list_files"
    assert record["messages"][1] == {"role": "tool", "tool_call_id": "call_1", "content": result}


def test_training_factory_keeps_get_reward_from_trl():
    from engine.envs.training import environment_factory

    cfg = config_from_dict({**BASE, "environment": {"path": "builtin:file_manager"}})
    factory = environment_factory(cfg)
    assert factory is not None
    with factory:
        # TRL adds get_reward as a second reward function when the class has it: the rubric's env_reward
        # criterion scores it instead, so TRL optimises exactly the rubric's total.
        assert not hasattr(factory.proxy_class, "get_reward")
        assert factory.has_reward
    assert environment_factory(config_from_dict(BASE)) is None
