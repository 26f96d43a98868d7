"""The workspace schema: one SQLite file holds authored things and everything runs produce.

Both processes read this module: the engine writes through engine.store, the studio reads with plain
sqlite3 queries. Migrations are a list of SQL scripts; ``meta.schema_version`` says how many have run.
Append new migrations at the end; never edit one that has shipped.

Ids of run records are AUTOINCREMENT: never reused, even after a resume forgets the steps after its
checkpoint, so a reader that follows ``WHERE id > ?`` never misses a row.

Layout of a run's records
-------------------------
runs        one row per run; ``config`` is the full config as JSON, recorded at the start.
metrics     (run_id, step, key, value): TRL's slash-separated names (``rewards/correct/mean``,
            ``kl``, ``loss``, ``eval/reward/mean``, ...).
groups      one prompt at one step: the prompt text, its dataset row, the group's reward mean and std.
rollouts    one completion: its group, total reward, advantage, token count, truncation, error count,
            and per criterion its score (``scores_json``: {criterion: value | null}; null = not
            applicable or failed), error message and judge explanation (``errors_json``,
            ``explanations_json``: {criterion: text}, NULL when there is none).
            An agent rollout adds ``trajectory`` (JSON), ``turns`` and ``ended`` (migration 4).
            PPO rollouts add the critic's ``value`` and the return ``value_target`` (migration 7).
scores      a view: (rollout_id, criterion, value, error, explanation), a row per criterion of a rollout.
evaluations held-out samples scored at a step.
checkpoints complete = 1 only after every file was written (write, then mark).
events      everything the engine announced, so a late reader can replay a run's history.
token_stats one blob per rollout (migration 6): its tokens and per-token log-prob, entropy, loss share,
            KL; the format is engine/contract/token_stats.py.
alerts      what the training-time monitor raised: step, kind, severity, message, evidence (JSON: the
            numbers that tripped it, example rollout ids) and whether the user acknowledged it.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION_KEY = "schema_version"

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);

    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        algorithm TEXT NOT NULL,
        config TEXT NOT NULL,
        config_path TEXT,
        rubric_version_id INTEGER,
        run_dir TEXT,
        step INTEGER NOT NULL DEFAULT 0,
        max_steps INTEGER NOT NULL DEFAULT 0,
        pid INTEGER,
        error TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        updated_at REAL,
        finished_at REAL
    );

    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        step INTEGER NOT NULL,
        key TEXT NOT NULL,
        value REAL,
        time REAL NOT NULL
    );
    CREATE INDEX metrics_run_key_step ON metrics(run_id, key, step);

    CREATE TABLE groups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        step INTEGER NOT NULL,
        prompt_index INTEGER,
        prompt TEXT NOT NULL,
        columns TEXT,
        reward_mean REAL,
        reward_std REAL
    );
    CREATE INDEX groups_run_step ON groups(run_id, step);
    CREATE INDEX groups_run_prompt ON groups(run_id, prompt_index, step);

    CREATE TABLE rollouts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        step INTEGER NOT NULL,
        group_id INTEGER NOT NULL REFERENCES groups(id),
        completion TEXT NOT NULL,
        reward REAL,
        advantage REAL,
        completion_tokens INTEGER,
        truncated INTEGER NOT NULL DEFAULT 0,
        error_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX rollouts_run_step ON rollouts(run_id, step);
    CREATE INDEX rollouts_group ON rollouts(group_id);
    -- Within a run, ids grow with the step, so (step, id) is the one order readers page in: it needs no sort.
    CREATE INDEX rollouts_errors ON rollouts(run_id, step) WHERE error_count > 0;
    CREATE INDEX rollouts_truncated ON rollouts(run_id, step) WHERE truncated = 1;

    CREATE TABLE scores (
        rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
        criterion TEXT NOT NULL,
        value REAL,
        error TEXT,
        explanation TEXT,  -- a judge's reason for its score
        PRIMARY KEY (rollout_id, criterion)
    ) WITHOUT ROWID;

    -- Full-text search over completions for the inspector (external content: no second copy).
    CREATE VIRTUAL TABLE rollouts_fts USING fts5(completion, content='rollouts', content_rowid='id');

    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        step INTEGER NOT NULL,
        prompt_index INTEGER,
        prompt TEXT NOT NULL,
        completion TEXT NOT NULL,
        reward REAL,
        scores TEXT,
        errors TEXT
    );
    CREATE INDEX evaluations_run_step ON evaluations(run_id, step);

    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        step INTEGER NOT NULL,
        path TEXT NOT NULL,
        complete INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX checkpoints_run ON checkpoints(run_id, step);

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        run_id INTEGER,
        time REAL NOT NULL,
        type TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX events_run ON events(run_id, id);

    CREATE TABLE rubrics (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE rubric_versions (
        id INTEGER PRIMARY KEY,
        rubric_id INTEGER NOT NULL REFERENCES rubrics(id),
        version INTEGER NOT NULL,
        toml TEXT NOT NULL,
        sources TEXT,
        sha256 TEXT NOT NULL,
        note TEXT,
        created_at REAL NOT NULL,
        UNIQUE (rubric_id, version)
    );

    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        rows INTEGER,
        columns TEXT,
        created_at REAL NOT NULL
    );

    CREATE TABLE labels (
        rollout_id INTEGER PRIMARY KEY REFERENCES rollouts(id),
        label INTEGER NOT NULL DEFAULT 0,
        note TEXT,
        updated_at REAL NOT NULL
    );

    CREATE TABLE judge_cache (
        key TEXT PRIMARY KEY,
        score REAL,
        explanation TEXT,
        created_at REAL NOT NULL
    );
    """,
    # 2: per-criterion scores move into their rollout's row, as JSON objects: one row written per
    # rollout instead of one per criterion (the rollout write rate was 0.8 of its goal, and score rows
    # were a third of the cost). Readers keep the same (rollout_id, criterion, ...) rows through a view.
    """
    ALTER TABLE rollouts ADD COLUMN scores_json TEXT;
    ALTER TABLE rollouts ADD COLUMN errors_json TEXT;
    ALTER TABLE rollouts ADD COLUMN explanations_json TEXT;

    UPDATE rollouts SET
        scores_json = (SELECT json_group_object(criterion, value) FROM scores WHERE rollout_id = rollouts.id),
        errors_json = (
            SELECT json_group_object(criterion, error) FROM scores
            WHERE rollout_id = rollouts.id AND error IS NOT NULL HAVING count(*) > 0
        ),
        explanations_json = (
            SELECT json_group_object(criterion, explanation) FROM scores
            WHERE rollout_id = rollouts.id AND explanation IS NOT NULL HAVING count(*) > 0
        )
    WHERE id IN (SELECT rollout_id FROM scores);

    DROP TABLE scores;

    CREATE VIEW scores(rollout_id, criterion, value, error, explanation) AS
    SELECT r.id, s.key, s.value,
        (SELECT e.value FROM json_each(r.errors_json) e WHERE e.key = s.key),
        (SELECT x.value FROM json_each(r.explanations_json) x WHERE x.key = s.key)
    FROM rollouts r, json_each(r.scores_json) s;
    """,
    # 3: one engine per run. ``pid`` and ``lease_token`` (the holder's process start time) name the process
    # that trains a run; it is taken inside a write transaction, and a holder whose process is gone (or
    # whose pid now belongs to another process) holds nothing. See engine/contract/run_status.py.
    """
    ALTER TABLE runs ADD COLUMN lease_token TEXT;
    """,
    # 4: agent rollouts. A rollout of a run with an [environment] keeps its trajectory as JSON (each turn's
    # text, token count and tool calls with their arguments as JSON, result, valid or not and error; the
    # environment's reward; how it ended), its number of turns and how it ended (answered, max_turns,
    # length, error). Single-turn rollouts leave the three NULL. An agent rollout's `completion` is the
    # episode's transcript, so the full-text index covers its tool calls and results. Held-out samples
    # of an agent run keep their trajectory too.
    """
    ALTER TABLE rollouts ADD COLUMN trajectory TEXT;
    ALTER TABLE rollouts ADD COLUMN turns INTEGER;
    ALTER TABLE rollouts ADD COLUMN ended TEXT;
    ALTER TABLE evaluations ADD COLUMN trajectory TEXT;
    CREATE INDEX rollouts_ended ON rollouts(run_id, ended, step) WHERE ended IS NOT NULL;
    """,
    # 5: training-time alerts (engine/monitor.py, engine/alerts_store.py). ``evidence`` is JSON: the numbers
    # that tripped the detector and example rollout ids; the studio and `alerts ack` set ``acknowledged``.
    """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        step INTEGER NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        evidence TEXT NOT NULL,
        acknowledged INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX alerts_run_step ON alerts(run_id, step);
    """,
    # 6: token-level evidence. One blob per rollout (engine/contract/token_stats.py: the token ids and texts,
    # and per token its log-prob under the sampling policy, entropy, loss share, KL against the reference,
    # ...), written in the rollout's transaction when [training] record_token_stats is on. A table of its
    # own keyed by rollout id, so the rollouts table, which the inspector scans, stays narrow.
    """
    CREATE TABLE token_stats (
        rollout_id INTEGER PRIMARY KEY REFERENCES rollouts(id),
        data BLOB NOT NULL
    );
    """,
    # 7: PPO's critic, per rollout: ``value`` is the value head's estimate and ``value_target`` the return
    # (GAE's target for the value head) at the completion's first token, beside ``advantage`` there.
    # NULL for algorithms without a critic (GRPO) and for rollouts written before. Queries that join
    # json_each (whose own column is named ``value``) qualify them: ``r.value``.
    """
    ALTER TABLE rollouts ADD COLUMN value REAL;
    ALTER TABLE rollouts ADD COLUMN value_target REAL;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

DAMAGED_MARKERS = ("malformed", "file is not a database", "disk image", "corrupt")
"""Words in SQLite's errors for a damaged file ("database disk image is malformed", ...)."""


