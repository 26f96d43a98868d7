"""The workspace under faults, without training: concurrent writers, the run lease, damaged and newer files,
non-finite values, and the status shown for a run whose engine is gone."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import engine_cmd, engine_env, write_config

from engine.contract.run_status import own_token, process_start_token, run_states
from engine.contract.schema import connect, integrity_problem
from engine.store import GroupRecord, RolloutRecord, RunBusyError, StoreError, Workspace


def strict_loads(text: str) -> object:
    """json.loads that refuses NaN and Infinity, which are not JSON."""

    def refuse(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def groups(n_groups: int, per_group: int = 4, text: str = "<answer>4</answer>") -> list[GroupRecord]:
    return [
        GroupRecord(
            prompt=f"2+2= ({g})",
            prompt_index=g,
            columns={"answer": "4"},
            rollouts=[
                RolloutRecord(text, 1.0, 0.0, 5, False, {"correct": 1.0, "format": 0.5})
                for _ in range(per_group)
            ],
        )
        for g in range(n_groups)
    ]


_WRITER = """
import sys
from engine.store import Workspace, GroupRecord, RolloutRecord
ws = Workspace(sys.argv[1])
run_id, batches = int(sys.argv[2]), int(sys.argv[3])
for step in range(1, batches + 1):
    groups = [GroupRecord("p", g, {}, [RolloutRecord("c", 1.0, 0.0, 1, False, {"x": 1.0})] * 4)
              for g in range(int(sys.argv[4]))]
    ws.write_rollouts(run_id, step, groups)
