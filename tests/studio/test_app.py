"""The app as a user starts it: import boundaries, first start, screenshots (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import add_run

from engine.contract import schema
from engine.contract.paths import DEMO_CONFIG, DEMO_DIR

REPO = Path(__file__).resolve().parents[2]
TRAINING_LIBRARIES = {"torch", "transformers", "trl", "peft", "vllm", "datasets", "accelerate"}


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        RL_STUDIO_HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        PYTHONPATH=str(REPO),
    )
    return env


def test_starting_the_studio_imports_no_training_library(tmp_path: Path) -> None:
    ws = tmp_path / "ws.sqlite"
    add_run(ws, steps=5)
    shot = tmp_path / "shot.png"
    code = (
        "import sys\n"
        "from studio.app import main\n"
        f"code = main(['--workspace', {str(ws)!r}, '--screenshot', {str(shot)!r}, '--view', 'dashboard'])\n"
        f"names = {sorted(TRAINING_LIBRARIES)!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in names))\n"
        "sys.exit(code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
    assert shot.is_file()


def test_studio_modules_import_only_the_engine_contract() -> None:
    offenders = []
    for path in (REPO / "studio").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import engine", "from engine")) and not stripped.startswith(
                ("from engine.contract", "import engine.contract")
            ):
                offenders.append(f"{path.relative_to(REPO)}: {stripped}")
    assert not offenders


@pytest.mark.parametrize("view", ["dashboard", "inspector", "rubric", "home", "launcher", "playground"])
def test_screenshot_renders_a_view_at_1400x900(tmp_path: Path, view: str) -> None:
    from PySide6.QtGui import QImage

    ws = tmp_path / "ws.sqlite"
    run_id = add_run(ws, name="shot", steps=60)
    out = tmp_path / f"{view}.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "--workspace",
            str(ws),
            "--screenshot",
            str(out),
            "--view",
            view,
            "--run",
            str(run_id),
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1400, 900)


def test_screenshot_of_a_missing_run_says_so(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "--workspace",
            str(tmp_path / "ws.sqlite"),
            "--screenshot",
            str(tmp_path / "x.png"),
            "--run",
            "42",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2 and "no run 42" in proc.stderr


def test_first_start_creates_and_seeds_the_default_workspace(tmp_path: Path) -> None:
    env = _env(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "studio", "--screenshot", str(tmp_path / "home.png"), "--view", "home"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    ws = tmp_path / "home" / "workspace.sqlite"
    assert ws.is_file()
    conn = schema.connect(str(ws), readonly=True)
    datasets = {name: rows for name, rows in conn.execute("SELECT name, rows FROM datasets")}
    rubrics = [name for (name,) in conn.execute("SELECT name FROM rubrics")]
    conn.close()
    if not (DEMO_DIR / "data" / "train.jsonl").is_file():
        pytest.skip(f"the bundled demo is not built ({DEMO_DIR})")
    assert datasets.get("demo-train", 0) > 0 and "demo-eval" in datasets
    assert rubrics
    if DEMO_CONFIG.is_file():
        config = tmp_path / "home" / "workspace_files" / "configs" / "demo.toml"
        assert config.is_file() and str(DEMO_DIR) in config.read_text()


# ---- no display --------------------------------------------------------------------------------------
def _without_display(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = _env(tmp_path)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    env.update(extra)
    return env


def _studio(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "studio", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="only X11/Wayland systems need DISPLAY")
def test_help_and_a_missing_display_without_a_display(tmp_path: Path) -> None:
    env = _without_display(tmp_path)
    helped = _studio(env, "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: rl-studio") and "--workspace" in helped.stdout

    started = _studio(env, "--workspace", str(tmp_path / "ws.sqlite"))
    assert started.returncode == 2, started.stderr  # not an abort (-6) with a core dump
    assert "neither DISPLAY nor WAYLAND_DISPLAY is set" in started.stderr
    assert "QT_QPA_PLATFORM=offscreen" in started.stderr and "xvfb-run" in started.stderr
    assert "xcb" not in started.stderr  # Qt's own message names a library that is not the problem
    assert not (tmp_path / "ws.sqlite").exists()

    bad = _studio(env, "--run", "three")
    assert bad.returncode == 2 and "'three' is not a run id" in bad.stderr  # argparse's error, not Qt's


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="only X11/Wayland systems need DISPLAY")
def test_a_display_qt_cannot_open_is_reported_without_a_core_dump(tmp_path: Path) -> None:
    # No X server answers on display 99 (and where xcb's libraries are missing, that fails first).
    started = _studio(_without_display(tmp_path, DISPLAY=":99"), "--workspace", str(tmp_path / "ws.sqlite"))
    assert started.returncode == 2, started.stderr
    assert "Qt could not open the display (DISPLAY=':99'" in started.stderr
    assert "QT_QPA_PLATFORM=offscreen" in started.stderr and "xvfb-run" in started.stderr


def test_which_environments_have_a_display() -> None:
    from studio.app import display_problem

    assert display_problem({}, "linux") is not None
    assert display_problem({"DISPLAY": ":0"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "xcb;offscreen"}, "linux") is None
    xcb = display_problem({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert xcb is not None and "QT_QPA_PLATFORM=xcb needs DISPLAY" in xcb
    assert display_problem({}, "darwin") is None and display_problem({}, "win32") is None
