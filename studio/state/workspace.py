"""The studio's access to a workspace file: short read-only queries, and the few writes the GUI makes.

The engine owns a run's rows. The studio writes only authored things (the seeded demo) and, when an
engine process died without saying so, the run's `failed` status. Every query here is small and
indexed; bulk metric loading lives in state/metrics.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contract import run_status, schema
from engine.contract.paths import files_dir

ACTIVE_STATUSES = ("queued", "running", "paused")
ENDED_STATUSES = ("stopped", "failed", "finished")


class WorkspaceError(RuntimeError):
    """The workspace cannot be opened; the message says why and what to do."""


def _small(path: str, limit: int = 64 * 1024 * 1024) -> bool:
    try:
        return os.path.getsize(path) <= limit
    except OSError:
        return False


@dataclass(frozen=True)
class RunRow:
    id: int
    name: str
    status: str
    algorithm: str
    step: int
    max_steps: int
    error: str | None
    created_at: float
    started_at: float | None
    updated_at: float | None
    finished_at: float | None
    pid: int | None
    lease_token: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def holder_alive(self) -> bool:
        """Whether the engine recorded as this run's holder still runs (pid and its start time)."""
        return run_status.holder_alive(self.pid, self.lease_token)

    def shown_status(self, has_complete_checkpoint: bool) -> str:
        """The status a person should read: an active run whose engine is gone is `interrupted`."""
        return run_status.derive_status(
            self.status, self.pid, self.lease_token, has_complete_checkpoint
        ).label

    @property
    def label(self) -> str:
        return f"#{self.id} {self.name}"


_RUN_SELECT = (
    "SELECT id, name, status, algorithm, step, max_steps, error, created_at, started_at, updated_at,"
    " finished_at, pid, lease_token FROM runs"
)


@dataclass(frozen=True)
class DatasetRow:
    id: int
    name: str
    path: str
    rows: int | None
    columns: list[str]


@dataclass(frozen=True)
class RubricVersionRow:
    id: int
    rubric_id: int
    rubric_name: str
    version: int
    note: str | None
    created_at: float


