"""Exported rollouts join back to their dataset rows: run, step, group index, prompt index, columns."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

from conftest import engine_cmd, engine_env

from engine.contract.rollout_rows import ROLLOUT_FIELDS, csv_cell
from engine.store import GroupRecord, RolloutRecord, Workspace


def group(prompt_index: int, columns: dict[str, Any], rewards: list[float]) -> GroupRecord:
    return GroupRecord(
        prompt=f"prompt {prompt_index}",
        prompt_index=prompt_index,
        columns=columns,
        rollouts=[
            RolloutRecord(
                completion=f"completion {prompt_index}.{i}",
                reward=r,
                advantage=0.0,
                completion_tokens=3,
                truncated=i == 1,
                scores={"correct": r},
            )
            for i, r in enumerate(rewards)
        ],
    )


def two_runs(path: Path) -> tuple[int, int]:
    """Run 1 then run 2 in one workspace, so run 2's group ids do not start at 1."""
    ws = Workspace(path)
    first = ws.create_run("a", "grpo", {}, max_steps=2)
    ws.write_rollouts(first, 1, [group(0, {"answer": "1"}, [1.0, 0.0])])
    second = ws.create_run("b", "grpo", {}, max_steps=2)
    ws.write_rollouts(
        second,
        1,
        [
            group(7, {"answer": "12", "id": "q-7", "tags": ["sum"]}, [1.0, 0.0]),
            group(3, {"answer": "5", "id": "q-3", "tags": []}, [0.0, 0.5]),
        ],
    )
    ws.write_rollouts(second, 2, [group(7, {"answer": "12", "id": "q-7", "meta": {"level": 2}}, [1.0, 1.0])])
    ws.close()
    return first, second


def test_rollouts_carry_what_joins_them_back_to_the_dataset(workspace_path: Path) -> None:
    _, run = two_runs(workspace_path)
    ws = Workspace(workspace_path)
    rows = list(ws.rollouts(run))
    assert len(rows) == 6
    assert list(rows[0])[: len(ROLLOUT_FIELDS)] == list(ROLLOUT_FIELDS)
    assert [r["group_index"] for r in rows] == [0, 0, 1, 1, 2, 2]
    assert [r["group"] for r in rows] == [2, 2, 3, 3, 4, 4]  # workspace-wide: run 1 holds group 1
    assert [r["prompt_index"] for r in rows] == [7, 7, 3, 3, 7, 7]
    assert [r["answer"] for r in rows] == ["12", "12", "5", "5", "12", "12"]
    assert rows[0]["run_id"] == run and rows[0]["step"] == 1 and rows[4]["step"] == 2
    # A dataset column named like a rollout field is renamed, never replaces it.
    assert rows[0]["id"] != "q-7" and rows[0]["dataset.id"] == "q-7"
    assert rows[0]["tags"] == ["sum"] and rows[4]["meta"] == {"level": 2} and "tags" not in rows[4]
    assert rows[1]["truncated"] is True and rows[0]["truncated"] is False
    assert ws.rollout_fields(run) == [*ROLLOUT_FIELDS, "answer", "dataset.id", "tags", "meta"]


def _export(db: Path, run: int, fmt: str) -> str:
    return subprocess.run(
        engine_cmd("export", str(run), "--db", str(db), "--what", "rollouts", "--format", fmt),
        capture_output=True,
        text=True,
        env=engine_env(),
        check=True,
    ).stdout


def test_cli_export_writes_json_lines_and_a_csv_with_json_cells(workspace_path: Path) -> None:
    _, run = two_runs(workspace_path)
    lines = [json.loads(line) for line in _export(workspace_path, run, "jsonl").splitlines()]
    assert [(r["group_index"], r["prompt_index"], r["answer"]) for r in lines[::2]] == [
        (0, 7, "12"),
        (1, 3, "5"),
        (2, 7, "12"),
    ]
    table = list(csv.DictReader(io.StringIO(_export(workspace_path, run, "csv"))))
    assert list(table[0]) == [*ROLLOUT_FIELDS, "answer", "dataset.id", "tags", "meta"]
    assert [r["truncated"] for r in table[:2]] == ["false", "true"]
    assert json.loads(table[0]["scores"]) == {"correct": 1.0}
    assert json.loads(table[0]["errors"]) == {}
    assert json.loads(table[0]["tags"]) == ["sum"] and table[0]["meta"] == ""
    assert json.loads(table[4]["meta"]) == {"level": 2}
    assert (table[0]["group_index"], table[0]["prompt_index"], table[0]["answer"]) == ("0", "7", "12")


def test_csv_cells() -> None:
    assert [csv_cell(v) for v in (True, False, None, 1.5, "x", {"a": None}, ["é"])] == [
        "true",
        "false",
        "",
        1.5,
        "x",
        '{"a": null}',
        '["é"]',
    ]