"""


def test_concurrent_writers_never_collide_on_ids(tmp_path: Path) -> None:
    """A run writing rollouts and a fast second writer in another process (another run): ids are
    assigned inside the write transaction, so neither fails with UNIQUE constraint failed."""
    db = tmp_path / "ws.sqlite"
    ws = Workspace(db)
    runs = [ws.create_run(f"r{i}", "grpo", {}, 10) for i in range(2)]
    ws.close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(db), str(run_id), str(batches), str(width)],
            env=engine_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for run_id, batches, width in ((runs[0], 150, 8), (runs[1], 600, 1))
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    with sqlite3.connect(db) as conn:
        counts = dict(conn.execute("SELECT run_id, COUNT(*) FROM rollouts GROUP BY run_id").fetchall())
        assert counts == {runs[0]: 150 * 8 * 4, runs[1]: 600 * 4}
        assert conn.execute("SELECT COUNT(*) FROM rollouts_fts").fetchone()[0] == sum(counts.values())
        orphans = conn.execute(
            "SELECT COUNT(*) FROM rollouts r JOIN groups g ON g.id = r.group_id WHERE g.run_id != r.run_id"
        ).fetchone()[0]
        assert orphans == 0


def test_lease_one_holder_and_dead_or_reused_pids_hold_nothing(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws.sqlite")
    run_id = ws.create_run("r", "grpo", {}, 10)
    # a live process holds it
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        token = None
        for _ in range(100):
            token = process_start_token(holder.pid)
            if token:
                break
        assert token is not None
        ws.take_lease(run_id, holder.pid, token)
        with pytest.raises(RunBusyError, match=f"process {holder.pid}"):
            ws.take_lease(run_id, os.getpid(), own_token())
    finally:
        holder.kill()
        holder.wait()
    # killed: it holds nothing
    assert ws.take_lease(run_id, os.getpid(), own_token())["pid"] == os.getpid()
    # a pid that now belongs to another process (same pid, another start time) holds nothing either
    ws.conn.execute("UPDATE runs SET pid = ?, lease_token = 'linux:x:1'", (os.getpid(),))
    ws.conn.commit()
    assert ws.take_lease(run_id, os.getpid() + 1, "linux:x:2")["pid"] == os.getpid() + 1


def test_interrupted_runs_are_shown_as_such(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    ws = Workspace(db)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ws.conn.execute("PRAGMA foreign_keys=OFF")
    killed_with_ckpt = ws.create_run("a", "grpo", {}, 80, lease=(dead.pid, "linux:x:1"))
    killed_early = ws.create_run("b", "grpo", {}, 80, lease=(dead.pid, "linux:x:1"))
    live = ws.create_run("c", "grpo", {}, 80, lease=(os.getpid(), own_token()))
    reused_pid = ws.create_run("d", "grpo", {}, 80, lease=(os.getpid(), "linux:other:1"))
    for run_id in (killed_with_ckpt, killed_early, live, reused_pid):
        ws.update_run(run_id, status="running", step=44)
    ws.add_checkpoint(killed_with_ckpt, 40, str(tmp_path / "checkpoint-40"))
    ws.close()

    listing = subprocess.run(
        engine_cmd("runs", "--db", str(db), "--json"), capture_output=True, text=True, env=engine_env()
    )
    assert listing.returncode == 0, listing.stderr
    shown = {r["id"]: (r["status"], r["resumable"]) for r in json.loads(listing.stdout)}
    assert shown == {
        killed_with_ckpt: ("interrupted", True),
        killed_early: ("interrupted", False),
        live: ("running", False),
        reused_pid: ("interrupted", False),
    }
    table = subprocess.run(
        engine_cmd("runs", "--db", str(db)), capture_output=True, text=True, env=engine_env()
    ).stdout
    assert "interrupted (resumable)" in table and "running" in table
    # the studio reads the same through engine.contract, on a read-only connection
    with connect(str(db), readonly=True) as conn:
        assert run_states(conn)[killed_with_ckpt].label == "interrupted (resumable)"
        assert run_states(conn, [live])[live].label == "running"


def test_non_finite_values_are_stored_as_json_null_with_an_error(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    ws = Workspace(db)
    run_id = ws.create_run("r", "grpo", {"training": {"max_grad_norm": float("inf")}}, 10)
    inf, nan = float("inf"), float("nan")
    ws.write_metrics(run_id, 1, {"loss": inf, "kl": nan, "reward": 0.5})
    ws.write_rollouts(
        run_id,
        1,
        [GroupRecord("p", 0, {"w": inf}, [RolloutRecord("c", inf, nan, 1, False, {"a": inf, "b": 1.0})])],
    )
    sample = {"prompt": "p", "completion": "c", "reward": nan, "scores": {"a": inf, "b": nan}, "errors": {}}
    ws.write_evaluation(run_id, 1, [sample], {"eval/reward/mean": inf})
    ws.log_event(run_id, "note", {"value": inf, "nested": [nan, 1.0]})
    ws.close()
    with sqlite3.connect(db) as conn:
        texts = [
            *conn.execute("SELECT config FROM runs"),
            *conn.execute("SELECT columns FROM groups"),
            *conn.execute("SELECT scores_json FROM rollouts"),
            *conn.execute("SELECT errors_json FROM rollouts"),
            *conn.execute("SELECT scores FROM evaluations"),
            *conn.execute("SELECT errors FROM evaluations"),
            *conn.execute("SELECT payload FROM events"),
        ]
        for (text,) in texts:
            strict_loads(text)
        assert strict_loads(conn.execute("SELECT scores FROM evaluations").fetchone()[0]) == {
            "a": None,
            "b": None,
        }
        errors = strict_loads(conn.execute("SELECT errors FROM evaluations").fetchone()[0])
        assert set(errors) == {"a", "b"} and "not a finite number" in errors["a"]
        assert (
            "not a finite number"
            in strict_loads(conn.execute("SELECT errors_json FROM rollouts").fetchone()[0])["a"]
        )
        assert conn.execute("SELECT error_count FROM rollouts").fetchone()[0] == 1
        assert (
            conn.execute(
                "SELECT value FROM metrics WHERE key IN ('loss', 'kl', 'eval/reward/mean')"
            ).fetchall()
            == [(None,)] * 3
        )


def damage(db: Path) -> None:
    """Overwrite pages in the middle of the file, as a bad disk or a stray write would."""
    size = db.stat().st_size
    with open(db, "r+b") as f:
        for offset in range(size // 2 - 4096 * 8, size // 2 + 4096 * 8, 4096):
            f.seek(offset)
            f.write(os.urandom(4096))


@pytest.fixture
def damaged_workspace(tmp_path: Path) -> Path:
    db = tmp_path / "ws.sqlite"
    ws = Workspace(db)
    run_id = ws.create_run("r", "grpo", {}, 10)
    for step in range(1, 41):
        ws.write_rollouts(run_id, step, groups(8, text="<answer>4</answer> " * 40))
    ws.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.close()
    damage(db)
    return db


def test_damaged_workspace_is_refused_everywhere_with_the_way_to_recover(
    damaged_workspace: Path, tmp_path: Path
) -> None:
    db = damaged_workspace
    assert integrity_problem(sqlite3.connect(db)) is not None
    export = subprocess.run(
        engine_cmd("export", "1", "--db", str(db), "--what", "rollouts"),
        capture_output=True,
        text=True,
        env=engine_env(),
    )
    assert export.returncode == 2 and "Traceback" not in export.stderr
    assert "damaged" in export.stderr and ".recover" in export.stderr
    before = db.read_bytes()
    run = subprocess.run(
        engine_cmd("run", str(write_config(tmp_path)), "--db", str(db)),
        capture_output=True,
        text=True,
        env=engine_env(),
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert ".recover" in run.stderr
    assert db.read_bytes() == before  # nothing was written into it
    with pytest.raises(StoreError, match="recover"):
        Workspace(db, verify=True)


def test_newer_workspace_is_an_input_error(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    Workspace(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    for args in (("run", str(write_config(tmp_path)), "--db", str(db)), ("runs", "--db", str(db))):
        proc = subprocess.run(engine_cmd(*args), capture_output=True, text=True, env=engine_env())
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "Upgrade RL Studio" in proc.stderr


def test_resume_of_a_missing_workspace_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "typo.sqlite"
    proc = subprocess.run(
        engine_cmd("resume", "1", "--db", str(typo)), capture_output=True, text=True, env=engine_env()
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not typo.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("config", ["nosuch.toml", "typo"])
def test_config_errors_leave_no_run_behind(tmp_path: Path, config: str) -> None:
    db = tmp_path / "ws.sqlite"
    path = tmp_path / config
    if config == "typo":
        path.write_text('algorithm = "grpo"\n[training]\nmax_stepz = 3\n')
    proc = subprocess.run(
        engine_cmd("run", str(path), "--db", str(db)), capture_output=True, text=True, env=engine_env()
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
