"""The rollout inspector's reads: filters turned into SQL, and pages read by keyset, never by OFFSET.

Plain Python over sqlite3 (no Qt), so tests, the benchmark and the inspector's worker threads share it.

Order and cursor
----------------
The inspector lists a run's rollouts in ``(step, id)`` order. Within a run, ids grow with the step (the
engine writes a step in one transaction and ids are never reused, see engine.contract.schema), so that
order is plain id order and a single id is a complete cursor: a page is "the next ``limit`` matching
rows with ``after < id <= upto``", where ``upto`` is the run's last id when the page was asked for.
Rows that arrive later have larger ids, so following a live run is the same query from the last cursor.

Drives
------
Each filter picks the cheapest table to walk (``Plan.drive``); the other filters become predicates:

- ``labels``: a label filter walks the few labelled rows (``labels.rollout_id`` is their rowid);
- ``fts``: a search walks the full-text index (``rollouts_fts``) in rowid order;
- ``errors`` / ``truncated``: the partial indexes hold only those rows;
- ``rows``: the rollouts table itself, in rowid windows. A filter that no index serves (a reward range,
  zero-std groups) may have to look at many rows to find a page, so the scan goes in windows of
  ``SCAN_WINDOW`` ids: each window is one short query, and the caller sees rows (and progress) as each
  window ends instead of after the whole scan.
"""

from __future__ import annotations

import re
import sqlite3
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.contract.trajectory import SUCCESS_REWARD

ZERO_STD = 1e-8
"""A group whose reward std is at most this had no learning signal (TRL's ``isclose(std, 0)``)."""
PAGE_ROWS = 250
SCAN_WINDOW = 40_000
PREVIEW_CHARS = 300
LABELS = ("any", "good", "bad", "labelled", "unlabelled")
OUTCOMES = ("any", "succeeded", "failed")
"""Agent runs: the environment reward at least engine.contract.trajectory.SUCCESS_REWARD, or not."""


@dataclass(frozen=True)
class RolloutFilter:
    """What the inspector shows. The defaults show every rollout of the run."""

    step_min: int | None = None
    step_max: int | None = None
    reward_min: float | None = None
    reward_max: float | None = None
    errors_only: bool = False
    truncated_only: bool = False
    zero_std_only: bool = False
    label: str = "any"
    """One of LABELS: good (thumbs up), bad (thumbs down), labelled (either, or a note), unlabelled."""
    search: str = ""
    """Full-text search over completions: words (whole words; ``word*`` for a prefix), "a phrase"."""
    # ---- agent runs (the trajectory columns of migration 4) ----
    outcome: str = "any"
    """One of OUTCOMES."""
    invalid_calls_only: bool = False
    """Only trajectories with a malformed tool call."""
    max_turns_only: bool = False
    """Only trajectories that were still calling tools when the turns ran out."""
    tool: str = ""
    """Only trajectories that called this tool."""
    tier: str = ""
    """Only rollouts whose dataset row has this `tier`."""
    ids: tuple[int, ...] = ()
    """Only these rollouts (examples picked by the "where agents fail" view)."""

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label filter {self.label!r} is not one of {', '.join(LABELS)}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome filter {self.outcome!r} is not one of {', '.join(OUTCOMES)}")

    @property
    def is_default(self) -> bool:
        return self == RolloutFilter()

    def describe(self) -> str:
        """A short human summary, e.g. ``steps 10–20 · reward ≥ 0.5 · "answer"``."""
        parts = []
        if self.step_min is not None or self.step_max is not None:
            lo = "" if self.step_min is None else str(self.step_min)
            hi = "" if self.step_max is None else str(self.step_max)
            parts.append(f"steps {lo}–{hi}")
        if self.reward_min is not None:
            parts.append(f"reward ≥ {self.reward_min:g}")
        if self.reward_max is not None:
            parts.append(f"reward ≤ {self.reward_max:g}")
        for flag, text in (
            (self.errors_only, "with errors"),
            (self.truncated_only, "truncated"),
            (self.zero_std_only, "zero-std groups"),
        ):
            if flag:
                parts.append(text)
        if self.label != "any":
            parts.append(self.label)
        if self.outcome != "any":
            parts.append(self.outcome)
        for flag, text in ((self.invalid_calls_only, "invalid calls"), (self.max_turns_only, "max turns")):
            if flag:
                parts.append(text)
        if self.tool:
            parts.append(f"used {self.tool}")
        if self.tier:
            parts.append(f"tier {self.tier}")
        if self.ids:
            parts.append(f"{len(self.ids)} picked rollout{'s' if len(self.ids) != 1 else ''}")
        if self.search.strip():
            parts.append(f"“{self.search.strip()}”")
        return " · ".join(parts)


