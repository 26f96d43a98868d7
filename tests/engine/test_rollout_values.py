"""PPO's critic per rollout (schema migration 7): a workspace written before it converts with its rollouts
unchanged (value and value_target NULL), new rollouts keep theirs, the export carries them, and the
inspector's rows read them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.contract.rollout_rows import ROLLOUT_FIELDS
from engine.contract.schema import MIGRATIONS, SCHEMA_VERSION, schema_version
from engine.store import GroupRecord, RolloutRecord, Workspace
from studio.state.rollout_query import RolloutFilter, read_page


def version_6_workspace(path: Path) -> None:
    """A workspace as RL Studio wrote it before migration 7: a GRPO run with one scored rollout."""
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:6]:
        conn.executescript(script)
    conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '6')")
    conn.execute(
        "INSERT INTO runs(id, name, algorithm, config, created_at) VALUES (1, 'old', 'grpo', '{}', 0)"
    )
    conn.execute("INSERT INTO groups(id, run_id, step, prompt) VALUES (1, 1, 1, '2+2=')")
    conn.execute(
        "INSERT INTO rollouts(id, run_id, step, group_id, completion, reward, advantage, scores_json)"
        " VALUES (1, 1, 1, 1, '<answer>4</answer>', 1.0, 0.5, '{\"correct\":1.0}')"
    )
    conn.commit()
    conn.close()


def test_migration_7_converts_a_workspace_and_ppo_rollouts_keep_value_and_return(
    workspace_path: Path,
) -> None:
    version_6_workspace(workspace_path)
    ws = Workspace(workspace_path)
    assert SCHEMA_VERSION >= 7 and schema_version(ws.conn) == SCHEMA_VERSION
    old = ws.conn.execute(
        "SELECT completion, reward, advantage, value, value_target FROM rollouts"
    ).fetchall()
    assert old == [("<answer>4</answer>", 1.0, 0.5, None, None)]
    assert ws.conn.execute("SELECT criterion, value FROM scores").fetchall() == [("correct", 1.0)]

    ppo = [
        RolloutRecord(
            "<answer>5</answer>", 1.0, 0.7, 4, False, {"correct": 1.0}, value=0.25, value_target=0.95
        ),
        RolloutRecord("five", 0.0, -0.3, 2, True, {"correct": 0.0}, value=float("nan"), value_target=-0.05),
    ]
    ws.write_rollouts(1, 2, [GroupRecord("2+3=", 4, {"answer": "5"}, ppo)])
    rows = ws.conn.execute("SELECT id, advantage, value, value_target FROM rollouts ORDER BY id").fetchall()
    assert rows == [(1, 0.5, None, None), (2, 0.7, 0.25, 0.95), (3, -0.3, None, -0.05)]  # NaN stored as NULL

    exported = list(ws.rollouts(1))
    assert list(exported[0])[: len(ROLLOUT_FIELDS)] == list(ROLLOUT_FIELDS)
    assert [(r["advantage"], r["value"], r["value_target"]) for r in exported] == [
        (0.5, None, None),
        (0.7, 0.25, 0.95),
        (-0.3, None, -0.05),
    ]
    assert "value" in ws.rollout_fields(1) and exported[1]["answer"] == "5"

    page = read_page(ws.conn, 1, RolloutFilter())
    assert [(r.id, r.advantage, r.value, r.value_target) for r in page.rows] == rows
    ws.close()
