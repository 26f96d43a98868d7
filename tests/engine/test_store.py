from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.contract.schema import MIGRATIONS, SCHEMA_VERSION, connect, schema_version
from engine.store import GroupRecord, RolloutRecord, StoreError, Workspace


def group(prompt: str, rewards: list[float | None], errors: dict[str, str] | None = None) -> GroupRecord:
    return GroupRecord(
        prompt=prompt,
        prompt_index=1,
        columns={"answer": "4"},
        rollouts=[
            RolloutRecord(
                completion=f"<answer>{i}</answer>",
                reward=r,
                advantage=0.5,
                completion_tokens=5,
                truncated=i == 0,
                scores={"correct": r, "format": 1.0},
                errors=errors or {},
                explanations={"format": "looks like an answer tag"},
            )
            for i, r in enumerate(rewards)
        ],
    )


def test_new_workspace_is_migrated_and_wal(workspace_path: Path) -> None:
    ws = Workspace(workspace_path)
    assert schema_version(ws.conn) == SCHEMA_VERSION
    assert ws.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ws.close()
    assert schema_version(connect(str(workspace_path))) == SCHEMA_VERSION  # reopening does not re-migrate


def test_a_version_1_workspace_keeps_its_scores_when_migrated(workspace_path: Path) -> None:
    """Version 2 moved per-criterion score rows into their rollout's row; the scores view reads the same."""
    conn = sqlite3.connect(workspace_path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '1')")
    conn.execute(
        "INSERT INTO runs(id, name, algorithm, config, created_at) VALUES (1, 'old', 'grpo', '{}', 0)"
    )
    conn.execute("INSERT INTO groups(id, run_id, step, prompt) VALUES (1, 1, 1, '2+2=')")
    conn.executemany(
        "INSERT INTO rollouts(id, run_id, step, group_id, completion, error_count) VALUES (?, 1, 1, 1, ?, ?)",
        [(1, "<answer>4</answer>", 0), (2, "four", 1), (3, "unscored", 0)],
    )
    conn.executemany(
        "INSERT INTO scores(rollout_id, criterion, value, error, explanation) VALUES (?, ?, ?, ?, ?)",
        [
            (1, "correct", 1.0, None, None),
            (1, "format", 1.0, None, "an answer tag"),
            (2, "correct", None, "TimeoutError: took more than 10s", None),
            (2, "format", 0.0, None, None),
        ],
    )
    conn.commit()
    conn.close()

    ws = Workspace(workspace_path)
    assert schema_version(ws.conn) == SCHEMA_VERSION
    rows = ws.conn.execute("SELECT * FROM scores ORDER BY rollout_id, criterion").fetchall()
    assert rows == [
        (1, "correct", 1.0, None, None),
        (1, "format", 1.0, None, "an answer tag"),
        (2, "correct", None, "TimeoutError: took more than 10s", None),
        (2, "format", 0.0, None, None),
    ]
    stored = ws.conn.execute("SELECT errors_json, explanations_json FROM rollouts ORDER BY id").fetchall()
    assert stored == [
        (None, '{"format":"an answer tag"}'),
        ('{"correct":"TimeoutError: took more than 10s"}', None),
        (None, None),
    ]
    exported = list(ws.rollouts(1))
    assert [r["scores"] for r in exported] == [
        {"correct": 1.0, "format": 1.0},
        {"correct": None, "format": 0.0},
        {},
    ]
    assert exported[1]["errors"] == {"correct": "TimeoutError: took more than 10s"}


def test_not_a_workspace(tmp_path: Path) -> None:
    bad = tmp_path / "notes.sqlite"
    bad.write_text("this is not sqlite " * 100)
    with pytest.raises(StoreError, match="not an RL Studio workspace"):
        Workspace(bad)