# ---- full-text queries ---------------------------------------------------------------------------------
_TERM = re.compile(r'"([^"]*)"|(\S+)')
_WORD = re.compile(r"[^\W_]+")  # what FTS5's unicode61 tokenizer keeps: letters and digits


def fts_query(text: str) -> str | None:
    """Turn what a user typed into a safe FTS5 query, or None when it has no word to look up.

    Words must all appear (AND); ``"two words"`` is a phrase; ``word*`` matches a prefix. Punctuation
    separates words, as the index's tokenizer does, so typing FTS5 syntax can never raise an error.
    """
    terms: list[str] = []
    for quoted, bare in _TERM.findall(text):
        chunk = quoted if quoted else bare
        words = _WORD.findall(chunk)
        if not words:
            continue
        prefix = "*" if not quoted and chunk.endswith("*") else ""
        terms.append('"' + " ".join(words) + '"' + prefix)
    return " ".join(terms) if terms else None


# ---- plans ---------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """The SQL for one filter over one run: FROM/WHERE pieces and the cursor column."""

    drive: str
    source: str
    where: list[str]
    params: list[Any]
    cursor: str
    order: str
    windowed: bool


def plan(run_id: int, flt: RolloutFilter) -> Plan:
    joins = ""
    where: list[str] = []
    params: list[Any] = []
    fts = fts_query(flt.search) if flt.search.strip() else None
    needle = flt.search.strip() if flt.search.strip() and fts is None else None

    if flt.label in ("good", "bad", "labelled"):
        drive = "labels"
        source = "labels l CROSS JOIN rollouts r ON r.id = l.rollout_id"
        cursor, order, windowed = "l.rollout_id", "l.rollout_id", False
        where.append("r.run_id = ?")
        params.append(run_id)
    elif fts is not None:
        drive = "fts"
        source = (
            "rollouts_fts f CROSS JOIN rollouts r ON r.id = f.rowid LEFT JOIN labels l ON l.rollout_id = r.id"
        )
        cursor, order, windowed = "f.rowid", "f.rowid", True
        where += ["rollouts_fts MATCH ?", "r.run_id = ?"]
        params += [fts, run_id]
    elif flt.errors_only or flt.truncated_only:
        # The partial indexes (run_id, step) WHERE ... hold only these rows; (step, id) is id order.
        drive = "errors" if flt.errors_only else "truncated"
        source = "rollouts r LEFT JOIN labels l ON l.rollout_id = r.id"
        cursor, order, windowed = "r.id", "r.step, r.id", False
        where += ["r.run_id = ?", "r.step >= ?"]
        params += [run_id, 0]  # the step bound is set per page (see _step_floor)
    else:
        drive = "rows"
        source = "rollouts r LEFT JOIN labels l ON l.rollout_id = r.id"
        cursor, order, windowed = "r.id", "r.id", True
        where.append("+r.run_id = ?")  # unary +: walk the rowid window, not the (run_id, step) index
        params.append(run_id)

    if flt.errors_only:
        where.append("r.error_count > 0")
    if flt.truncated_only:
        where.append("r.truncated = 1")
    if flt.step_min is not None:
        where.append("r.step >= ?")
        params.append(flt.step_min)
    if flt.step_max is not None:
        where.append("r.step <= ?")
        params.append(flt.step_max)
    if flt.reward_min is not None:
        where.append("r.reward >= ?")
        params.append(flt.reward_min)
    if flt.reward_max is not None:
        where.append("r.reward <= ?")
        params.append(flt.reward_max)
    if flt.zero_std_only:
        joins += " JOIN groups g ON g.id = r.group_id"
        where.append(f"g.reward_std <= {ZERO_STD!r}")
    if flt.label == "good":
        where.append("l.label = 1")
    elif flt.label == "bad":
        where.append("l.label = -1")
    elif flt.label == "labelled":
        where.append("(l.label != 0 OR COALESCE(l.note, '') != '')")
    elif flt.label == "unlabelled":
        where.append("(l.rollout_id IS NULL OR (l.label = 0 AND COALESCE(l.note, '') = ''))")
    where_agent, params_agent = agent_predicates(flt)
    where += where_agent
    params += params_agent
    if fts is not None and drive != "fts":
        # Few labelled rows: look each one up in the index rather than listing every match.
        where.append("EXISTS (SELECT 1 FROM rollouts_fts WHERE rollouts_fts MATCH ? AND rowid = r.id)")
        params.append(fts)
    if needle is not None:
        where.append("instr(r.completion, ?) > 0")
        params.append(needle)
    return Plan(drive, source + joins, where, params, cursor, order, windowed)


