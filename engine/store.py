"""The workspace access layer: one SQLite file (WAL) through sqlite-utils, written in batches.

The engine is the only writer of a run's rows. Every write is one short transaction, committed before
the event that announces it is emitted, so a reader that sees an event always finds the rows, and a
kill -9 loses nothing that was announced.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.contract.rubric_versions import store_version
from engine.contract.schema import connect, migrate


class StoreError(RuntimeError):
    """The workspace could not be read or written; the message says why and what to do."""


_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


_json_keys: dict[str, str] = {}
"""Criterion names as JSON strings: a rubric has a few, written once per rollout."""


def _scores_json(scores: dict[str, Any]) -> str | None:
    """{criterion: value | null} as JSON; NaN, infinities and non-numbers become null. Formatted here
    rather than by json.dumps, which builds an encoder per call: this runs once per rollout."""
    if not scores:
        return None
    parts = []
    for name, value in scores.items():
        key = _json_keys.get(name)
        if key is None:
            key = json.dumps(name, ensure_ascii=False)
            if len(_json_keys) < 10_000:
                _json_keys[name] = key
        number = _finite(value)
        parts.append(f"{key}:{'null' if number is None else repr(number)}")
    return "{" + ",".join(parts) + "}"


def _finite(value: Any) -> float | None:
    """SQLite has no NaN: store non-finite numbers as NULL."""
    if type(value) is float:  # the common case, first
        return value if math.isfinite(value) else None
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class RolloutRecord:
    completion: str
    reward: float | None
    advantage: float | None
    completion_tokens: int
    truncated: bool
    scores: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    explanations: dict[str, str] = field(default_factory=dict)


@dataclass
class GroupRecord:
    """One prompt at one step and the completions sampled for it."""

    prompt: str
    prompt_index: int | None
    columns: dict[str, Any]
    rollouts: list[RolloutRecord]


def _disk_full_message(path: str, exc: BaseException) -> str:
    return (
        f"The disk holding {path} is full ({exc}). Free some space, then resume the run with "
        "`rl-studio-engine resume RUN_ID --db WORKSPACE`; everything committed before this is kept."
    )


class Workspace:
    """One open workspace file."""

    def __init__(self, path: str | Path):
        self.path = str(Path(path).expanduser())
        parent = Path(self.path).parent
        if not parent.exists():
            parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = connect(self.path)
            # Checkpoint the WAL every ~64 MB instead of SQLite's 4 MB: the tail pages of the indexes are
            # rewritten (and the file synced) at every checkpoint, so fewer, larger ones write rollouts
            # faster: ~25% going to 16 MB, ~4% more going to 64 MB (benchmarks/store_throughput.py).
            self.conn.execute("PRAGMA wal_autocheckpoint = 16000")
            migrate(self.conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not an RL Studio workspace or is damaged ({exc}). "
                "Pass a new file name to create a workspace, or restore this one from a copy."
            ) from None
        self.db = sqlite_utils.Database(self.conn)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; turns a full disk into a StoreError that says what to do."""
        try:
            with self.conn:
                yield self.conn
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "full" in text or "disk i/o" in text:
                raise StoreError(_disk_full_message(self.path, exc)) from None
            raise
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise StoreError(_disk_full_message(self.path, exc)) from None
            raise

    # ---- runs ----------------------------------------------------------------------------------
    def create_run(
        self,
        name: str,
        algorithm: str,
        config: dict[str, Any],
        max_steps: int,
        config_path: str | None = None,
        rubric_version_id: int | None = None,
    ) -> int:
        now = time.time()
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs(name, status, algorithm, config, config_path, rubric_version_id, max_steps,"
                " created_at, updated_at) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (name, algorithm, json.dumps(config), config_path, rubric_version_id, max_steps, now, now),
            )
            return int(cur.lastrowid or 0)

    def run(self, run_id: int) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        cols = [d[0] for d in row.description]
        found = row.fetchone()
        if found is None:
            raise StoreError(
                f"There is no run {run_id} in {self.path}. `rl-studio-engine runs --db ...` lists them."
            )
        return dict(zip(cols, found, strict=True))

    def runs(self) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT id, name, status, algorithm, step, max_steps, error, created_at,"
                " finished_at FROM runs ORDER BY id"
            )
        )

    def update_run(self, run_id: int, **values: Any) -> None:
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self.transaction() as c:
            c.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values.values(), run_id))

    def set_status(self, run_id: int, status: str, error: str | None = None, **extra: Any) -> None:
        if status in ("stopped", "failed", "finished"):
            extra.setdefault("finished_at", time.time())
        if error is not None:
            extra["error"] = error
        self.update_run(run_id, status=status, **extra)

    # ---- metrics -------------------------------------------------------------------------------
    def write_metrics(self, run_id: int, step: int, values: dict[str, Any]) -> int:
        now = time.time()
        rows = [
            (run_id, step, key, _finite(v), now) for key, v in values.items() if isinstance(v, int | float)
        ]
        with self.transaction() as c:
            c.executemany("INSERT INTO metrics(run_id, step, key, value, time) VALUES (?, ?, ?, ?, ?)", rows)
            c.execute("UPDATE runs SET step = MAX(step, ?), updated_at = ? WHERE id = ?", (step, now, run_id))
        return len(rows)

    def metrics(self, run_id: int, key: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT step, key, value FROM metrics WHERE run_id = ?"
        args: tuple[Any, ...] = (run_id,)
        if key is not None:
            sql += " AND key = ?"
            args += (key,)
        return list(self.db.query(sql + " ORDER BY id", args))

    # ---- rollouts ------------------------------------------------------------------------------
    def write_rollouts(self, run_id: int, step: int, groups: Sequence[GroupRecord]) -> int:
        """Write groups with their rollouts and per-criterion scores in one transaction.

        Returns the id of the last rollout written (0 if none), for the `rollouts_written` event.
        """
        last_id = 0
        dumps = _compact_json
        with self.transaction() as c:
            group_id = self._next_id(c, "groups")
            rollout_id = self._next_id(c, "rollouts")
            first_id = rollout_id
            group_rows, rollout_rows = [], []
            for g in groups:
                rewards = [r.reward for r in g.rollouts if r.reward is not None and math.isfinite(r.reward)]
                mean = sum(rewards) / len(rewards) if rewards else None
                std = (
                    math.sqrt(sum((x - mean) ** 2 for x in rewards) / (len(rewards) - 1))
                    if mean is not None and len(rewards) > 1
                    else (0.0 if rewards else None)
                )
                group_rows.append(
                    (
                        group_id,
                        run_id,
                        step,
                        g.prompt_index,
                        g.prompt,
                        json.dumps(g.columns, default=str),
                        mean,
                        std,
                    )
                )
                for r in g.rollouts:
                    rollout_rows.append(
                        (
                            rollout_id,
                            run_id,
                            step,
                            group_id,
                            r.completion,
                            _finite(r.reward),
                            _finite(r.advantage),
                            r.completion_tokens,
                            int(r.truncated),
                            len(r.errors),
                            _scores_json(r.scores),
                            dumps(r.errors) if r.errors else None,
                            dumps(r.explanations) if r.explanations else None,
                        )
                    )
                    last_id = rollout_id
                    rollout_id += 1
                group_id += 1
            c.executemany(
                "INSERT INTO groups(id, run_id, step, prompt_index, prompt, columns, reward_mean, reward_std)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                group_rows,
            )
            c.executemany(
                "INSERT INTO rollouts(id, run_id, step, group_id, completion, reward, advantage,"
                " completion_tokens, truncated, error_count, scores_json, errors_json, explanations_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rollout_rows,
            )
            c.execute(
                "INSERT INTO rollouts_fts(rowid, completion) SELECT id, completion FROM rollouts"
                " WHERE id BETWEEN ? AND ?",
                (first_id, last_id),
            )
        return last_id

    @staticmethod
    def _next_id(c: sqlite3.Connection, table: str) -> int:
        """The next id of an AUTOINCREMENT table: past every id it ever held, deleted ones included."""
        row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        highest = c.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
        return max(int(row[0]) if row else 0, int(highest)) + 1

    def rollouts(self, run_id: int) -> Iterator[dict[str, Any]]:
        """Every rollout of a run in id order, with its prompt, scores and errors (for export)."""
        sql = (
            "SELECT r.id, r.step, r.group_id AS [group], g.prompt, r.completion, r.reward, r.advantage,"
            " r.completion_tokens, r.truncated FROM rollouts r JOIN groups g ON g.id = r.group_id"
            " WHERE r.run_id = ? AND r.id > ? ORDER BY r.id LIMIT 2000"
        )
        after = 0
        while True:
            page = list(self.db.query(sql, (run_id, after)))
            if not page:
                return
            ids = [row["id"] for row in page]
            marks = ",".join("?" * len(ids))
            scores: dict[int, dict[str, float | None]] = {i: {} for i in ids}
            errors: dict[int, dict[str, str]] = {i: {} for i in ids}
            for rid, name, value, error in self.conn.execute(
                f"SELECT rollout_id, criterion, value, error FROM scores WHERE rollout_id IN ({marks})", ids
            ):
                scores[rid][name] = value
                if error is not None:
                    errors[rid][name] = error
            for row in page:
                row["truncated"] = bool(row["truncated"])
                row["scores"] = scores[row["id"]]
                row["errors"] = errors[row["id"]]
                yield row
            after = ids[-1]

    def max_rollout_id(self, run_id: int) -> int:
        return int(
            self.conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM rollouts WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
        )

    # ---- evaluation ----------------------------------------------------------------------------
    def write_evaluation(
        self, run_id: int, step: int, samples: Iterable[dict[str, Any]], summary: dict[str, float | None]
    ) -> None:
        now = time.time()
        rows = [
            (
                run_id,
                step,
                s.get("prompt_index"),
                s["prompt"],
                s["completion"],
                _finite(s["reward"]),
                json.dumps(s["scores"]),
                json.dumps(s["errors"]),
            )
            for s in samples
        ]
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO evaluations(run_id, step, prompt_index, prompt, completion, reward, scores, errors)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            c.executemany(
                "INSERT INTO metrics(run_id, step, key, value, time) VALUES (?, ?, ?, ?, ?)",
                [(run_id, step, key, _finite(v), now) for key, v in summary.items()],
            )

    # ---- checkpoints ---------------------------------------------------------------------------
    def add_checkpoint(self, run_id: int, step: int, path: str) -> int:
        """Record a checkpoint as complete. Call only after every file of it is on disk."""
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO checkpoints(run_id, step, path, complete, created_at) VALUES (?, ?, ?, 1, ?)",
                (run_id, step, path, time.time()),
            )
            return int(cur.lastrowid or 0)

    def forget_checkpoint(self, checkpoint_id: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE checkpoints SET complete = 0 WHERE id = ?", (checkpoint_id,))

    def checkpoints(self, run_id: int, complete_only: bool = True) -> list[dict[str, Any]]:
        sql = "SELECT id, step, path, complete, created_at FROM checkpoints WHERE run_id = ?"
        if complete_only:
            sql += " AND complete = 1"
        return list(self.db.query(sql + " ORDER BY step, id", (run_id,)))

    def truncate_after(self, run_id: int, step: int) -> None:
        """Forget everything a run recorded after `step` (before resuming from a checkpoint at `step`)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO rollouts_fts(rollouts_fts, rowid, completion)"
                " SELECT 'delete', id, completion FROM rollouts WHERE run_id = ? AND step > ?",
                (run_id, step),
            )
            c.execute(
                "DELETE FROM labels WHERE rollout_id IN (SELECT id FROM rollouts WHERE run_id = ? AND step > ?)",
                (run_id, step),
            )
            for table in ("rollouts", "groups", "metrics", "evaluations"):
                c.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))
            c.execute("UPDATE checkpoints SET complete = 0 WHERE run_id = ? AND step > ?", (run_id, step))
            c.execute("UPDATE runs SET step = ? WHERE id = ?", (step, run_id))

    # ---- events --------------------------------------------------------------------------------
    def log_event(
        self, run_id: int | None, type_: str, payload: dict[str, Any], at: float | None = None
    ) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO events(run_id, time, type, payload) VALUES (?, ?, ?, ?)",
                (run_id, at or time.time(), type_, json.dumps(payload, default=str)),
            )

    # ---- authored things -----------------------------------------------------------------------
    def save_rubric_version(self, name: str, toml_text: str, sources: dict[str, str], note: str = "") -> int:
        """Store a rubric version, immutable; an identical one already stored is reused."""
        with self.transaction() as c:
            return store_version(c, name, toml_text, sources, note).version_id

    def register_dataset(self, path: str, rows: int, columns: Sequence[str], name: str | None = None) -> int:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO datasets(name, path, rows, columns, created_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(path) DO UPDATE SET rows = excluded.rows, columns = excluded.columns",
                (name or Path(path).stem, path, rows, json.dumps(list(columns)), time.time()),
            )
            return int(c.execute("SELECT id FROM datasets WHERE path = ?", (path,)).fetchone()[0])


class FollowerWorkspace(Workspace):
    """The workspace as seen by a non-main process of a multi-process run (`accelerate launch`).

    Only the main process records; the others read the run they were told about and write nothing,
    so every row is written exactly once whatever the number of processes.
    """

    def create_run(self, *args: Any, **kwargs: Any) -> int:
        raise RuntimeError("only the main process creates runs")

    def update_run(self, run_id: int, **values: Any) -> None:
        return None

    def write_metrics(self, run_id: int, step: int, values: dict[str, Any]) -> int:
        return 0

    def write_rollouts(self, run_id: int, step: int, groups: Sequence[GroupRecord]) -> int:
        return 0

    def write_evaluation(self, *args: Any, **kwargs: Any) -> None:
        return None

    def add_checkpoint(self, run_id: int, step: int, path: str) -> int:
        return 0

    def forget_checkpoint(self, checkpoint_id: int) -> None:
        return None

    def truncate_after(self, run_id: int, step: int) -> None:
        return None

    def log_event(self, *args: Any, **kwargs: Any) -> None:
        return None

    def save_rubric_version(self, name: str, toml_text: str, sources: dict[str, str], note: str = "") -> int:
        return 0

    def register_dataset(self, *args: Any, **kwargs: Any) -> int:
        return 0
