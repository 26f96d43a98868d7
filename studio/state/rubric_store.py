"""Rubric versions in the workspace: save (immutable, identical content reused), list, diff, and the runs
that used each version; import and export of rubric folders.

A version is identified by the sha256 of its TOML and source files, computed as engine/store.py's
save_rubric_version does, so a run that loads a saved version links to that same row.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.contract.rubric_versions import store_version
from studio.state.rubric_doc import RUBRIC_FILE, RubricDocument
from studio.state.workspace import WorkspaceDB


@dataclass(frozen=True)
class RunUse:
    id: int
    name: str
    status: str


@dataclass(frozen=True)
class VersionInfo:
    id: int
    rubric: str
    version: int
    sha256: str
    note: str
    created_at: float
    runs: tuple[RunUse, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.rubric} v{self.version}"


@dataclass(frozen=True)
class SaveResult:
    version_id: int
    version: int
    created: bool
    """False when an identical version existed and was reused."""


@dataclass
class StoredVersion:
    info: VersionInfo
    toml: str
    sources: dict[str, str] = field(default_factory=dict)

    def document(self) -> RubricDocument:
        return RubricDocument(self.toml, self.sources)


def save_version(db: WorkspaceDB, doc: RubricDocument, note: str = "") -> SaveResult:
    """Store the document as a new immutable version of its rubric, or return the identical one."""
    if not doc.name:
        raise ValueError('the rubric has no name; add name = "..." at the top of its TOML')
    text, sources = doc.snapshot()
    with db.writer() as c:
        stored = store_version(c, doc.name, text, sources, note)
    return SaveResult(stored.version_id, stored.version, stored.created)


def _info(row: tuple[Any, ...], runs: list[RunUse] | tuple[RunUse, ...] = ()) -> VersionInfo:
    return VersionInfo(
        int(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4]), float(row[5]), tuple(runs)
    )


_VERSION_SELECT = (
    "SELECT v.id, r.name, v.version, v.sha256, COALESCE(v.note, ''), v.created_at"
    " FROM rubric_versions v JOIN rubrics r ON r.id = v.rubric_id"
)


def _runs_by_version(db: WorkspaceDB, ids: list[int]) -> dict[int, list[RunUse]]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    found: dict[int, list[RunUse]] = {}
    for version_id, run_id, name, status in db.conn.execute(
        f"SELECT rubric_version_id, id, name, status FROM runs WHERE rubric_version_id IN ({marks}) ORDER BY id",
        ids,
    ):
        found.setdefault(int(version_id), []).append(RunUse(int(run_id), str(name), str(status)))
    return found


def versions(db: WorkspaceDB, rubric: str) -> list[VersionInfo]:
    """The versions of one rubric, newest first, each with the runs that used it."""
    rows = db.conn.execute(
        _VERSION_SELECT + " WHERE r.name = ? ORDER BY v.version DESC", (rubric,)
    ).fetchall()
    runs = _runs_by_version(db, [r[0] for r in rows])
    return [_info(r, runs.get(r[0], [])) for r in rows]


def rubric_names(db: WorkspaceDB) -> list[str]:
    return [r[0] for r in db.conn.execute("SELECT name FROM rubrics ORDER BY name")]


def load(db: WorkspaceDB, version_id: int) -> StoredVersion | None:
    row = db.conn.execute(_VERSION_SELECT + " WHERE v.id = ?", (version_id,)).fetchone()
    if row is None:
        return None
    toml, sources = db.rubric_version_text(version_id)
    runs = _runs_by_version(db, [version_id]).get(version_id, [])
    return StoredVersion(_info(row, runs), toml, sources)


def latest_version_id(db: WorkspaceDB) -> int | None:
    """The most recently saved version of any rubric (what the editor opens with)."""
    row = db.conn.execute(
        "SELECT id FROM rubric_versions ORDER BY created_at DESC, id DESC LIMIT 1"
    ).fetchone()
    return int(row[0]) if row else None


def find_version(db: WorkspaceDB, doc: RubricDocument) -> VersionInfo | None:
    """The stored version with exactly the document's content, if there is one."""
    row = db.conn.execute(
        _VERSION_SELECT + " WHERE r.name = ? AND v.sha256 = ?", (doc.name, doc.sha256)
    ).fetchone()
    if row is None:
        return None
    return _info(row, _runs_by_version(db, [row[0]]).get(row[0], []))


# ---- diff ------------------------------------------------------------------------------------------------


def _files(toml: str, sources: dict[str, str]) -> dict[str, str]:
    return {RUBRIC_FILE: toml, **dict(sorted(sources.items()))}


def diff(
    old: tuple[str, dict[str, str]], new: tuple[str, dict[str, str]], old_label: str, new_label: str
) -> list[str]:
    """A unified diff over the rubric file and every source file, as lines (no trailing newlines).
    Empty when the two are identical."""
    a, b = _files(*old), _files(*new)
    lines: list[str] = []
    for name in [*a, *(n for n in b if n not in a)]:
        before, after = a.get(name, ""), b.get(name, "")
        if before == after:
            continue
        lines += [
            line.rstrip("\n")
            for line in difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"{old_label}/{name}" if name in a else "/dev/null",
                tofile=f"{new_label}/{name}" if name in b else "/dev/null",
                n=3,
            )
        ]
    return lines


# ---- files -------------------------------------------------------------------------------------------------


def export_folder(doc: RubricDocument, folder: Path, overwrite: bool = False) -> Path:
    """Write the rubric's TOML and the source files it uses into `folder`; returns the TOML's path.
    A folder holding another rubric.toml raises FileExistsError unless `overwrite`."""
    existing = folder / RUBRIC_FILE
    if not overwrite and existing.exists() and existing.read_text(encoding="utf-8") != doc.text:
        raise FileExistsError(f"{existing} exists; choose an empty folder to export into")
    return doc.write_to(folder, unreferenced=False)
