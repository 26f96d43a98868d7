"""Studio tests: offscreen Qt, an isolated settings folder and data folder, workspace builders."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"
_SANDBOX = Path(tempfile.mkdtemp(prefix="rl-studio-tests-"))
os.environ["XDG_CONFIG_HOME"] = str(_SANDBOX / "config")
os.environ["RL_STUDIO_HOME"] = str(_SANDBOX / "home")
os.environ.pop("RL_STUDIO_ENGINE", None)

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

QSettings.setDefaultFormat(QSettings.Format.IniFormat)
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(_SANDBOX / "config"))

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
sys.path.insert(0, str(HERE))

from helpers import fake_engine_command  # noqa: E402

from studio.state.studio_state import StudioState  # noqa: E402


@pytest.fixture
def ws_path(tmp_path: Path) -> Path:
    return tmp_path / "workspace.sqlite"


@pytest.fixture
def fake_command() -> list[str]:
    return fake_engine_command("run_ok.jsonl")


@pytest.fixture
def state(qtbot: object, ws_path: Path, fake_command: list[str]) -> Iterator[StudioState]:
    s = StudioState(engine_command=fake_command)
    s.open_workspace(ws_path)
    yield s
    for proc in s.engines.processes:
        proc.kill()
        proc.process.waitForFinished(3000)
    s.close()


@pytest.fixture
def window(qtbot, state: StudioState):  # type: ignore[no-untyped-def]
    from studio.widgets.main_window import MainWindow

    w = MainWindow(state)
    # A test that closes the window decides itself; at teardown, never block on the question.
    w.ask_keep_or_stop = lambda running, what: "keep"  # type: ignore[method-assign]
    qtbot.addWidget(w)
    w.show()
    yield w
    for proc in state.engines.processes:
        proc.kill()
        proc.process.waitForFinished(3000)