_CALLS = "json_each(r.trajectory, '$.turns') t, json_each(t.value, '$.calls') c"


def agent_predicates(flt: RolloutFilter) -> tuple[list[str], list[Any]]:
    """WHERE pieces for the agent filters, over the trajectory JSON (SQLite's JSON1 functions)."""
    where: list[str] = []
    params: list[Any] = []
    if flt.outcome == "succeeded":
        where.append("json_extract(r.trajectory, '$.reward') >= ?")
        params.append(SUCCESS_REWARD)
    elif flt.outcome == "failed":
        where.append("r.ended IS NOT NULL AND COALESCE(json_extract(r.trajectory, '$.reward'), -1e308) < ?")
        params.append(SUCCESS_REWARD)
    if flt.max_turns_only:
        where.append("r.ended = 'max_turns'")
    if flt.invalid_calls_only:
        where.append(f"EXISTS (SELECT 1 FROM {_CALLS} WHERE json_extract(c.value, '$.valid') = 0)")
    if flt.tool:
        where.append(f"EXISTS (SELECT 1 FROM {_CALLS} WHERE json_extract(c.value, '$.tool') = ?)")
        params.append(flt.tool)
    if flt.tier:
        where.append(
            "(SELECT json_extract(gt.columns, '$.tier') FROM groups gt WHERE gt.id = r.group_id) = ?"
        )
        params.append(flt.tier)
    if flt.ids:
        where.append(f"r.id IN ({marks(len(flt.ids))})")
        params += list(flt.ids)
    return where, params


# ---- rows ----------------------------------------------------------------------------------------------
@dataclass(slots=True)
class RolloutRow:
    id: int
    step: int
    group_id: int
    reward: float | None
    advantage: float | None
    tokens: int | None
    truncated: bool
    error_count: int
    completion: str
    """The first PREVIEW_CHARS characters (``full_completion`` reads the rest)."""
    label: int = 0
    note: str = ""
    prompt: str = ""
    prompt_index: int | None = None
    group_std: float | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    explanations: dict[str, str] = field(default_factory=dict)
    """A judge's reasons: read for the group view only."""
    value: float | None = None
    """PPO: the critic's value at the completion's first token (None without a critic)."""
    value_target: float | None = None
    """PPO: the return there, the value head's target."""


@dataclass
class Page:
    rows: list[RolloutRow]
    cursor: int
    """Every matching row with an id up to this one has been returned."""
    done: bool
    """True when the cursor reached the run's last row (more may come while it trains)."""
    upto: int


ROW_COLUMNS = (
    "r.id, r.step, r.group_id, r.reward, r.advantage, r.completion_tokens, r.truncated, r.error_count,"
    f" substr(r.completion, 1, {PREVIEW_CHARS}), l.label, l.note, r.value, r.value_target"
)