def test_runs_metrics_rollouts_and_export(workspace_path: Path) -> None:
    ws = Workspace(workspace_path)
    run_id = ws.create_run("r", "grpo", {"a": 1}, max_steps=10)
    ws.set_status(run_id, "running")
    ws.write_metrics(run_id, 1, {"reward": 0.5, "kl": float("nan"), "note": "skipped"})
    last = ws.write_rollouts(
        run_id, 1, [group("2+2=", [1.0, 0.0]), group("3+3=", [None, 1.0], {"correct": "boom"})]
    )
    assert last == ws.max_rollout_id(run_id) == 4
    metrics = ws.metrics(run_id)
    assert {(m["key"], m["value"]) for m in metrics} == {("reward", 0.5), ("kl", None)}
    assert ws.run(run_id)["step"] == 1
    rows = list(ws.rollouts(run_id))
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["prompt"] == "2+2=" and rows[0]["truncated"] is True
    assert rows[2]["scores"] == {"correct": None, "format": 1.0}
    assert rows[2]["errors"] == {"correct": "boom"}
    explained = ws.conn.execute(
        "SELECT explanation FROM scores WHERE rollout_id = 1 AND criterion = 'format'"
    )
    assert explained.fetchone() == ("looks like an answer tag",)
    g = ws.conn.execute("SELECT reward_mean, reward_std FROM groups ORDER BY id").fetchall()
    assert g[0] == (0.5, pytest.approx(0.7071, abs=1e-3))
    hits = ws.conn.execute("SELECT rowid FROM rollouts_fts WHERE rollouts_fts MATCH '1'").fetchall()
    assert sorted(h[0] for h in hits) == [2, 4]


def test_truncate_after_forgets_later_steps(workspace_path: Path) -> None:
    ws = Workspace(workspace_path)
    run_id = ws.create_run("r", "grpo", {}, max_steps=10)
    for step in (1, 2, 3):
        ws.write_metrics(run_id, step, {"reward": step})
        ws.write_rollouts(run_id, step, [group(f"p{step}", [1.0, 0.0])])
    ws.add_checkpoint(run_id, 2, "/x/checkpoint-2")
    ws.add_checkpoint(run_id, 3, "/x/checkpoint-3")
    ws.truncate_after(run_id, 2)
    assert sorted({m["step"] for m in ws.metrics(run_id)}) == [1, 2]
    assert [c["step"] for c in ws.checkpoints(run_id)] == [2]
    assert ws.conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 8
    assert (
        ws.conn.execute("SELECT COUNT(*) FROM rollouts_fts WHERE rollouts_fts MATCH 'answer'").fetchone()[0]
        == 4
    )
    assert ws.run(run_id)["step"] == 2
    again = ws.write_rollouts(run_id, 3, [group("p3", [1.0, 0.0])])
    assert again == 8  # ids are never reused: a reader following id > N sees the new rows


def test_rubric_versions_are_immutable_and_deduplicated(workspace_path: Path) -> None:
    ws = Workspace(workspace_path)
    v1 = ws.save_rubric_version("arith", "name='arith'", {"rewards.py": "def f(): ..."})
    again = ws.save_rubric_version("arith", "name='arith'", {"rewards.py": "def f(): ..."})
    v2 = ws.save_rubric_version("arith", "name='arith'  # edited", {"rewards.py": "def f(): ..."})
    assert v1 == again != v2
    versions = ws.conn.execute("SELECT version FROM rubric_versions ORDER BY id").fetchall()
    assert versions == [(1,), (2,)]


def test_full_disk_is_a_clear_store_error(workspace_path: Path) -> None:
    ws = Workspace(workspace_path)
    run_id = ws.create_run("r", "grpo", {}, max_steps=10)
    page_count = ws.conn.execute("PRAGMA page_count").fetchone()[0]
    ws.conn.execute(f"PRAGMA max_page_count = {page_count + 2}")  # a disk that is almost full
    with pytest.raises(StoreError, match="is full"):
        for step in range(200):
            ws.write_rollouts(run_id, step, [group("x" * 5000, [1.0] * 8)])
    ws.conn.execute("PRAGMA max_page_count = 1073741823")
    assert ws.run(run_id)["name"] == "r"  # what was committed is still there
    assert isinstance(ws.conn, sqlite3.Connection)
