"""studio.jobs: results and progress reach the GUI thread in order, cancellation is cooperative and
stops SQLite queries, a failure goes to its callback, and a job never outlives its owner unsafely."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QObject

from engine.contract import schema
from studio.jobs import Jobs, ReadConnection, Task, query

# A query that runs for minutes unless interrupted.
ENDLESS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"


@pytest.fixture
def workspace(tmp_path: Path) -> str:
    path = str(tmp_path / "ws.sqlite")
    conn = schema.connect(path)
    schema.migrate(conn)
    conn.close()
    return path


def test_results_and_reports_arrive_on_the_gui_thread_in_order(qtbot) -> None:
    owner = QObject()
    jobs = Jobs("test", owner)
    seen: list[tuple[str, object, bool]] = []
    gui = threading.get_ident()

    def count(task: Task) -> int:
        for i in range(5):
            task.report(i)
        return threading.get_ident()

    jobs.submit(
        count,
        on_done=lambda ident: seen.append(("done", ident != gui, threading.get_ident() == gui)),
        on_partial=lambda i: seen.append(("partial", i, threading.get_ident() == gui)),
    )
    jobs.submit(
        lambda task: "second", on_done=lambda v: seen.append(("done", v, threading.get_ident() == gui))
    )
    assert jobs.busy
    qtbot.waitUntil(lambda: not jobs.busy, timeout=5000)
    assert seen == [
        *(("partial", i, True) for i in range(5)),
        ("done", True, True),  # the job ran on another thread; its callback on the GUI thread
        ("done", "second", True),
    ]


def test_a_failure_goes_to_its_callback_and_the_lane_goes_on(qtbot) -> None:
    owner = QObject()
    jobs = Jobs("test", owner)
    failures: list[BaseException] = []
    done: list[int] = []

    def broken(task: Task) -> int:
        raise ValueError("the file is gone")

    jobs.submit(broken, on_done=done.append, on_failed=failures.append)
    jobs.submit(lambda task: 7, on_done=done.append)
    qtbot.waitUntil(lambda: not jobs.busy, timeout=5000)
    assert [str(f) for f in failures] == ["the file is gone"] and done == [7]


def test_cancel_stops_a_running_query_and_drops_its_results(qtbot, workspace: str) -> None:
    owner = QObject()
    connection = ReadConnection()
    jobs = Jobs("test", owner, on_exit=connection.close)
    started = threading.Event()
    results: list[object] = []

    def endless(task: Task) -> int:
        def run(conn: sqlite3.Connection) -> int:
            started.set()
            return int(conn.execute(ENDLESS).fetchone()[0])

        return query(task, connection, workspace, run)

    def cooperative(task: Task) -> str:
        while True:
            task.check()
            time.sleep(0.001)

    slow = jobs.submit(endless, on_done=results.append, on_failed=results.append)
    queued = jobs.submit(cooperative, on_done=results.append, on_failed=results.append)
    assert started.wait(5)
    t0 = time.monotonic()
    jobs.cancel(slow)
    jobs.cancel(queued)  # never starts
    jobs.submit(lambda task: query(task, connection, workspace, lambda c: c.execute("SELECT 42").fetchone()[0]),
                on_done=results.append)  # fmt: skip
    qtbot.waitUntil(lambda: not jobs.busy, timeout=5000)
    assert results == [42], "the cancelled jobs reported nothing, and the lane went on"
    assert time.monotonic() - t0 < 4, "the query was stopped, not waited for"
    assert slow.cancelled and queued.cancelled

    cooperative_task = jobs.submit(cooperative, on_done=results.append, on_failed=results.append)
    qtbot.wait(50)
    jobs.cancel_all()
    assert jobs.wait(1) and cooperative_task.cancelled and results == [42]


def test_a_job_never_outlives_its_owner_unsafely(qtbot, workspace: str) -> None:
    owner = QObject()
    connection = ReadConnection()
    jobs = Jobs("test", owner, on_exit=connection.close)
    worker = jobs._worker
    started = threading.Event()
    called: list[object] = []

    def endless(task: Task) -> int:
        def run(conn: sqlite3.Connection) -> int:
            started.set()
            return int(conn.execute(ENDLESS).fetchone()[0])

        return query(task, connection, workspace, run)

    jobs.submit(endless, on_done=called.append, on_failed=called.append, on_partial=called.append)
    assert started.wait(5)
    shiboken6.delete(owner)  # the owner goes, and its lane with it, while the job runs
    worker.join(5)
    assert not worker.is_alive(), "the thread ended: its query was stopped"
    qtbot.wait(50)
    assert called == [] and connection._conn is None


def test_a_closed_lane_takes_no_more_jobs(qtbot) -> None:
    owner = QObject()
    jobs = Jobs("test", owner)
    jobs.submit(lambda task: 1)
    jobs.close()
    with pytest.raises(RuntimeError, match="closed"):
        jobs.submit(lambda task: 2)
    jobs._worker.join(5)
    assert not jobs._worker.is_alive()
