"""The studio's SFT and pair exports can carry what joins each row back to its rollout and dataset row."""

from __future__ import annotations

from pathlib import Path

from test_rollout_workspace import build_run

from engine.contract import schema
from engine.store import GroupRecord, RolloutRecord, Workspace
from studio.state.rollout_export import ExportOptions, export_rows


def test_rows_with_source_agree_with_the_engine_export(tmp_path: Path) -> None:
    path = tmp_path / "ws.sqlite"
    build_run(path, steps=1, seed=1, name="earlier")  # so the next run's group ids do not start at 1
    run_id = build_run(path, steps=3)
    engine_rows = {r["id"]: r for r in Workspace(path).rollouts(run_id)}
    conn = schema.connect(str(path), readonly=True)
    sft = list(export_rows(conn, run_id, ExportOptions("sft", "reward", with_source=True)))
    pairs = list(export_rows(conn, run_id, ExportOptions("pairs", "reward", with_source=True)))
    plain = list(export_rows(conn, run_id, ExportOptions("sft", "reward")))
    conn.close()
    assert sft and pairs and len(plain) == len(sft)
    assert all(set(r) == {"prompt", "completion"} for r in plain)  # TRL's format alone unless asked
    assert [r["group_index"] for r in sft] == list(range(12))  # 3 steps x 4 prompts, best of each
    joined = ["run_id", "step", "group", "group_index", "prompt_index", "answer"]
    for row in sft:
        rollout = engine_rows[row["rollout_id"]]
        assert row["completion"] == rollout["completion"] and row["prompt"] == rollout["prompt"]
        assert {k: row[k] for k in joined} == {k: rollout[k] for k in joined}
    for row in pairs:
        chosen, rejected = engine_rows[row["chosen_id"]], engine_rows[row["rejected_id"]]
        assert (row["chosen"], row["rejected"]) == (chosen["completion"], rejected["completion"])
        assert chosen["group"] == rejected["group"] == row["group"]
        assert {k: row[k] for k in joined} == {k: chosen[k] for k in joined}


def test_a_dataset_column_never_replaces_an_export_field(tmp_path: Path) -> None:
    path = tmp_path / "ws.sqlite"
    ws = Workspace(path)
    run_id = ws.create_run("r", "grpo", {}, max_steps=1)
    rollouts = [RolloutRecord(f"c{i}", float(i), 0.0, 2, False) for i in range(2)]
    columns = {"chosen": "gold", "step": "s-1", "answer": 4}
    ws.write_rollouts(run_id, 1, [GroupRecord("2+2=", 5, columns, rollouts)])
    ws.close()
    conn = schema.connect(str(path), readonly=True)
    (pair,) = export_rows(conn, run_id, ExportOptions("pairs", "reward", with_source=True))
    conn.close()
    assert (pair["chosen"], pair["rejected"], pair["step"]) == ("c1", "c0", 1)
    assert (pair["dataset.chosen"], pair["dataset.step"], pair["answer"]) == ("gold", "s-1", 4)
    assert (pair["prompt_index"], pair["group_index"]) == (5, 0)
