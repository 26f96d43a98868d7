"""The Environments view against the real `rl-studio-engine env play` process: listing the environments of
a workspace, the tools read from the environment, and playing the built-in file manager by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_workspace import EVAL_TASKS
from test_agent_inspector import agent_run, recorded  # noqa: F401  (fixtures)

from engine.contract.env_play import PlayMessageError, PlayObservation, message_line, parse_message
from engine.envs.file_manager import solution
from studio.state.environments import EnvironmentEntry, list_environments, read_tasks
from studio.state.studio_state import StudioState
from studio.widgets.environments_view import EnvironmentsView

WAIT_MS = 60_000


@pytest.fixture
def view(qtbot, state: StudioState) -> Iterator[EnvironmentsView]:
    v = EnvironmentsView(state)
    qtbot.addWidget(v)
    v.resize(1200, 800)
    v.show()
    yield v
    v.play.stop()


def call(qtbot, view: EnvironmentsView, tool: str, arguments: str) -> PlayObservation:
    with qtbot.waitSignal(view.play.sig_observation, timeout=WAIT_MS) as seen:
        view.tool_choice.setCurrentIndex(view.tool_choice.findText(tool))
        view.arguments.setText(arguments)
        view.call_button.click()
    obs = seen.args[0]
    assert isinstance(obs, PlayObservation)
    return obs


def test_the_messages_round_trip_and_bad_lines_say_why() -> None:
    obs = PlayObservation(1, "list_files", '{"folder": "a"}', "x.txt", True, None, 0.0)
    assert parse_message(message_line(obs)) == obs
    for bad in ("not json", '{"type": "hello"}', '{"type": "observation", "turn": "one"}'):
        with pytest.raises(PlayMessageError):
            parse_message(bad)


def test_environments_of_the_workspace_are_listed(qtbot, agent_run, state, view) -> None:  # noqa: F811
    assert state.db is not None
    entries = list_environments(state.db.conn)
    assert [e.spec for e in entries] == ["builtin:file_manager"]
    assert entries[0].runs == [f"#{agent_run} agent-test"]
    assert str(EVAL_TASKS) in entries[0].task_files
    view.refresh()
    assert view.environments.item(0).text().startswith("builtin:file_manager") and "used by" in (
        view.environments.item(0).text()
    )
    assert view.task_list.count() == len(read_tasks(view.task_files.currentData()))


def test_play_the_file_manager_by_hand(qtbot, state, view) -> None:
    view.task_files.setCurrentIndex(view.task_files.findData(str(EVAL_TASKS)))
    task = read_tasks(str(EVAL_TASKS))[0]
    with qtbot.waitSignal(view.play.sig_ready, timeout=WAIT_MS):
        view.start_task(0)
    ready = view.play.ready
    assert ready is not None and ready.task_index == 0 and ready.task_id == task["task_id"]
    assert [view.tool_choice.itemText(i) for i in range(view.tool_choice.count())] == [
        "list_files",
        "move_file",
        "read_file",
        "write_file",
    ]
    docs = view.tools.toPlainText()
    assert "move_file(source: str, destination: str) -> str" in docs and "Args:" in docs
    assert task["prompt"][0]["content"][:40] in view.task_text.text()
    view.tool_choice.setCurrentIndex(view.tool_choice.findText("move_file"))
    assert json.loads(view.arguments.text()) == {"source": "", "destination": ""}  # a template to fill in

    # mistakes first: arguments that do not fit, text that is not JSON, a file that does not exist
    bad = call(qtbot, view, "move_file", '{"source": 3}')
    assert not bad.valid and "destination" in (bad.error or "")
    garbled = call(qtbot, view, "list_files", "{folder: inbox")
    assert not garbled.valid and "JSON object" in (garbled.error or "")
    missing = call(qtbot, view, "read_file", '{"path": "nowhere.txt"}')
    assert missing.valid and "no file" in (missing.error or "")
    text = view.transcript.toPlainText()
    assert "[invalid call]" in text and "[tool error]" in text

    # then the task's solution, call by call: the environment rewards it
    for step in solution(task):
        obs = call(qtbot, view, step["name"], json.dumps(step["arguments"]))
        assert obs.valid and obs.error is None, obs
    assert "moved " in view.transcript.toPlainText()
    with qtbot.waitSignal(view.play.sig_reward, timeout=WAIT_MS) as seen:
        view.reward_button.click()
    reward = seen.args[0]
    assert reward.reward == 1.0 and reward.success is True
    assert len(reward.trajectory["turns"]) == 3 + len(solution(task))
    assert "Reward 1 — success" in view.transcript.toPlainText()
    assert not view.call_button.isEnabled()

    # another task reuses the process: a reset, and nothing done there is rewarded
    process = view.play.process
    with qtbot.waitSignal(view.play.sig_ready, timeout=WAIT_MS):
        view.start_task(1)
    assert view.play.process is process and view.play.ready is not None and view.play.ready.task_index == 1
    with qtbot.waitSignal(view.play.sig_reward, timeout=WAIT_MS) as seen:
        view.reward_button.setEnabled(True)
        view.reward_button.click()
    assert seen.args[0].reward == 0.0 and seen.args[0].success is False


def test_an_environment_that_does_not_load_says_why(qtbot, state, view, tmp_path: Path) -> None:
    (tmp_path / "broken_env.py").write_text(
        "class Broken:\n    def reset(self, **row)\n        return None\n"
    )
    entry = EnvironmentEntry("broken_env.py:Broken", str(tmp_path))
    with qtbot.waitSignal(view.play.sig_error, timeout=WAIT_MS) as seen:
        view.play.start(entry, str(EVAL_TASKS), 0)
    assert (
        "exit code 2" in seen.args[0]
        and "broken_env.py line 2" in seen.args[0]
        and "syntax error" in seen.args[0]
    )
    assert view.play.ready is None
