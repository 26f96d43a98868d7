"""The workspace access layer: one SQLite file (WAL) through sqlite-utils, written in batches.

The engine is the only writer of a run's rows. Every write is one short transaction, committed before
the event that announces it is emitted, so a reader that sees an event always finds the rows, and a
kill -9 loses nothing that was announced.
"""

from __future__ import annotations

import errno
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.contract.datasets import register_dataset
from engine.contract.rollout_rows import (
    ROLLOUT_FIELDS,
    column_name,
    dataset_columns,
    group_indexer,
    run_columns,
    with_columns,
)
from engine.contract.rubric_versions import store_version
from engine.contract.run_status import ACTIVE_STATUSES, holder_alive
from engine.contract.schema import (
    SchemaTooNewError,
    connect,
    damaged_message,
    integrity_problem,
    is_damage_error,
    migrate,
)
from engine.envs.trajectory import Trajectory, transcript


class StoreError(RuntimeError):
    """The workspace could not be read or written; the message says why and what to do."""


class DiskFullError(StoreError):
    """The disk holding the workspace is full. ``path`` is the workspace, ``detail`` the OS's words."""

    def __init__(self, path: str, detail: object):
        self.path, self.detail = path, str(detail)
        super().__init__(
            f"The disk holding {path} is full ({detail}). Free some space; everything committed before "
            "this is kept."
        )


class DamagedWorkspaceError(StoreError):
    """The workspace file is damaged; nothing more is written into it."""


class RunBusyError(StoreError):
    """Another live process holds the run."""


_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_strict_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=str).encode


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None, so it encodes as standard JSON."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def strict_json(value: Any) -> str:
    """JSON with null where a number is not finite (never `NaN`/`Infinity`, which JSON does not have)."""
    try:
        return _strict_json(value)
    except ValueError:
        return _strict_json(json_safe(value))


def _nonfinite_errors(scores: dict[str, Any], errors: dict[str, str]) -> dict[str, str]:
    """A score that is NaN or infinite with no error of its own gets one: it is stored as null."""
    added = None
    for name, value in scores.items():
        if type(value) is float and not math.isfinite(value) and name not in errors:
            added = added if added is not None else dict(errors)
            added[name] = f"returned {value!r}, not a finite number"
    return errors if added is None else added


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
    trajectory: dict[str, Any] | None = None
    """An agent rollout's trajectory (Trajectory.as_dict() plus its prompt messages); None single-turn."""
    turns: int | None = None
    ended: str | None = None
    token_stats: bytes | None = None
    """engine.contract.token_stats.pack(...) of the completion's tokens; None when not recorded."""
    value: float | None = None
    """PPO: the critic's value at the completion's first token (schema migration 7); None without a critic."""
    value_target: float | None = None
    """PPO: the return there, the value head's regression target; None without a critic."""


def with_trajectory(record: RolloutRecord, trajectory: Trajectory, prompt: Any) -> RolloutRecord:
    """The record of an agent rollout: its completion is the episode's transcript (so full-text search
    finds tool calls and results), its token count the model's tokens over all turns, and it carries the
    trajectory, its number of turns and how it ended."""
    data = trajectory.as_dict()
    if isinstance(prompt, list):
        data["prompt"] = prompt
    counts = [t.tokens for t in trajectory.turns]
    record.completion = transcript(trajectory)
    if counts and all(c is not None for c in counts):
        record.completion_tokens = sum(c for c in counts if c is not None)
    record.trajectory, record.turns, record.ended = data, trajectory.num_turns, trajectory.ended
    return record


@dataclass
class GroupRecord:
    """One prompt at one step and the completions sampled for it."""

    prompt: str
    prompt_index: int | None
    columns: dict[str, Any]
    rollouts: list[RolloutRecord]


