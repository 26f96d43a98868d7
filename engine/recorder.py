"""A background writer so recording never holds up training.

Every write of a run's records (rollouts, metrics) is queued here and done in order on one thread,
each committed before the event that announces it is emitted. Anything that needs the workspace to be
up to date (a status change, a checkpoint record, the end of the run) calls `flush()` first. A write
that fails (a full disk) is raised in the training thread at its next `submit` or `flush`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class Recorder:
    def __init__(self, max_pending: int = 64) -> None:
        # Bounded: if the disk falls far behind, training waits rather than holding unbounded rows in memory.
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="engine-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._error is None:  # after a failure, later writes would only fail the same way
                    fn, args = item
                    fn(*args)
            except BaseException as exc:
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._raise_pending()
        self._queue.put((fn, args))

    def flush(self) -> None:
        """Wait until every queued write is committed; raise the first one that failed."""
        self._queue.join()
        self._raise_pending()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=60)