def run_bounds(conn: sqlite3.Connection, run_id: int, flt: RolloutFilter) -> tuple[int, int] | None:
    """(after, upto): the id window holding the run's rollouts inside the filter's step range, or None."""
    lo_sql = "SELECT id FROM rollouts WHERE run_id = ? AND step >= ? ORDER BY step, id LIMIT 1"
    hi_sql = "SELECT id FROM rollouts WHERE run_id = ? AND step <= ? ORDER BY step DESC, id DESC LIMIT 1"
    lo = conn.execute(lo_sql, (run_id, flt.step_min if flt.step_min is not None else -(2**62))).fetchone()
    hi = conn.execute(hi_sql, (run_id, flt.step_max if flt.step_max is not None else 2**62)).fetchone()
    if lo is None or hi is None or hi[0] < lo[0]:
        return None
    return int(lo[0]) - 1, int(hi[0])


def _step_floor(conn: sqlite3.Connection, run_id: int, cursor: int) -> int:
    """The step of the cursor's row, to start an index walk there; the start of time if it is not a row
    of this run (the cursor before the first row, or a row a resume rewrote)."""
    row = conn.execute("SELECT step FROM rollouts WHERE id = ? AND run_id = ?", (cursor, run_id)).fetchone()
    return int(row[0]) if row else -(2**62)


def read_page(
    conn: sqlite3.Connection,
    run_id: int,
    flt: RolloutFilter,
    after: int | None = None,
    limit: int = PAGE_ROWS,
    on_window: Callable[[list[RolloutRow], int, float], None] | None = None,
) -> Page:
    """The next ``limit`` rollouts matching ``flt`` after the cursor ``after`` (None: from the start).

    ``on_window(rows, cursor, scanned)`` is called after each scanned window with the rows it found
    (already detailed) and the fraction of the run's rows looked at so far, so a caller can show rows
    and progress before a slow page is complete. The returned Page holds all the rows.
    """
    bounds = run_bounds(conn, run_id, flt)
    if bounds is None:
        return Page([], after or 0, True, after or 0)
    start, upto = bounds
    cursor = max(start, after if after is not None else start)
    p = plan(run_id, flt)
    if p.drive in ("errors", "truncated"):
        p.params[1] = _step_floor(conn, run_id, cursor)
    sql = (
        f"SELECT {ROW_COLUMNS} FROM {p.source} WHERE {' AND '.join(p.where)}"
        f" AND {p.cursor} > ? AND {p.cursor} <= ? ORDER BY {p.order} LIMIT ?"
    )
    collected: list[RolloutRow] = []
    while cursor < upto and len(collected) < limit:
        hi = min(cursor + SCAN_WINDOW, upto) if p.windowed else upto
        want = limit - len(collected)
        found = [row_from_tuple(t) for t in conn.execute(sql, (*p.params, cursor, hi, want))]
        attach_details(conn, found)
        cursor = found[-1].id if len(found) == want else hi
        if on_window is not None:
            on_window(found, cursor, (cursor - start) / max(upto - start, 1))
        collected += found
    done = cursor >= upto
    return Page(collected, cursor, done, upto)


def row_from_tuple(t: Sequence[Any]) -> RolloutRow:
    return RolloutRow(
        id=t[0],
        step=t[1],
        group_id=t[2],
        reward=t[3],
        advantage=t[4],
        tokens=t[5],
        truncated=bool(t[6]),
        error_count=t[7] or 0,
        completion=t[8] or "",
        label=t[9] or 0,
        note=t[10] or "",
        value=t[11],
        value_target=t[12],
    )


def marks(n: int) -> str:
    return ",".join("?" * n)


def attach_details(conn: sqlite3.Connection, rows: list[RolloutRow]) -> None:
    """Fill in prompts and per-criterion scores, for these rows only (one query each, by primary key)."""
    if not rows:
        return
    group_ids = sorted({r.group_id for r in rows})
    groups = {
        gid: (prompt, index, std)
        for gid, prompt, index, std in conn.execute(
            f"SELECT id, substr(prompt, 1, {PREVIEW_CHARS}), prompt_index, reward_std FROM groups"
            f" WHERE id IN ({marks(len(group_ids))})",
            group_ids,
        )
    }
    by_id = {r.id: r for r in rows}
    for rid, criterion, value, error in conn.execute(
        f"SELECT rollout_id, criterion, value, error FROM scores WHERE rollout_id IN ({marks(len(rows))})",
        list(by_id),
    ):
        row = by_id[rid]
        row.scores[criterion] = value
        if error is not None:
            row.errors[criterion] = error
    for r in rows:
        r.prompt, r.prompt_index, r.group_std = groups.get(r.group_id, ("", None, None))


