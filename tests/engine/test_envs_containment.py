"""User environment code that raises, hangs, exits or is called with malformed arguments is contained:
the model gets an error, the call is recorded, and the environment (a fresh process if needed) goes on.
Real worker processes running real environment files written to tmp_path."""

from __future__ import annotations

import textwrap
import time

import pytest
from transformers.utils import get_json_schema

from engine.envs.proxy import EnvironmentLoadError, ToolError, load_environment
from engine.envs.trajectory import build_trajectory

ENV = '''
import os, time

class Counter:
    """Counts."""

    def __init__(self):
        self.count = 0
        self.handle = open(os.devnull)  # not plain data: stays out of snapshots

    def reset(self, start=0, **row):
        if start == "boom":
            raise RuntimeError("cannot start")
        self.count = int(start)
        return f"count from {start}"

    def add(self, amount: int, note: str = "") -> str:
        """Add to the counter.

        Args:
            amount: How much to add.
            note: A note.
        """
        self.count += amount
        return f"count={self.count}"

    def crash(self, message: str) -> str:
        """Raise.

        Args:
            message: The message.
        """
        raise ValueError(message)

    def hang(self, seconds: float) -> str:
        """Sleep.

        Args:
            seconds: How long.
        """
        time.sleep(seconds)
        return "woke"

    def die(self) -> str:
        """Exit the process."""
        os._exit(3)

    def get_reward(self) -> float:
        return float(self.count == 3)
'''


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    folder = tmp_path_factory.mktemp("env")
    (folder / "counter.py").write_text(ENV)
    with load_environment(f"{folder / 'counter.py'}:Counter", tool_timeout=1.0) as f:
        yield f


def test_proxy_has_the_same_tools_signatures_and_schemas(factory):
    env = factory()
    assert type(env).__name__ == "Counter"
    assert sorted(factory.tools) == ["add", "crash", "die", "hang"]
    assert factory.tools["add"].text() == "add(amount: int, note: str = '') -> str"
    schema = get_json_schema(env.add)["function"]
    assert schema["name"] == "add"
    assert schema["parameters"]["properties"]["amount"] == {
        "type": "integer",
        "description": "How much to add.",
    }
    assert schema["parameters"]["required"] == ["amount"]


def test_calls_are_recorded_with_results(factory):
    env = factory()
    assert env.reset(start=1) == "count from 1"
    assert env.add(amount=2) == "count=3"
    assert env.get_reward() == 1.0
    (call,) = env._rl_calls
    assert (call.tool, call.arguments, call.result, call.valid, call.error) == (
        "add",
        '{"amount": 2}',
        "count=3",
        True,
        None,
    )
    snapshot = env._rl_snapshot()
    assert snapshot.count == 3 and snapshot.get_reward() == 1.0
    with pytest.raises(AttributeError, match="not plain data"):
        _ = snapshot.handle


def test_exception_becomes_a_tool_error_with_its_location(factory):
    env = factory()
    env.reset()
    with pytest.raises(ToolError, match=r"ValueError: nope \(at counter.py:\d+, in crash\)"):
        env.crash(message="nope")
    assert env.add(amount=1) == "count=1"  # the same process goes on
    assert [c.valid for c in env._rl_calls] == [True, True]
    assert "ValueError" in env._rl_calls[0].error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount": "2"}, "wrong type for argument 'amount' of add: '2' is not an integer"),
        ({"amount": True}, "is not an integer"),
        (
            {"amount": 1, "colour": "red"},
            "wrong arguments for add: got an unexpected keyword argument 'colour'",
        ),
        ({}, "missing a required argument: 'amount'"),
    ],
)
def test_malformed_arguments_are_invalid_calls_not_crashes(factory, kwargs, message):
    env = factory()
    env.reset()
    with pytest.raises(ToolError, match=message):
        env.add(**kwargs)
    (call,) = env._rl_calls
    assert call.valid is False and message in call.error


def test_a_hang_is_cut_off_and_the_environment_replaced(factory):
    env = factory()
    env.reset(start=2)
    first_pid = env._rl_worker.proc.pid
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"hang timed out after 1 s at counter.py:\d+, in hang"):
        env.hang(seconds=60)
    assert time.monotonic() - started < 20
    # The episode's state is gone: later calls say so, and the reward is missing with the reason.
    with pytest.raises(ToolError, match="state is lost"):
        env.add(amount=1)
    assert env._rl_reward() == (None, env._rl_lost)
    # The next task gets a fresh process.
    assert env.reset(start=3) == "count from 3"
    assert env._rl_worker.proc.pid != first_pid
    assert env.get_reward() == 1.0


def test_a_process_exit_is_contained(factory):
    env = factory()
    env.reset()
    with pytest.raises(ToolError, match="exited with code 3"):
        env.die()
    assert env.reset(start=1) == "count from 1"


def test_reset_error_is_shown_to_the_model_and_recorded(factory):
    env = factory()
    task = env.reset(start="boom")
    assert "environment error" in task and "RuntimeError: cannot start" in task
    assert "RuntimeError: cannot start" in env._rl_reset_error


def test_unknown_tools_and_unparseable_calls_are_invalid_in_the_trajectory(factory):
    env = factory()
    env.reset()
    env.add(amount=1)
    messages = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "add", "arguments": {"amount": 1}}},
                {"type": "function", "function": {"name": "delete", "arguments": {}}},
            ],
        },
        {"role": "tool", "name": "add", "content": "count=1"},
        {"role": "tool", "name": "delete", "content": "{'error': 'Tool delete not found.'}"},
        {
            "role": "assistant",
            "content": '<tool_call>\n{"name": "add", "arguments": {amount: }\n</tool_call>',
        },
    ]
    t = build_trajectory(messages, env._rl_calls, set(factory.tools))
    assert t.num_turns == 2
    assert [(c.tool, c.valid) for c in t.calls] == [("add", True), ("delete", False), ("?", False)]
    assert "unknown tool 'delete'" in t.calls[1].error
    assert t.valid_fraction() == pytest.approx(1 / 3)
    assert t.openai_messages()[0]["tool_calls"][1]["function"]["name"] == "delete"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "line 1"),
        ("raise ImportError('no such lib')\n", "importing env.py raised ImportError: no such lib"),
        ("class Other:\n    def reset(self, **row): pass\n", "has no class 'Env' (it defines: Other)"),
        ("class Env:\n    pass\n", "Env has no reset method"),
        (
            "class Env:\n    def __init__(self):\n        raise OSError('x')\n    def reset(self): pass\n",
            "Env() raised OSError: x",
        ),
    ],
)
def test_load_errors_say_what_is_wrong(tmp_path, source, message):
    (tmp_path / "env.py").write_text(textwrap.dedent(source))
    with pytest.raises(EnvironmentLoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_environment(f"{tmp_path / 'env.py'}:Env")


def test_spec_errors(tmp_path):
    with pytest.raises(EnvironmentLoadError, match=r"FILE\.py:ClassName"):
        load_environment("env.py")
    with pytest.raises(EnvironmentLoadError, match="does not exist"):
        load_environment(f"{tmp_path}/missing.py:Env")
    with pytest.raises(EnvironmentLoadError, match="unknown built-in environment 'nope'"):
        load_environment("builtin:nope")


def test_config_builtins_match_the_engine():
    from engine.contract.config import BUILTIN_ENVIRONMENTS
    from engine.envs.proxy import BUILTINS

    assert set(BUILTIN_ENVIRONMENTS) == set(BUILTINS)
