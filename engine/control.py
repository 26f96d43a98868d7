"""The engine's side of the protocol: events out on the real stdout, commands in on stdin.

`claim_stdout()` must run before anything else can print: it keeps the process's real stdout for
JSON lines and points both file descriptor 1 and sys.stdout at stderr, so TRL, tqdm or a C library
that prints cannot corrupt the protocol.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from engine.contract.protocol import Event, ProtocolError, make_event, parse_command

_protocol_out: IO[str] | None = None
_emit_lock = threading.Lock()
_listeners: list[Callable[[Event], None]] = []


def add_listener(listener: Callable[[Event], None]) -> None:
    """Also hand every event to `listener` (the demo's terminal progress bar)."""
    _listeners.append(listener)


def quiet() -> None:
    """Send events nowhere on stdout (commands that print their own results there)."""
    global _protocol_out
    _protocol_out = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def is_main_process() -> bool:
    """False in the non-main processes of `accelerate launch` / torchrun (they neither emit nor record)."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def claim_stdout() -> None:
    global _protocol_out
    if _protocol_out is not None:
        return
    sys.stdout.flush()
    _protocol_out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def emit(event: Event | str, **fields: Any) -> Event:
    """Write one event line: a typed event (``emit(Progress(run_id=1, ...))``) or a wire type and its
    fields (``emit("progress", run_id=1, ...)``), checked against the event's dataclass either way.
    A reader that went away (closed pipe) is not an error: the run goes on."""
    global _protocol_out
    if isinstance(event, str):
        event = make_event(event, **fields)
    elif fields:
        raise TypeError("emit() takes a typed event or a type name with fields, not both")
    if not is_main_process():
        return event
    for listener in _listeners:
        listener(event)
    out = _protocol_out or sys.stdout
    with _emit_lock:
        try:
            out.write(event.to_json() + "\n")
            out.flush()
        except (BrokenPipeError, OSError, ValueError):
            _protocol_out = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    return event


class Controller:
    """Run controls set from the stdin reader thread or a signal, read by the training loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.paused = False
        self.stop_requested = False
        self.checkpoint_requested = False
        self._wake = threading.Event()
        self.on_change: Callable[[str], None] | None = None

    def apply(self, cmd: str) -> None:
        with self._lock:
            if cmd == "pause":
                changed = not self.paused
                self.paused = True
            elif cmd == "resume":
                changed = self.paused
                self.paused = False
            elif cmd == "stop":
                changed = not self.stop_requested
                self.stop_requested = True
                self.paused = False
            elif cmd == "checkpoint":
                changed = not self.checkpoint_requested
                self.checkpoint_requested = True
            else:  # pragma: no cover - parse_command already rejects these
                return
        self._wake.set()
        if changed and self.on_change is not None:
            self.on_change(cmd)

    def take_checkpoint_request(self) -> bool:
        with self._lock:
            wanted, self.checkpoint_requested = self.checkpoint_requested, False
            return wanted

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early when a command arrives."""
        self._wake.wait(timeout=seconds)
        self._wake.clear()

    def listen(self, stream: IO[str] | None = None) -> threading.Thread:
        """Read JSON-line commands in a daemon thread. EOF on stdin means nobody steers: keep running."""
        source = stream or sys.stdin

        def read() -> None:
            for line in source:
                if not line.strip():
                    continue
                try:
                    self.apply(parse_command(line))
                except ProtocolError as exc:
                    print(f"[engine] ignored command: {exc}", file=sys.stderr, flush=True)

        thread = threading.Thread(target=read, name="engine-commands", daemon=True)
        thread.start()
        return thread

    def handle_sigterm(self) -> None:
        """SIGTERM (and Ctrl-C) mean a graceful stop with a checkpoint; a second one stops at once."""

        def handler(signum: int, frame: Any) -> None:
            if self.stop_requested:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            print(
                f"[engine] {signal.Signals(signum).name}: stopping after this step with a checkpoint",
                file=sys.stderr,
            )
            self.apply("stop")

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
