"""Background jobs: the one way the studio runs work off the GUI thread (engines are processes instead).

A ``Jobs`` lane belongs to a QObject owner (a model, a cache, a dialog) and runs the owner's jobs in
order on one worker thread. A job is a plain function of a ``Task``; it touches no Qt object. What it
returns, what it reports on the way (``task.report``) and what it raises come back to the GUI thread,
where the owner's callbacks run: a GUI-thread timer drains a thread-safe queue while jobs are awaited,
at most every ``poll_ms``, so a job that reports often cannot flood the event loop.

Nothing crosses threads through Qt: a signal emitted from a worker while its receiver is being deleted on
the GUI thread races inside the bindings, and a QThread destroyed while it runs aborts the process. So
workers are Python threads that hold no reference to the owner, and results travel on a plain queue.

Cancellation is cooperative: ``cancel`` marks a job's Task; the job looks (``task.cancelled``,
``task.check()``), and a workspace query run through ``query`` is stopped by SQLite itself within
about 20 ms. A cancelled job's results are dropped, even those already queued.

A job never outlives its owner unsafely: when the owner is deleted (and with it this lane, its child),
every job is cancelled, no callback runs again, and the thread ends after the job it is running, without
touching Qt. Job functions must not capture the owner or any Qt object: capture plain values.

Modelled on Orange's concurrent-widget helper (orangewidget.utils.concurrent), without its thread pool:
each lane is one thread, because the studio's jobs read the workspace in order, through a read-only
connection the lane keeps (``ReadConnection`` and ``query`` below).
"""

from __future__ import annotations

import gc
import itertools
import queue
import sqlite3
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QTimer

from engine.contract import schema

T = TypeVar("T")
_ids = itertools.count(1)


class Cancelled(Exception):
    """Raised by ``Task.check()`` in a job that was cancelled; the lane ends the job quietly."""


class Task:
    """A job's handle, seen by the job's function on the worker thread and by its owner on the GUI thread."""

    def __init__(self) -> None:
        self.id = next(_ids)
        self._cancelled = threading.Event()
        self._post: Callable[[tuple[int, str, Any]], None] | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        """Stop here (raise Cancelled) if the job was cancelled."""
        if self._cancelled.is_set():
            raise Cancelled

    def report(self, value: Any) -> None:
        """Hand a partial result (or progress) to the owner's ``on_partial``, in order, on the GUI thread."""
        if self._post is not None and not self._cancelled.is_set():
            self._post((self.id, "partial", value))

    def cancel(self) -> None:
        """Idempotent. Its results are dropped; a running job stops where it next looks."""
        self._cancelled.set()


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


class _Worker(threading.Thread):
    """One thread running jobs in order. It knows the result queue and the jobs, never their owner."""

    def __init__(
        self, name: str, results: queue.SimpleQueue[tuple[int, str, Any]], on_exit: Callable[[], None] | None
    ):
        super().__init__(name=name, daemon=True)
        self.jobs: queue.SimpleQueue[tuple[Task, Callable[[Task], Any]] | None] = queue.SimpleQueue()
        self.results = results
        self.on_exit = on_exit

    def run(self) -> None:
        try:
            while (item := self.jobs.get()) is not None:
                task, fn = item
                if not task.cancelled:
                    self._run(task, fn)
        finally:
            if self.on_exit is not None:
                with no_collection_in_this_thread():
                    self.on_exit()

    def _run(self, task: Task, fn: Callable[[Task], Any]) -> None:
        task._post = self.results.put_nowait
        outcome: tuple[int, str, Any] | None
        with no_collection_in_this_thread():
            try:
                outcome = (task.id, "done", fn(task))
            except Cancelled:
                outcome = None
            except Exception as exc:  # handed to the owner's on_failed: the lane goes on
                outcome = (task.id, "failed", exc)
        if outcome is not None and not task.cancelled:
            self.results.put_nowait(outcome)


@dataclass
class _Callbacks(Generic[T]):
    on_done: Callable[[T], None] | None
    on_partial: Callable[[Any], None] | None
    on_failed: Callable[[BaseException], None] | None


def _shut_down(worker: _Worker, tasks: dict[int, Task]) -> None:
    """Cancel every job and let the thread end (it holds nothing of the owner)."""
    for task in list(tasks.values()):
        task.cancel()
    tasks.clear()
    worker.jobs.put(None)


