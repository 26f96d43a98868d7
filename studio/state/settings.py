"""What the studio remembers between starts (QSettings): recent workspaces, window layout, options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

MAX_RECENT = 8


def settings() -> QSettings:
    return QSettings("RL Studio", "rl-studio")


def recent_workspaces() -> list[str]:
    value = settings().value("workspaces/recent", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [str(v) for v in value if v]


def add_recent_workspace(path: str) -> None:
    path = str(Path(path).resolve())
    items = [p for p in recent_workspaces() if p != path]
    settings().setValue("workspaces/recent", [path, *items][:MAX_RECENT])


def value(key: str, default: Any = None) -> Any:
    return settings().value(key, default)


def set_value(key: str, data: Any) -> None:
    settings().setValue(key, data)