def is_disk_full(exc: BaseException, path: str | Path | None = None) -> bool:
    """Whether `exc`, or anything it was raised from, says the disk is full.

    Libraries wrap ENOSPC in their own types: safetensors raises `SafetensorError("... os error 28 ...")`,
    torch.save a `RuntimeError("... file write failed")`, SQLite "database or disk is full". So this walks
    `__cause__`/`__context__` and reads messages; a bare write failure counts when `path`'s disk is nearly
    full.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    write_failed = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(current).lower()
        if any(
            words in text
            for words in ("no space left", "os error 28", "errno 28", "storagefull", "disk is full", "quota")
        ):
            return True
        write_failed = write_failed or "write failed" in text or "unexpected pos" in text
        current = current.__cause__ or current.__context__
    if write_failed and path is not None:
        import shutil

        probe = Path(path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return shutil.disk_usage(probe).free < 64 * 1024 * 1024
        except OSError:
            return False
    return False


class Workspace:
    """One open workspace file.

    `create=False` refuses a path that does not exist instead of creating an empty workspace there.
    `verify=True` (the engine's runs) checks the file with `PRAGMA quick_check` first and refuses a
    damaged one; a damaged page met later, by any query, raises DamagedWorkspaceError too.
    """

    def __init__(self, path: str | Path, create: bool = True, verify: bool = False):
        self.path = str(Path(path).expanduser())
        self._lock = threading.RLock()  # the recorder thread and the training thread share the connection
        self._depth = 0
        self.damaged = False  # set when a query meets a damaged page: nothing more is written then
        if not create and not Path(self.path).is_file():
            raise StoreError(
                f"The workspace {self.path} does not exist. Pass the path of an existing workspace "
                "(`rl-studio-engine runs --db FILE` lists a workspace's runs)."
            )
        parent = Path(self.path).parent
        if not parent.exists():
            parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = connect(self.path)
            # Checkpoint the WAL every ~64 MB instead of SQLite's 4 MB: the tail pages of the indexes are
            # rewritten (and the file synced) at every checkpoint, so fewer, larger ones write rollouts
            # faster: ~25% going to 16 MB, ~4% more going to 64 MB (benchmarks/store_throughput.py).
            self.conn.execute("PRAGMA wal_autocheckpoint = 16000")
            if verify:
                problem = integrity_problem(self.conn)
                if problem is not None:
                    raise DamagedWorkspaceError(damaged_message(self.path, problem))
            migrate(self.conn)
        except SchemaTooNewError as exc:
            raise StoreError(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            if is_damage_error(exc) and "file is not a database" not in str(exc):
                raise DamagedWorkspaceError(damaged_message(self.path, exc)) from None
            if is_disk_full(exc):
                raise DiskFullError(self.path, exc) from None
            raise StoreError(
                f"{self.path} is not an RL Studio workspace or is damaged ({exc}). "
                "Pass a new file name to create a workspace, or restore this one from a copy."
            ) from None
        self.db = sqlite_utils.Database(self.conn)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, opened with BEGIN IMMEDIATE: it holds the write lock from its first read,
        so ids and checks read inside it stay true until it commits, whatever other processes write.
        A full disk becomes a DiskFullError and a damaged file a DamagedWorkspaceError, both saying what
        to do. Re-entrant within a thread (an inner block joins the outer transaction)."""
        with self._lock:
            if self.damaged:
                raise DamagedWorkspaceError(damaged_message(self.path, "a damaged page was met earlier"))
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self._depth = 1
                try:
                    with self.conn:
                        yield self.conn
                finally:
                    self._depth = 0
            except sqlite3.DatabaseError as exc:
                if is_damage_error(exc):
                    self.damaged = True
                    raise DamagedWorkspaceError(damaged_message(self.path, exc)) from None
                if is_disk_full(exc) or "disk i/o" in str(exc).lower():
                    raise DiskFullError(self.path, exc) from None
                raise
            except OSError as exc:
                if is_disk_full(exc):
                    raise DiskFullError(self.path, exc) from None
                raise

    # ---- the run's lease: one engine per run ----------------------------------------------------
    def take_lease(self, run_id: int, pid: int, token: str) -> dict[str, Any]:
        """Make this process the run's only engine, or raise RunBusyError naming the one that is.

        Read and written in one IMMEDIATE transaction, so of two engines started together exactly one
        wins. A holder that died (kill -9, power cut) holds nothing: its pid is gone, or now belongs to a
        process with another start time.
        """
        with self.transaction():
            run = self.run(run_id)
            holder, held = run["pid"], run.get("lease_token")
            if holder and holder != pid:
                if held and holder_alive(holder, held):
                    raise RunBusyError(
                        f"Run {run_id} is being trained by process {holder} (status {run['status']}). "
                        "Only one engine may train a run: stop that process first "
                        f"(`kill {holder}` stops it gracefully with a checkpoint)."
                    )
                if not held and run["status"] in ACTIVE_STATUSES and holder_alive(holder, None):
                    raise RunBusyError(f"Run {run_id} is still training (process {holder}). Stop it first.")
            self.conn.execute(
                "UPDATE runs SET pid = ?, lease_token = ?, updated_at = ? WHERE id = ?",
                (pid, token, time.time(), run_id),
            )
            run.update(pid=pid, lease_token=token)
            return run

    def release_lease(self, run_id: int, pid: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET lease_token = NULL WHERE id = ? AND pid = ?", (run_id, pid))

    # ---- runs ----------------------------------------------------------------------------------
    def create_run(
        self,
        name: str,
        algorithm: str,
        config: dict[str, Any],
        max_steps: int,
        config_path: str | None = None,
        rubric_version_id: int | None = None,
        lease: tuple[int, str] | None = None,
    ) -> int:
        """Create a run, `queued`; with `lease` (pid, token), held by that process from its first moment."""
        now = time.time()
        pid, token = lease or (None, None)
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs(name, status, algorithm, config, config_path, rubric_version_id, max_steps,"
                " created_at, updated_at, pid, lease_token) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    algorithm,
                    strict_json(config),
                    config_path,
                    rubric_version_id,
                    max_steps,
                    now,
                    now,
                    pid,
                    token,
                ),
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
        with self.transaction() as c:  # ids are read under the write lock: no other writer can take them
            group_id = self._next_id(c, "groups")
            rollout_id = self._next_id(c, "rollouts")
            first_id = rollout_id
            group_rows, rollout_rows, agent_rows, token_rows = [], [], [], []
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
                        strict_json(g.columns),
                        mean,
                        std,
                    )
                )
                for r in g.rollouts:
                    errors = _nonfinite_errors(r.scores, r.errors)
                    row = (
                        rollout_id,
                        run_id,
                        step,
                        group_id,
                        r.completion,
                        _finite(r.reward),
                        _finite(r.advantage),
                        r.completion_tokens,
                        int(r.truncated),
                        len(errors),
                        _scores_json(r.scores),
                        dumps(errors) if errors else None,
                        dumps(r.explanations) if r.explanations else None,
                        _finite(r.value),
                        _finite(r.value_target),
                    )
                    if r.trajectory is None:
                        rollout_rows.append(row)
                    else:  # an agent rollout (schema migration 4); single-turn rows take the path above
                        agent_rows.append((*row, strict_json(r.trajectory), r.turns, r.ended))
                    if r.token_stats is not None:  # token-level evidence (schema migration 6)
                        token_rows.append((rollout_id, r.token_stats))
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
                " completion_tokens, truncated, error_count, scores_json, errors_json, explanations_json,"
                " value, value_target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rollout_rows,
            )
            if agent_rows:
                c.executemany(
                    "INSERT INTO rollouts(id, run_id, step, group_id, completion, reward, advantage,"
                    " completion_tokens, truncated, error_count, scores_json, errors_json, explanations_json,"
                    " value, value_target, trajectory, turns, ended)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    agent_rows,
                )
            if token_rows:
                c.executemany("INSERT INTO token_stats(rollout_id, data) VALUES (?, ?)", token_rows)
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
        """Every rollout of a run in id order, for export: the fields of
        engine.contract.rollout_rows.ROLLOUT_FIELDS, then the group's dataset columns."""
        sql = (
            "SELECT r.id, r.run_id, r.step, r.group_id AS [group], g.prompt_index, g.prompt, r.completion,"
            " r.reward, r.advantage, r.value, r.value_target, r.completion_tokens, r.truncated, g.columns"
            " FROM rollouts r JOIN groups g ON g.id = r.group_id"
            " WHERE r.run_id = ? AND r.id > ? ORDER BY r.id LIMIT 2000"
        )
        group_index = group_indexer(self.conn, run_id)
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
                rid = row["id"]
                out = {name: row.get(name) for name in ROLLOUT_FIELDS}
                out.update(
                    group_index=group_index(row["group"]),
                    truncated=bool(row["truncated"]),
                    scores=scores[rid],
                    errors=errors[rid],
                )
                yield with_columns(out, dataset_columns(row["columns"]))
            after = ids[-1]

    def trajectories(self, run_id: int) -> Iterator[dict[str, Any]]:
        """Every agent rollout of a run in id order, for `export --what trajectories`: its ids, reward,
        scores, turns, how it ended, and the episode as OpenAI chat messages (the prompt's messages, then
        assistant messages with `tool_calls` and `tool` messages with `tool_call_id`)."""
        sql = (
            "SELECT r.id, r.run_id, r.step, r.group_id AS [group], g.prompt_index, r.reward, r.turns, r.ended,"
            " r.scores_json, r.errors_json, r.trajectory"
            " FROM rollouts r JOIN groups g ON g.id = r.group_id"
            " WHERE r.run_id = ? AND r.id > ? AND r.trajectory IS NOT NULL ORDER BY r.id LIMIT 500"
        )
        group_index = group_indexer(self.conn, run_id)
        after = 0
        while True:
            page = list(self.db.query(sql, (run_id, after)))
            if not page:
                return
            for row in page:
                data = json.loads(row["trajectory"])
                prompt = [dict(m) for m in data.pop("prompt", None) or []]
                trajectory = Trajectory.from_dict(data)
                if prompt and trajectory.task:  # TRL appends reset's text to the last user message
                    prompt[-1]["content"] = f"{prompt[-1].get('content', '')}{trajectory.task}"
                yield {
                    "id": row["id"],
                    "run_id": row["run_id"],
                    "step": row["step"],
                    "group": row["group"],
                    "group_index": group_index(row["group"]),
                    "prompt_index": row["prompt_index"],
                    "reward": row["reward"],
                    "scores": json.loads(row["scores_json"] or "{}"),
                    "errors": json.loads(row["errors_json"] or "{}"),
                    "env_reward": trajectory.reward,
                    "turns": row["turns"],
                    "ended": row["ended"],
                    "messages": prompt + trajectory.openai_messages(),
                }
            after = page[-1]["id"]

    def rollout_fields(self, run_id: int) -> list[str]:
        """Every key `rollouts(run_id)` may give, in order (a CSV header)."""
        return [*ROLLOUT_FIELDS, *(column_name(c, ROLLOUT_FIELDS) for c in run_columns(self.conn, run_id))]

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
                _scores_json(s["scores"]) or "{}",
                strict_json(_nonfinite_errors(s["scores"], s["errors"])),
                strict_json(s["trajectory"]) if s.get("trajectory") is not None else None,
            )
            for s in samples
        ]
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO evaluations(run_id, step, prompt_index, prompt, completion, reward, scores, errors,"
                " trajectory) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        """Forget everything a run recorded after `step` (before resuming from a checkpoint at `step`;
        -1 forgets everything, the step-0 evaluation included, for a run that starts over)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO rollouts_fts(rollouts_fts, rowid, completion)"
                " SELECT 'delete', id, completion FROM rollouts WHERE run_id = ? AND step > ?",
                (run_id, step),
            )
            for table in ("labels", "token_stats"):
                c.execute(
                    f"DELETE FROM {table} WHERE rollout_id IN (SELECT id FROM rollouts WHERE run_id = ? AND step > ?)",
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
                (run_id, at or time.time(), type_, strict_json(payload)),
            )

    # ---- authored things -----------------------------------------------------------------------
    def save_rubric_version(self, name: str, toml_text: str, sources: dict[str, str], note: str = "") -> int:
        """Store a rubric version, immutable; an identical one already stored is reused."""
        with self.transaction() as c:
            return store_version(c, name, toml_text, sources, note).version_id

    def register_dataset(self, path: str, rows: int, columns: Sequence[str], name: str | None = None) -> int:
        with self.transaction() as c:
            return register_dataset(c, path, rows, columns, name)


class FollowerWorkspace(Workspace):
    """The workspace as seen by a non-main process of a multi-process run (`accelerate launch`).

    Only the main process records; the others read the run they were told about and write nothing,
    so every row is written exactly once whatever the number of processes.
    """

    def create_run(self, *args: Any, **kwargs: Any) -> int:
        raise RuntimeError("only the main process creates runs")

    def take_lease(self, run_id: int, pid: int, token: str) -> dict[str, Any]:
        return self.run(run_id)  # the main process holds the run for all of them

    def release_lease(self, run_id: int, pid: int) -> None:
        return None

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