def matching(
    conn: sqlite3.Connection, run_id: int, flt: RolloutFilter, columns: str, upto: int | None = None
) -> tuple[str, list[Any]] | None:
    """SQL and parameters selecting ``columns`` of every matching rollout in id order (None: no rows).

    No LIMIT and no windows: for counts and exports, which run off the GUI thread.
    """
    bounds = run_bounds(conn, run_id, flt)
    if bounds is None:
        return None
    start, last = bounds
    upto = last if upto is None else min(upto, last)
    p = plan(run_id, flt)
    if p.drive in ("errors", "truncated"):
        p.params[1] = _step_floor(conn, run_id, start)
    sql = (
        f"SELECT {columns} FROM {p.source} WHERE {' AND '.join(p.where)}"
        f" AND {p.cursor} > ? AND {p.cursor} <= ? ORDER BY {p.order}"
    )
    return sql, [*p.params, start, upto]


def count_matching(conn: sqlite3.Connection, run_id: int, flt: RolloutFilter, upto: int | None = None) -> int:
    """How many rollouts of the run match (up to the id ``upto``). May scan: run it off the GUI thread."""
    if flt == RolloutFilter(step_min=flt.step_min, step_max=flt.step_max) and upto is None:
        # Every row in the step range matches: the (run_id, step) index counts them without reading rows.
        lo = flt.step_min if flt.step_min is not None else -(2**62)
        hi = flt.step_max if flt.step_max is not None else 2**62
        sql = "SELECT count(*) FROM rollouts WHERE run_id = ? AND step BETWEEN ? AND ?"
        return int(conn.execute(sql, (run_id, lo, hi)).fetchone()[0])
    query = matching(conn, run_id, flt, "1", upto)
    if query is None:
        return 0
    sql, params = query
    return int(conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])


def run_total(conn: sqlite3.Connection, run_id: int) -> int:
    return int(conn.execute("SELECT count(*) FROM rollouts WHERE run_id = ?", (run_id,)).fetchone()[0])


def last_rollout_id(conn: sqlite3.Connection, run_id: int) -> int:
    row = conn.execute(
        "SELECT id FROM rollouts WHERE run_id = ? ORDER BY step DESC, id DESC LIMIT 1", (run_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def run_criteria(conn: sqlite3.Connection, run_id: int) -> list[str]:
    """The run's criteria in its rubric's order (then any other scored names, sorted)."""
    names: list[str] = []
    row = conn.execute(
        "SELECT v.toml FROM runs r JOIN rubric_versions v ON v.id = r.rubric_version_id WHERE r.id = ?",
        (run_id,),
    ).fetchone()
    if row and row[0]:
        try:
            rubric = tomllib.loads(row[0])
            names = [
                str(c["name"]) for c in rubric.get("criteria", []) if isinstance(c, dict) and "name" in c
            ]
        except (tomllib.TOMLDecodeError, TypeError):
            names = []
    scored = conn.execute(
        "SELECT DISTINCT s.criterion FROM (SELECT id FROM rollouts WHERE run_id = ? ORDER BY step, id LIMIT 64) r"
        " JOIN scores s ON s.rollout_id = r.id",
        (run_id,),
    ).fetchall()
    names += sorted(str(n) for (n,) in scored if n not in names)
    return names


def criterion_weights(conn: sqlite3.Connection, run_id: int) -> dict[str, float]:
    row = conn.execute(
        "SELECT v.toml FROM runs r JOIN rubric_versions v ON v.id = r.rubric_version_id WHERE r.id = ?",
        (run_id,),
    ).fetchone()
    if not row or not row[0]:
        return {}
    try:
        rubric = tomllib.loads(row[0])
    except tomllib.TOMLDecodeError:
        return {}
    return {
        str(c["name"]): float(c.get("weight", 1.0))
        for c in rubric.get("criteria", [])
        if isinstance(c, dict) and "name" in c and isinstance(c.get("weight", 1.0), int | float)
    }


def full_completion(conn: sqlite3.Connection, rollout_id: int) -> str:
    row = conn.execute("SELECT completion FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
    return str(row[0]) if row else ""