class WorkspaceDB:
    """One open workspace: a read-only connection for the GUI thread, writers opened on demand."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = str(Path(path).expanduser().resolve())
        exists = Path(self.path).is_file()
        if not exists and not create:
            raise WorkspaceError(f"{self.path} does not exist. Choose File > New Workspace to create one.")
        self.created = not exists
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            writer = schema.connect(self.path)
            try:
                # quick_check reads every page (~0.9 s per 250 MB): on the GUI thread only for files
                # up to 64 MB; a damaged page in a bigger file is reported when a query meets it.
                problem = schema.integrity_problem(writer) if exists and _small(self.path) else None
                if problem is not None:
                    raise WorkspaceError(schema.damaged_message(self.path, problem))
                schema.migrate(writer)
            finally:
                writer.close()
            self.conn = schema.connect(self.path, readonly=True)
            self.conn.execute("SELECT count(*) FROM runs").fetchone()
        except (sqlite3.DatabaseError, OSError) as exc:
            if schema.is_damage_error(exc) and "file is not a database" not in str(exc):
                raise WorkspaceError(schema.damaged_message(self.path, exc)) from None
            raise WorkspaceError(
                f"{self.path} is not an RL Studio workspace or cannot be opened ({exc}). "
                "Open another file, or create a new workspace with File > New Workspace."
            ) from None
        except RuntimeError as exc:  # a newer schema than this studio knows
            raise WorkspaceError(str(exc)) from None

    def close(self) -> None:
        self.conn.close()

    # ---- folders beside the file -----------------------------------------------------------------
    @property
    def files_dir(self) -> Path:
        return files_dir(self.path)

    @property
    def logs_dir(self) -> Path:
        return self.files_dir / "logs"

    @property
    def configs_dir(self) -> Path:
        return self.files_dir / "configs"

    def run_log_path(self, run_id: int) -> Path:
        return self.logs_dir / f"run-{run_id}.log"

    # ---- writes --------------------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator[sqlite3.Connection]:
        conn = schema.connect(self.path, timeout_s=10.0)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def mark_failed(self, run_id: int, message: str) -> bool:
        """Record that a run's engine died without ending the run. False if the run had already ended."""
        now = time.time()
        with self.writer() as c:
            cur = c.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished_at = ?, updated_at = ?"
                " WHERE id = ? AND status IN ('queued', 'running', 'paused')",
                (message, now, now, run_id),
            )
            if cur.rowcount:
                c.execute(
                    "INSERT INTO events(run_id, time, type, payload) VALUES (?, ?, 'error', ?)",
                    (run_id, now, json.dumps({"message": message, "kind": "crash", "source": "studio"})),
                )
            return cur.rowcount > 0

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # ---- runs ----------------------------------------------------------------------------------------
    def runs(self, before_id: int | None = None, limit: int = 200) -> list[RunRow]:
        """Newest first, a page at a time (keyed by id, not OFFSET, so pages stay cheap)."""
        if before_id is None:
            rows = self.conn.execute(_RUN_SELECT + " ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.conn.execute(
                _RUN_SELECT + " WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id, limit)
            )
        return [RunRow(*r) for r in rows]

    def runs_from(self, min_id: int) -> list[RunRow]:
        """Every run with id >= min_id (what the sidebar has loaded, plus anything newer)."""
        return [
            RunRow(*r) for r in self.conn.execute(_RUN_SELECT + " WHERE id >= ? ORDER BY id DESC", (min_id,))
        ]

    def run(self, run_id: int) -> RunRow | None:
        row = self.conn.execute(_RUN_SELECT + " WHERE id = ?", (run_id,)).fetchone()
        return RunRow(*row) if row else None

    def latest_run_id(self) -> int | None:
        row = self.conn.execute("SELECT max(id) FROM runs").fetchone()
        return row[0] if row and row[0] is not None else None

    def run_config(self, run_id: int) -> tuple[dict[str, Any], str]:
        """The config a run recorded at its start, and the folder its relative paths resolve against."""
        row = self.conn.execute("SELECT config, config_path FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return {}, ""
        data = json.loads(row[0] or "{}")
        base_dir = data.pop("base_dir", "") or (str(Path(row[1]).parent) if row[1] else "")
        return data, base_dir

    def last_error(self, run_id: int) -> tuple[str | None, str | None]:
        """The run's error message and, when the engine sent one, its traceback."""
        run = self.run(run_id)
        message = run.error if run else None
        traceback = None
        row = self.conn.execute(
            "SELECT payload FROM events WHERE run_id = ? AND type = 'error' ORDER BY id DESC LIMIT 1",
            (run_id,),
        ).fetchone()
        if row:
            try:
                payload = json.loads(row[0])
            except json.JSONDecodeError:
                payload = {}
            message = message or payload.get("message")
            traceback = payload.get("traceback") or payload.get("stderr_tail")
        return message, traceback

    def has_complete_checkpoint(self, run_id: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM checkpoints WHERE run_id = ? AND complete = 1 LIMIT 1", (run_id,)
        ).fetchone()
        return row is not None

    def engine_alive(self, run: RunRow) -> bool | None:
        """Whether the process recorded for an active run still exists (None: no process recorded).
        The engine's own rule (engine.contract.run_status): the pid and its start time, so a reused
        pid is no holder."""
        if not run.pid:
            return None
        return run.holder_alive

    # ---- datasets and rubrics --------------------------------------------------------------------------
    def datasets(self) -> list[DatasetRow]:
        out = []
        for id_, name, path, rows, columns in self.conn.execute(
            "SELECT id, name, path, rows, columns FROM datasets ORDER BY name, id"
        ):
            try:
                cols = list(json.loads(columns or "[]"))
            except json.JSONDecodeError:
                cols = []
            out.append(DatasetRow(id_, name, path, rows, cols))
        return out

    def rubric_versions(self) -> list[RubricVersionRow]:
        rows = self.conn.execute(
            "SELECT v.id, r.id, r.name, v.version, v.note, v.created_at FROM rubric_versions v"
            " JOIN rubrics r ON r.id = v.rubric_id ORDER BY r.name, v.version DESC"
        )
        return [RubricVersionRow(*r) for r in rows]

    def rubric_version_text(self, version_id: int) -> tuple[str, dict[str, str]]:
        row = self.conn.execute(
            "SELECT toml, sources FROM rubric_versions WHERE id = ?", (version_id,)
        ).fetchone()
        if row is None:
            return "", {}
        try:
            sources = dict(json.loads(row[1] or "{}"))
        except (json.JSONDecodeError, TypeError, ValueError):
            sources = {}
        return row[0], sources

    # ---- metrics (small queries; bulk loading is in state/metrics.py) ------------------------------------
    def max_metric_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(max(id), 0) FROM metrics").fetchone()[0])

    def metric_keys(self, run_id: int) -> list[str]:
        """Distinct keys of a run by skip-scanning the (run_id, key, step) index: O(keys x log n)."""
        rows = self.conn.execute(
            "WITH RECURSIVE k(key) AS (SELECT min(key) FROM metrics WHERE run_id = :r"
            " UNION ALL SELECT (SELECT min(key) FROM metrics WHERE run_id = :r AND key > k.key)"
            " FROM k WHERE k.key IS NOT NULL) SELECT key FROM k WHERE key IS NOT NULL",
            {"r": run_id},
        )
        return [r[0] for r in rows]

    def sparkline(self, run_id: int, last_step: int, points: int = 48, key: str = "reward") -> list[float]:
        """At most ``points`` bucket means of one metric, for the runs list."""
        bucket = max(1, (last_step + points) // points)
        rows = self.conn.execute(
            "SELECT avg(value) FROM metrics WHERE run_id = ? AND key = ? GROUP BY step / ? ORDER BY step / ?",
            (run_id, key, bucket, bucket),
        )
        return [float("nan") if r[0] is None else float(r[0]) for r in rows]
