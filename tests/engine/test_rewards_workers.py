"""Reward workers: started once, reused, light (no torch even when the engine has it), replaced when
they die, and running the code the rubric snapshot holds."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from engine.rewards import RewardBatch, load_rubric

FIXTURES = Path(__file__).parent / "reward_fixtures"
RUBRIC = """
name = "probe"
[[criteria]]
name = "pid"
kind = "python"
source = "worker_probe.py:pid"
[[criteria]]
name = "heavy"
kind = "python"
source = "worker_probe.py:heavy_modules"
weight = 0.0
memory_mb = 0
[[criteria]]
name = "version"
kind = "python"
source = "worker_probe.py:version"
weight = 0.0
memory_mb = 1024
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe")
    for name in ("worker_probe.py", "helper_module.py"):
        shutil.copy(FIXTURES / name, path / name)
    (path / "rubric.toml").write_text(RUBRIC)
    return path


@pytest.fixture(scope="module")
def rubric(folder):
    import torch  # noqa: F401  (the engine process has torch; its workers must not)

    with load_rubric(folder / "rubric.toml") as r:
        yield r


def batch(n=2):
    return RewardBatch(["p"] * n, ["c"] * n)


def test_workers_are_long_lived_and_reused(rubric):
    first = rubric.score(batch()).scores["pid"][0]
    second = rubric.score(batch(5)).scores["pid"][0]
    assert first == second != os.getpid()


def test_workers_do_not_import_torch_or_the_engine(rubric):
    assert "torch" in sys.modules
    scored = rubric.score(batch())
    assert scored.scores["heavy"] == [0.0, 0.0], "the worker imported a heavy module"


def test_prints_do_not_corrupt_the_protocol(rubric):
    scored = rubric.score(batch(3))
    assert scored.errors["heavy"] == [None] * 3


def wait_until_dead(pid: int, timeout: float = 10.0) -> None:
    """Wait until the worker (a child of this process) has exited and can be waited for. /proc showing
    the process as a zombie is not enough: the leader of a process with threads shows "Z" while its
    other threads are still exiting, and until they have, waitid reports nothing (the engine would
    then only notice the death during the next call)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:
            return  # already reaped
        time.sleep(0.01)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_a_killed_worker_is_replaced_and_runs_the_snapshot_code(rubric, folder):
    old_pid = int(rubric.score(batch()).scores["pid"][0])
    # The file changes on disk after loading: the rubric keeps scoring with what it loaded.
    original = (folder / "worker_probe.py").read_text()
    (folder / "worker_probe.py").write_text(original.replace("float(os.getpid())", "-1.0"))
    try:
        os.kill(old_pid, signal.SIGKILL)
        wait_until_dead(old_pid)  # the signal is asynchronous; wait so the outcome is deterministic
        # A worker that died between batches is replaced before the next batch, which it scores
        # in full with the code the rubric loaded (a death during a call is tested with os._exit).
        alive = rubric.score(batch())
        new_pid = alive.scores["pid"][0]
        assert alive.errors["pid"] == [None, None]
        assert new_pid not in (None, -1.0, float(old_pid))
        _, sources = rubric.snapshot()
        assert sources["worker_probe.py"] == original
    finally:
        (folder / "worker_probe.py").write_text(original)


def test_snapshot_includes_modules_the_code_imports_from_beside_the_rubric(rubric, folder):
    toml_text, sources = rubric.snapshot()
    assert toml_text == RUBRIC
    assert set(sources) == {"worker_probe.py", "helper_module.py"}
    assert sources["helper_module.py"] == (folder / "helper_module.py").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory_mb is enforced on Linux")
def test_memory_limit_is_enforced_where_the_os_can(rubric):
    rubric.score(batch())
    assert rubric.criterion("version").code.worker.memory_limit == "RLIMIT_DATA 1024 MB"
    assert rubric.criterion("pid").code.worker.memory_limit == "RLIMIT_DATA 4096 MB"  # the default
    assert not rubric.criterion("heavy").code.worker.memory_limit_enforced  # memory_mb = 0: none


def test_close_stops_every_worker(folder):
    rubric = load_rubric(folder / "rubric.toml")
    workers = [c.code.worker for c in rubric.criteria]
    assert all(w.alive() for w in workers)
    procs = [w.proc for w in workers]
    rubric.close()
    assert all(p.poll() is not None for p in procs)


def test_score_checks_the_batch_shape(rubric):
    with pytest.raises(ValueError, match="2 prompts for 3 completions"):
        rubric.score(RewardBatch(["p", "p"], ["a", "b", "c"]))
