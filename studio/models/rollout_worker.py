"""The inspector's background query threads: each owns a read-only workspace connection and runs
jobs in order; a job of a newer generation interrupts an older one (see studio.models.rollouts_model).

The workers touch no Qt object: results go through ``deliver`` onto a queue the GUI thread drains.
"""

from __future__ import annotations

import gc
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from engine.contract import schema

Deliver = Callable[[str, int, Any], None]
"""(kind, generation, payload) onto the model's result queue: kind is window, counted or failed."""


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextmanager
def no_collection_in_this_thread() -> Iterator[None]:
    """Keep Python's cyclic garbage collector off while a worker runs a job.

    The collector runs in whichever thread allocates when it is due. Run in a worker, it may free cyclic
    garbage holding Qt objects (any parentless QObject of the app, not only ours) and so delete them
    outside the GUI thread, which crashes Qt. Off while any worker is busy, it runs on the GUI thread's
    next allocation instead. (If the app already collects on a GUI timer with the collector disabled,
    as pyqtgraph's GarbageCollector does, this changes nothing.)
    """
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


@dataclass
class Job:
    gen: int
    path: str
    work: Callable[[sqlite3.Connection], None]


class QueryWorker(threading.Thread):
    """One thread, one read-only connection, jobs in order. Submitting a job of a newer generation
    skips older queued ones and interrupts an older one that is running (sqlite3_interrupt, which is
    safe from another thread and costs the running query nothing until it is used)."""

    def __init__(self, name: str, deliver: Deliver) -> None:
        super().__init__(name=name, daemon=True)
        self.deliver = deliver
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.latest = 0
        self.running_gen = 0
        self._conn: sqlite3.Connection | None = None
        self._path = ""

    def submit(self, job: Job) -> None:
        self.cancel_before(job.gen)
        self.jobs.put(job)

    def cancel_before(self, gen: int) -> None:
        """Forget jobs older than ``gen``; interrupt one if it is running."""
        self.latest = max(self.latest, gen)
        conn = self._conn
        if conn is not None and self.running_gen < gen and self.is_alive():
            with suppress(sqlite3.ProgrammingError):  # closed meanwhile
                conn.interrupt()

    def stop(self) -> None:
        self.cancel_before(1 << 62)
        self.jobs.put(None)

    def _connection(self, path: str) -> sqlite3.Connection:
        if self._conn is None or path != self._path:
            if self._conn is not None:
                self._conn.close()
            self._conn = schema.connect(path, readonly=True, timeout_s=5.0)
            self._path = path
        return self._conn

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if job.gen < self.latest:
                continue
            self.running_gen = job.gen
            with no_collection_in_this_thread():
                self._run(job)
            self.running_gen = 0
        if self._conn is not None:
            self._conn.close()

    def _run(self, job: Job) -> None:
        for attempt in (1, 2):
            try:
                job.work(self._connection(job.path))
                return
            except sqlite3.OperationalError as exc:
                if "interrupt" not in str(exc):
                    self._emit_failure(job.gen, exc)
                    return
                # Interrupted. Meant for an older job that had just ended? Then run this one again
                # (rows it already delivered are recognised by id).
                if job.gen < self.latest or attempt == 2:
                    return
            except (sqlite3.Error, OSError) as exc:
                self._emit_failure(job.gen, exc)
                return

    def _emit_failure(self, gen: int, exc: BaseException) -> None:
        self.deliver("failed", gen, f"Could not read the rollouts: {exc}")


def stop_workers(*workers: QueryWorker) -> None:
    for worker in workers:
        worker.stop()
