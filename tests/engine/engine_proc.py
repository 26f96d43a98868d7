"""Drive a real engine subprocess: read its JSON-line events in a thread, send commands on stdin."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import engine_cmd, engine_env

from engine.contract.protocol import Event, command_line, parse_event


class EngineProcess:
    def __init__(self, *args: str, cwd: Path | None = None):
        self.proc = subprocess.Popen(
            engine_cmd(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=engine_env(),
            cwd=cwd,
        )
        self.events: list[Event] = []
        self._queue: queue.Queue[Event] = queue.Queue()
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = parse_event(line)  # anything else on stdout is a protocol violation and fails the test
            self.events.append(event)
            self._queue.put(event)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def send(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command_line(cmd) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 240.0) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self._queue.empty():
                    time.sleep(0.3)
                    if self._queue.empty():
                        raise AssertionError(
                            f"engine exited ({self.proc.returncode}) first:\n{self.stderr[-3000:]}"
                        ) from None
                continue
            if predicate(event):
                return event
        raise AssertionError(
            f"timed out waiting for an event; last events: {[e.type for e in self.events[-10:]]}"
        )

    def finish(self, timeout: float = 240.0) -> int:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.2)
        return code
