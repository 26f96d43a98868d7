"""Rubric versions in the workspace: immutable, numbered per rubric, identified by their content.

The engine stores the version a run uses (engine.store); the studio's editor saves versions the user
writes (studio.state.rubric_store). Both go through here, so the same content is always the same version.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import NamedTuple


class StoredVersion(NamedTuple):
    version_id: int
    version: int
    created: bool
    """False when an identical version existed and was reused."""


def content_sha256(toml_text: str, sources: dict[str, str]) -> str:
    """The identity of a rubric version: its TOML and the source files it names."""
    blob = json.dumps({"toml": toml_text, "sources": sources}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def store_version(
    c: sqlite3.Connection, name: str, toml_text: str, sources: dict[str, str], note: str = ""
) -> StoredVersion:
    """Store a version of rubric ``name`` (created if new), or reuse the identical one already stored.
    Call it inside a write transaction: the next version number is read and taken in it."""
    sha = content_sha256(toml_text, sources)
    row = c.execute("SELECT id FROM rubrics WHERE name = ?", (name,)).fetchone()
    rubric_id = (
        row[0]
        if row
        else c.execute("INSERT INTO rubrics(name, created_at) VALUES (?, ?)", (name, time.time())).lastrowid
    )
    same = c.execute(
        "SELECT id, version FROM rubric_versions WHERE rubric_id = ? AND sha256 = ?", (rubric_id, sha)
    ).fetchone()
    if same:
        return StoredVersion(int(same[0]), int(same[1]), created=False)
    version = c.execute(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM rubric_versions WHERE rubric_id = ?", (rubric_id,)
    ).fetchone()[0]
    cur = c.execute(
        "INSERT INTO rubric_versions(rubric_id, version, toml, sources, sha256, note, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (rubric_id, version, toml_text, json.dumps(sources), sha, note, time.time()),
    )
    return StoredVersion(int(cur.lastrowid or 0), int(version), created=True)
