"""Whether the process that holds a run is still alive, and the status a reader should show for it.

A run row says `running` until its engine says otherwise; after a kill -9, a power cut or a full disk,
nothing says otherwise. So wherever a status is shown (the CLI's `runs`, the studio's runs list), an
active status is checked against its holder: the pid recorded in the row, and the lease token (the
process's start time), which tells a live holder from an unrelated process that got the same pid later.

Stdlib only: the studio calls this.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass

ACTIVE_STATUSES = ("queued", "running", "paused")
INTERRUPTED = "interrupted"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()[:8]
    except OSError:
        return ""


def process_start_token(pid: int) -> str | None:
    """A string that is the same for one process all its life and differs for any other process that
    gets the same pid later (its start time, and on Linux the boot). None when the process does not
    exist or its start time cannot be read here."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X"):  # a zombie (killed, not yet reaped) holds nothing
            return None
        start_ticks = fields[19]
        return f"linux:{_boot_id()}:{start_ticks.decode()}"
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None  # Linux, and there is no such process
    except (OSError, ValueError, IndexError):
        pass
    if sys.platform != "win32":
        try:
            out = subprocess.run(
                ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
        return f"ps:{out}" if out else None
    return None  # Windows: only the pid is checked (own_token falls back to it)


def own_token() -> str:
    return process_start_token(os.getpid()) or f"pid:{os.getpid()}"


def _pid_exists(pid: int) -> bool | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but it exists
    except OSError:
        return None
    return True


def holder_alive(pid: int | None, token: str | None) -> bool:
    """Whether the process recorded as a run's holder still runs.

    With a token recorded, the pid must exist and still have that start time (pid reuse is not a
    holder). Without one (a row written before leases existed), the pid existing is all we can check.
    """
    if not pid:
        return False
    if token:
        if token.startswith("pid:"):  # the holder could not read its own start time
            return bool(_pid_exists(pid))
        return process_start_token(pid) == token
    return bool(_pid_exists(pid))


@dataclass(frozen=True)
class RunState:
    status: str  # the stored status, or "interrupted" for an active run whose process is gone
    resumable: bool  # whether `resume` can continue it from a complete checkpoint
    stored_status: str

    @property
    def label(self) -> str:
        if self.status == INTERRUPTED:
            return "interrupted (resumable)" if self.resumable else "interrupted"
        return self.status


def derive_status(status: str, pid: int | None, token: str | None, has_complete_checkpoint: bool) -> RunState:
    """The status to show: an active status whose holder is gone is `interrupted`."""
    if status in ACTIVE_STATUSES and not holder_alive(pid, token):
        return RunState(INTERRUPTED, has_complete_checkpoint, status)
    resumable = status in ("stopped", "failed") and has_complete_checkpoint
    return RunState(status, resumable, status)


def run_states(conn: sqlite3.Connection, run_ids: list[int] | None = None) -> dict[int, RunState]:
    """Derived states of runs (all of them, or those listed), read with any connection, read-only too."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    token_col = "lease_token" if "lease_token" in cols else "NULL"
    sql = (
        f"SELECT r.id, r.status, r.pid, {token_col}, EXISTS(SELECT 1 FROM checkpoints c"
        " WHERE c.run_id = r.id AND c.complete = 1) FROM runs r"
    )
    args: list[int] = []
    if run_ids is not None:
        sql += f" WHERE r.id IN ({','.join('?' * len(run_ids))})"
        args = list(run_ids)
    return {
        int(rid): derive_status(status, pid, token, bool(has_ckpt))
        for rid, status, pid, token, has_ckpt in conn.execute(sql, args)
    }
