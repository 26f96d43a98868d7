"""The wheel is what users install: built from this tree, installed alone, it must run the demo.

The wheel is built from a copy of the project (the checkout stays untouched), installed with --target
into an empty folder, and run from a third folder by this venv's python with only that folder on
PYTHONPATH: torch and friends come from the venv, `engine` (and its bundled demo) from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, requires_demo

pytestmark = requires_demo


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, installed into an otherwise empty folder. Returns that folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for package in ("engine", "studio"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    dist = root / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            ".",
        ],
        cwd=source,
    )
    (wheel,) = dist.glob("rl_studio-*.whl")
    target = root / "site"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ]
    )
    return target


def _env(target: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return env


def test_the_installed_wheel_carries_the_demo_and_the_icon(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import json, engine\n"
        "from engine.contract.paths import DEMO_CONFIG, DEMO_DIR, ICON\n"
        "print(json.dumps({'engine': engine.__file__, 'config': str(DEMO_CONFIG), 'model': str(DEMO_DIR / 'model'),"
        " 'icon': str(ICON), 'found': [p.is_file() for p in (DEMO_CONFIG, DEMO_DIR / 'rewards.py', ICON,"
        " DEMO_DIR / 'model' / 'model.safetensors', DEMO_DIR / 'data' / 'train.jsonl')]}))\n"
    )
    seen = json.loads(_run([sys.executable, "-c", probe], cwd=tmp_path, env=_env(installed)).stdout)
    for key in ("engine", "config", "model", "icon"):
        assert Path(seen[key]).is_relative_to(installed), f"{key} comes from {seen[key]}, not the wheel"
    assert all(seen["found"]), seen


def test_the_wheel_leaves_no_file_of_the_packages_behind(installed: Path) -> None:
    """Every file of engine/ and studio/ (data included: demos, icon, environment task sets) is installed."""
    source = installed.parent / "source"
    files = {
        p.relative_to(source)
        for package in ("engine", "studio")
        for p in (source / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    missing = sorted(str(f) for f in files if not (installed / f).is_file())
    assert not missing, f"the wheel leaves out {missing}: add their pattern to [tool.setuptools.package-data]"


def test_the_installed_wheel_trains_the_demo(installed: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    db = tmp_path / "ws.sqlite"
    script = installed / "bin" / "rl-studio-engine"
    assert script.is_file(), "the wheel installs no rl-studio-engine script"
    proc = _run(
        [sys.executable, str(script), "demo", "--steps", "2", "--db", str(db), "--json"],
        cwd=workdir,
        env=_env(installed),
        timeout=300,
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished", proc.stderr
    assert summary["eval_before"] and summary["eval_after"], summary
    # The human log says once where library noise went, and carries none of it.
    debug_log = tmp_path / "ws_files" / "runs" / str(summary["run_id"]) / "engine-debug.log"
    assert proc.stderr.count("library warnings and logs:") == 1 and str(debug_log) in proc.stderr
    assert debug_log.is_file()
    for noise in ("Warning:", "warnings.warn", "Loading weights"):
        assert noise not in proc.stderr, proc.stderr
    printed = _run(
        [sys.executable, str(script), "demo", "--print-config"], cwd=workdir, env=_env(installed)
    ).stdout
    assert str(installed / "engine" / "assets" / "demo" / "model") in printed
