"""Where RL Studio keeps things: the bundled assets, the default workspace, a run's files.

The bundled demo (model, data, rubric, run config, reward functions) and the icon are package data of
`engine` (engine/assets/), found through importlib.resources, so a wheel or a frozen bundle carries them
as well as a checkout does. They are read as ordinary files (a model folder is opened by path), so the
package must be installed as files, which pip, editable installs and PyInstaller all do.
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path


def _assets_dir() -> Path:
    assets = files("engine") / "assets"
    # Not a zip import: every installer RL Studio supports unpacks packages into folders.
    return assets if isinstance(assets, Path) else Path(str(assets))


ASSETS_DIR = _assets_dir()
DEMO_DIR = ASSETS_DIR / "demo"
DEMO_CONFIG = DEMO_DIR / "run.toml"
AGENT_DEMO_DIR = ASSETS_DIR / "demo_agent"
AGENT_DEMO_CONFIG = AGENT_DEMO_DIR / "run.toml"
ICON = ASSETS_DIR / "icons" / "rl-studio.svg"


def data_dir() -> Path:
    """The user's RL Studio data folder (RL_STUDIO_HOME overrides it)."""
    override = os.environ.get("RL_STUDIO_HOME")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "rl-studio"


def default_workspace() -> Path:
    return data_dir() / "workspace.sqlite"


def files_dir(workspace: str | Path) -> Path:
    """The folder beside a workspace file that holds what does not belong in SQLite (checkpoints)."""
    p = Path(workspace).resolve()
    return p.with_name(p.stem + "_files")


def run_dir(workspace: str | Path, run_id: int) -> Path:
    return files_dir(workspace) / "runs" / str(run_id)
