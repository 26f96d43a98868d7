"""The playground process's I/O (engine/playground.py): typed messages out on the real stdout, requests in
from stdin on a thread, and the streamer that turns generated tokens into `token` messages.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import IO, Any

from engine.contract.playground import (
    CancelRequest,
    Error,
    GenerateRequest,
    Message,
    PlaygroundProtocolError,
    Token,
    parse_request,
)


class Output:
    """Typed messages on the real stdout; everything else that prints goes to stderr."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._out: IO[str] = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)  # a library (or C code) that prints cannot corrupt the messages
        sys.stdout = sys.stderr
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        with self._lock:
            try:
                self._out.write(message.to_json() + "\n")
                self._out.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the studio went away; stdin's end stops the loop


def log(message: str) -> None:
    print(f"[playground] {message}", file=sys.stderr, flush=True)


# ---- streaming ---------------------------------------------------------------------------------------------
class TokenStream:
    """A transformers streamer that sends each newly decoded piece of text as a `token` message.

    It decodes the whole completion each time and sends what was added, holding back a piece that ends in
    an incomplete UTF-8 character, so a multi-token character arrives whole."""

    def __init__(self, tokenizer: Any, send: Any, request_id: str, source: str) -> None:
        self.tokenizer = tokenizer
        self.send = send
        self.request_id = request_id
        self.source = source
        self.ids: list[int] = []
        self.sent = ""
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() hands the prompt first
            self._prompt_seen = True
            return
        self.ids.extend(int(x) for x in value.reshape(-1).tolist())
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):
            return
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.send(Token(id=self.request_id, source=self.source, text=text[len(self.sent) :]))
            self.sent = text


class CancelCriteria:
    """Stops generate() between two tokens once the request is cancelled."""

    def __init__(self, cancelled: threading.Event) -> None:
        self.cancelled = cancelled

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.cancelled.is_set(), dtype=torch.bool)


# ---- the loop ------------------------------------------------------------------------------------------------
class Requests:
    """Reads stdin on a thread: requests queue up in order, cancels take effect at once (even for a request
    still waiting). At the end of stdin the requests already read are answered, then the process exits
    (the studio kills a playground it no longer wants instead of waiting for it)."""

    def __init__(self, out: Output, stdin: IO[str]) -> None:
        self.out = out
        self.queue: queue.SimpleQueue[tuple[GenerateRequest, threading.Event] | None] = queue.SimpleQueue()
        self.cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._read, args=(stdin,), daemon=True, name="playground-stdin").start()

    def _read(self, stdin: IO[str]) -> None:
        for line in stdin:
            if not line.strip():
                continue
            try:
                request = parse_request(line)
            except PlaygroundProtocolError as exc:
                self.out.send(Error(id=None, source=None, message=str(exc), kind="input"))
                continue
            with self._lock:
                if isinstance(request, CancelRequest):
                    event = self.cancels.get(request.cancel)
                    if event is not None:
                        event.set()
                    continue
                event = self.cancels.setdefault(request.id, threading.Event())
            self.queue.put((request, event))
        self.queue.put(None)  # the requests already read are still answered; then the process ends

    def finished(self, request_id: str) -> None:
        with self._lock:
            self.cancels.pop(request_id, None)