class SchemaTooNewError(RuntimeError):
    """The workspace was written by a newer RL Studio."""


def is_damage_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and any(m in str(exc).lower() for m in DAMAGED_MARKERS)


def damaged_message(path: str, detail: object) -> str:
    """What to say about a damaged workspace file, and how to get its data back."""
    fixed = str(path).removesuffix(".sqlite") + "-recovered.sqlite"
    return (
        f"The workspace {path} is damaged ({detail}); nothing more will be written into it. "
        f'Recover what it holds into a new file with `sqlite3 "{path}" ".recover" | sqlite3 "{fixed}"` '
        "and open that one (or restore the file from a copy)."
    )


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    """None when ``PRAGMA quick_check`` finds the file sound, else its first complaint.

    quick_check reads every page once (no index cross-checks): about a second per GB on an SSD.
    """
    try:
        rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.DatabaseError as exc:
        if "file is not a database" in str(exc):
            raise  # not SQLite at all (or its header is gone): the caller says "not a workspace"
        return str(exc)
    if [tuple(r) for r in rows] == [("ok",)]:
        return None
    return "; ".join(str(r[0]) for r in rows)


RUN_COLUMNS = ("id", "name", "status", "algorithm", "step", "max_steps", "error", "created_at", "finished_at")


def connect(path: str, readonly: bool = False, timeout_s: float = 30.0) -> sqlite3.Connection:
    """Open a workspace connection the way every part of RL Studio does: WAL, busy timeout.

    A read-only connection (the studio's readers) never migrates and never blocks the engine's writes.
    """
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout_s, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, timeout=timeout_s, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key=?", (SCHEMA_VERSION_KEY,)).fetchone()
    return int(row[0]) if row else 0


def _statements(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [st for st in statements if st.strip(" ;\n")]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring a workspace to SCHEMA_VERSION. Returns the version it had before.

    Safe when several processes open a new workspace at once: each migration runs in one IMMEDIATE
    transaction that re-reads the version after taking the write lock, version bump included, so a
    crash leaves the previous version whole and a second process never repeats a migration.
    """
    before = schema_version(conn)
    if before > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"This workspace has schema version {before}, newer than this RL Studio ({SCHEMA_VERSION}). "
            "Upgrade RL Studio to open it."
        )
    if before == SCHEMA_VERSION:
        return before
    saved_isolation = conn.isolation_level
    conn.isolation_level = None  # we issue BEGIN/COMMIT ourselves
    try:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = schema_version(conn)
                if version >= SCHEMA_VERSION:
                    conn.execute("COMMIT")
                    break
                for statement in _statements(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (SCHEMA_VERSION_KEY, str(version + 1)),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    finally:
        conn.isolation_level = saved_isolation
    return before
