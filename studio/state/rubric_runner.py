"""Running `rl-studio-engine rubric test`, `rubric redteam` and `rubric calibrate` on the rubric being edited.

The user's reward code never runs in the studio: each job writes the editor's current rubric (TOML and
source files) and the samples to a temporary folder, starts ``rl-studio-engine rubric test|redteam ...
--json`` the way the studio starts every engine (studio.engine_client.start_engine: RL_STUDIO_ENGINE, the
bundle's engine, or this interpreter), and parses the JSON it prints into the records of
engine/contract/command_outputs.py: a list of SampleScores, a RedteamOutput, or a CalibrateOutput.

One job at a time; starting another cancels the one running. Cancel kills the engine's whole process
group (the reward workers it spawned included).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal

from engine.contract.command_outputs import (
    CommandOutputError,
    parse_rubric_calibrate,
    parse_rubric_redteam,
    parse_rubric_test,
)
from studio.engine_client import start_engine
from studio.state.rubric_doc import RubricDocument

MAX_PICKER_ROWS = 500

# ---- samples -------------------------------------------------------------------------------------------


def read_rows(path: str | Path, limit: int = MAX_PICKER_ROWS) -> list[dict[str, Any]]:
    """The first `limit` JSON-object rows of a JSONL dataset (bad lines are skipped)."""
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def text_of(value: Any) -> str:
    """A prompt or completion as one line of text (message lists show their contents)."""
    if isinstance(value, list):
        return " | ".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return "" if value is None else str(value)


def make_samples(
    rows: list[dict[str, Any]], completion_column: str | None, typed: str = ""
) -> list[dict[str, Any]]:
    """Test samples from dataset rows: each row's completion is its `completion_column` value, or `typed`."""
    samples = []
    for row in rows:
        sample = {k: v for k, v in row.items() if k not in ("completion", "completion_ids")}
        completion = row.get(completion_column) if completion_column else typed
        sample["completion"] = completion if isinstance(completion, str | list) else text_of(completion)
        samples.append(sample)
    return samples


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---- the job --------------------------------------------------------------------------------------------


class RubricJob(QObject):
    """One engine subprocess scoring the rubric. Signals carry the kind ('test' or 'redteam')."""

    sig_started = Signal(str)
    sig_finished = Signal(str, object)
    """(kind, the result: list[SampleScores] for 'test', RedteamOutput for 'redteam')"""
    sig_failed = Signal(str, str)
    """(kind, a message saying what went wrong: the engine's own error for a bad rubric)"""
    sig_cancelled = Signal(str)

    def __init__(self, parent: QObject | None = None, command: list[str] | None = None) -> None:
        super().__init__(parent)
        self.command = command
        """The engine command line; None: studio.engine_client.engine_command() when a job starts."""
        self.argv: list[str] = []
        self.kind = ""
        self.started_at = 0.0
        self.samples: list[dict[str, Any]] = []
        # One QProcess for every job, restarted each time: deleting a finished one (deleteLater) while
        # this job may be deleted too crashes in the bindings, and processes kept per job would pile up.
        self._process = QProcess(self)
        self._process.finished.connect(self._on_finished)
        self._process.errorOccurred.connect(self._on_error)
        self._active = False
        """A job was started and has not reported yet."""
        self._folder: Path | None = None
        self._cancelled = False

    @property
    def running(self) -> bool:
        return self._process.state() != QProcess.ProcessState.NotRunning

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at if self.started_at else 0.0

    def start_test(self, doc: RubricDocument, samples: list[dict[str, Any]]) -> None:
        self.samples = samples
        self._start("test", doc, samples, ["--samples"])

    def start_redteam(self, doc: RubricDocument, rows: list[dict[str, Any]]) -> None:
        self.samples = rows
        self._start("redteam", doc, rows, ["--dataset"])

    def start_calibrate(self, doc: RubricDocument, labelled: list[dict[str, Any]]) -> None:
        """`rubric calibrate`: the rubric's agreement with human-labelled rows (a CalibrateOutput)."""
        self.samples = labelled
        self._start("calibrate", doc, labelled, ["--labels"])

    def _start(self, kind: str, doc: RubricDocument, rows: list[dict[str, Any]], option: list[str]) -> None:
        self.cancel()
        if self.running:  # SIGKILL did not end it within cancel's wait: a stuck kernel call
            self.sig_failed.emit(kind, "the previous engine process is still stopping; try again shortly")
            return
        self.kind = kind
        self._cancelled = False
        folder = Path(tempfile.mkdtemp(prefix=f"rl-studio-rubric-{kind}-"))
        self._folder = folder
        try:
            rubric_path = doc.write_to(folder / "rubric")
            data = folder / "samples.jsonl"
            _write_jsonl(data, rows)
        except (OSError, ValueError) as exc:
            self._cleanup()
            self.sig_failed.emit(kind, f"could not write the rubric for the test: {exc}")
            return
        self.started_at = time.monotonic()
        self._active = True
        args = ["rubric", kind, str(rubric_path), *option, str(data), "--json"]
        # In the job's folder: a rubric's relative paths and anything its code writes stay there.
        self.argv = start_engine(self._process, args, self.command, cwd=folder)
        self.sig_started.emit(kind)

    def cancel(self) -> None:
        """Stop the running job, if any (idempotent). Emits sig_cancelled."""
        process = self._process
        if not self._active or not self.running:
            return
        self._cancelled = True
        pid = int(process.processId())
        if sys.platform != "win32" and pid > 0:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                process.kill()
        else:
            process.kill()
        process.waitForFinished(3000)

    def wait(self, timeout_ms: int = 60_000) -> bool:
        """Block until the job ends (the screenshot path and scripts; the GUI never waits)."""
        if not self.running:
            return True
        return self._process.waitForFinished(timeout_ms) or not self.running

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if not self._active or error != QProcess.ProcessError.FailedToStart:
            return
        self._active = False
        self._cleanup()
        self.sig_failed.emit(
            self.kind,
            f"the engine could not be started ({' '.join(self.argv[:3])} ...): {self._process.errorString()}. "
            "Install the engine (pip install rl-studio) so that `rl-studio-engine` is on PATH, or set "
            "RL_STUDIO_ENGINE to the command that starts it.",
        )

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        if not self._active:
            return
        self._active = False
        process = self._process
        stdout = bytes(process.readAllStandardOutput().data()).decode("utf-8", errors="replace")
        stderr = bytes(process.readAllStandardError().data()).decode("utf-8", errors="replace")
        self._cleanup()
        kind = self.kind
        if self._cancelled:
            self.sig_cancelled.emit(kind)
            return
        if status == QProcess.ExitStatus.CrashExit:
            self.sig_failed.emit(kind, "the engine process was killed or crashed.\n" + _tail(stderr))
            return
        if code != 0:
            self.sig_failed.emit(kind, _engine_error(stderr) or f"the engine exited with code {code}")
            return
        try:
            parse = {"test": parse_rubric_test, "calibrate": parse_rubric_calibrate}.get(
                kind, parse_rubric_redteam
            )
            result: object = parse(stdout)
        except CommandOutputError as exc:
            self.sig_failed.emit(kind, f"{exc}\n" + _tail(stderr))
            return
        self.sig_finished.emit(kind, result)

    def _cleanup(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _engine_error(stderr: str) -> str:
    """The engine's one-line `error: ...` message (bad rubric, bad samples), else the stderr tail."""
    for line in reversed(stderr.strip().splitlines()):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return _tail(stderr)
