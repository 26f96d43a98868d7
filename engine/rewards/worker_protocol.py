"""The messages between the engine and a reward worker, defined once for both sides.

Each message is a length-prefixed pickle of one of the dataclasses below: requests go to the worker on
its stdin, replies come back on its original stdout. The engine unpickles replies with `load_reply`,
which accepts only these reply types and plain data (numbers, strings, lists, dicts): a worker whose
code was tampered with cannot make the engine import or run anything.

Stdlib only: the worker imports this module before any user code.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass, field
from typing import IO, Any

HEADER = struct.Struct("<I")


@dataclass(frozen=True)
class FunctionSpec:
    """One function a worker imports: from a file beside the rubric, or inline code."""

    filename: str
    code: str
    display: str
    """How messages name where the code is: `rewards.py`, or `the inline code of 'name'`."""
    function: str
    style: str | None
    is_file: bool


# ---- requests (engine -> worker) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    functions: dict[str, FunctionSpec]
    rubric_dir: str
    load_timeout_s: float


@dataclass(frozen=True)
class Call:
    id: int
    fid: str
    batch: bytes
    """The batch, pickled once per batch by ScoringContext.worker_blob and shared by every worker."""
    rows: list[int]
    timeout_s: float


@dataclass(frozen=True)
class Exit:
    pass


Request = Load | Call | Exit


# ---- replies (worker -> engine) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    pid: int
    memory_limit: str | None
    """The limit the OS enforces (`RLIMIT_DATA 4096 MB`), or None where none could be set."""


@dataclass(frozen=True)
class Loaded:
    functions: dict[str, dict[str, Any]]
    """Function id -> its convention analysis (engine.rewards.conventions.analyse)."""
    errors: dict[str, str]
    """Function id -> why it could not be loaded."""
    files: list[str]
    """Modules beside the rubric that the user code imported (stored with the rubric version)."""


@dataclass(frozen=True)
class Result:
    id: int
    values: list[float | None]
    errors: list[str | None]
    metrics: dict[str, float] = field(default_factory=dict)
    columns: dict[str, list[Any]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Fatal:
    """A failure in the worker's own code (not the user's): the request could not be answered."""

    id: int | None
    message: str


Reply = Hello | Loaded | Result | Fatal
REPLY_TYPES = {cls.__name__: cls for cls in (Hello, Loaded, Result, Fatal)}


# ---- framing --------------------------------------------------------------------------------------------


def frame(message: Request | Reply) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def write_message(stream: IO[bytes], message: Request | Reply) -> None:
    stream.write(frame(message))
    stream.flush()


def read_request(stream: IO[bytes]) -> Request:
    """The worker's side: block for the next request. Raises EOFError when the engine has gone."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    size = HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    request = pickle.loads(data)
    if not isinstance(request, (Load, Call, Exit)):
        raise TypeError(f"not a reward worker request: {type(request).__name__}")
    return request


class _ReplyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name in REPLY_TYPES:
            return REPLY_TYPES[name]
        raise pickle.UnpicklingError(f"a reply may not hold {module}.{name}")


def load_reply(data: bytes) -> Reply:
    """The engine's side: one reply, refusing anything but the reply types and plain data."""
    reply = _ReplyUnpickler(io.BytesIO(data)).load()
    if not isinstance(reply, (Hello, Loaded, Result, Fatal)):
        raise pickle.UnpicklingError(f"not a reward worker reply: {type(reply).__name__}")
    return reply


class ReplyFramer:
    """Cuts a byte stream into replies as it arrives (the engine reads without blocking on it)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Reply]:
        self.buffer += chunk
        replies = []
        while len(self.buffer) >= HEADER.size:
            size = HEADER.unpack_from(self.buffer)[0]
            end = HEADER.size + size
            if len(self.buffer) < end:
                break
            replies.append(load_reply(bytes(self.buffer[HEADER.size : end])))
            del self.buffer[:end]
        return replies