class Jobs(QObject):
    """One lane of background jobs for its parent (the owner); see the module docstring."""

    def __init__(
        self,
        name: str,
        parent: QObject,
        poll_ms: int = 10,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        """``on_exit`` runs on the worker thread as it ends (e.g. closing a connection the jobs share)."""
        super().__init__(parent)
        self.name = name
        self._results: queue.SimpleQueue[tuple[int, str, Any]] = queue.SimpleQueue()
        self._worker = _Worker(name, self._results, on_exit)
        self._tasks: dict[int, Task] = {}
        """Jobs whose results are awaited; Tasks hold nothing of the owner."""
        self._callbacks: dict[int, _Callbacks[Any]] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._drain)
        self._closed = False
        # The thread ends when this lane does: deleted with its owner, closed, or collected.
        worker, tasks = self._worker, self._tasks
        self.destroyed.connect(lambda *_: _shut_down(worker, tasks))
        weakref.finalize(self, _shut_down, worker, tasks)

    @property
    def busy(self) -> bool:
        """Some job's results are still awaited."""
        return bool(self._tasks)

    def submit(
        self,
        fn: Callable[[Task], T],
        on_done: Callable[[T], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
        on_failed: Callable[[BaseException], None] | None = None,
    ) -> Task:
        """Run ``fn(task)`` after the jobs already submitted. Its return value goes to ``on_done``, what it
        reports to ``on_partial``, an exception to ``on_failed`` (default: printed to stderr), each on
        the GUI thread, never after the job was cancelled or the lane closed."""
        if self._closed:
            raise RuntimeError(f"the {self.name} jobs were closed")
        task = Task()
        self._tasks[task.id] = task
        self._callbacks[task.id] = _Callbacks(on_done, on_partial, on_failed)
        if not self._worker.is_alive():
            self._worker.start()
        self._worker.jobs.put((task, fn))
        if not self._timer.isActive():
            self._timer.start()
        return task

    def cancel(self, task: Task) -> None:
        task.cancel()
        self._tasks.pop(task.id, None)
        self._callbacks.pop(task.id, None)

    def cancel_all(self) -> None:
        for task in list(self._tasks.values()):
            self.cancel(task)

    def close(self) -> None:
        """Cancel everything and end the thread (after the job it runs). The lane takes no more jobs."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        self._callbacks.clear()
        _shut_down(self._worker, self._tasks)

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Block until every awaited job has reported and its callbacks ran (tests and scripts only)."""
        import time

        deadline = time.monotonic() + timeout_s
        while self._tasks and time.monotonic() < deadline:
            self._drain()
            if self._tasks:
                time.sleep(0.005)
        return not self._tasks

    def _drain(self) -> None:
        while True:
            try:
                task_id, kind, value = self._results.get_nowait()
            except queue.Empty:
                break
            callbacks = self._callbacks.get(task_id)
            if callbacks is None:
                continue  # cancelled after it reported
            if kind == "partial":
                if callbacks.on_partial is not None:
                    callbacks.on_partial(value)
                continue
            self._tasks.pop(task_id, None)
            self._callbacks.pop(task_id, None)
            if kind == "done":
                if callbacks.on_done is not None:
                    callbacks.on_done(value)
            elif callbacks.on_failed is not None:
                callbacks.on_failed(value)
            else:
                print(f"[studio] background job ({self.name}) failed:", file=sys.stderr)
                traceback.print_exception(value, file=sys.stderr)
        if not self._tasks:
            self._timer.stop()


# ---- reading the workspace in a lane --------------------------------------------------------------------
class ReadConnection:
    """A read-only connection to a workspace, opened on first use and used only on its lane's thread;
    pass its ``close`` as the lane's ``on_exit``."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._path = ""

    def get(self, path: str) -> sqlite3.Connection:
        if self._conn is None or path != self._path:
            self.close()
            self._conn = schema.connect(path, readonly=True, timeout_s=5.0)
            self._path = path
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


CANCEL_CHECK_OPS = 200_000
"""SQLite steps between two looks at whether a query's job was cancelled: about 20 ms of work. Each look
needs the GIL, which the GUI thread may hold, so a look every few steps would slow the query down."""


def query(task: Task, connection: ReadConnection, path: str, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` on the lane's connection to ``path``; if ``task`` is cancelled, SQLite stops its query.

    (A progress handler, not sqlite3_interrupt from the cancelling thread: an interrupt that arrives
    between two statements of a job is lost, and the next statement runs to its end.)"""
    conn = connection.get(path)
    conn.set_progress_handler(task._cancelled.is_set, CANCEL_CHECK_OPS)
    try:
        return work(conn)
    except sqlite3.OperationalError:
        if task.cancelled:  # "interrupted": what cancelling asked for
            raise Cancelled from None
        raise
    finally:
        conn.set_progress_handler(None, 0)
