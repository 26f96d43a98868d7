"""Running `rl-studio-engine rubric test` and `rubric redteam` on the rubric being edited.

The user's reward code never runs in the studio: each job writes the editor's current rubric (TOML and
source files) and the samples to a temporary folder, starts ``python -m engine.cli rubric test|redteam
... --json`` in a QProcess, and parses the JSON it prints (shapes in engine/rewards/commands.py):

    test     [{"index", "total", "scores": {name: float|null}, "errors": {name: message}}]
    redteam  {"reference_mean": float|null, "cheats": [{"name", "mean_total", "flagged", "example"}]}

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

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

import engine.contract
from studio.state.rubric_doc import RubricDocument

REPO_ROOT = Path(engine.contract.__file__).resolve().parents[2]
MAX_PICKER_ROWS = 500


def engine_command() -> list[str]:
    return [sys.executable, "-m", "engine.cli"]


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
    """(kind, the parsed JSON result)"""
    sig_failed = Signal(str, str)
    """(kind, a message saying what went wrong: the engine's own error for a bad rubric)"""
    sig_cancelled = Signal(str)

    def __init__(self, parent: QObject | None = None, command: list[str] | None = None) -> None:
        super().__init__(parent)
        self.command = command or engine_command()
        self.kind = ""
        self.started_at = 0.0
        self.samples: list[dict[str, Any]] = []
        self._process: QProcess | None = None
        self._folder: Path | None = None
        self._cancelled = False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at if self.started_at else 0.0

    def start_test(self, doc: RubricDocument, samples: list[dict[str, Any]]) -> None:
        self.samples = samples
        self._start("test", doc, samples, ["--samples"])

    def start_redteam(self, doc: RubricDocument, rows: list[dict[str, Any]]) -> None:
        self.samples = rows
        self._start("redteam", doc, rows, ["--dataset"])

    def _start(self, kind: str, doc: RubricDocument, rows: list[dict[str, Any]], option: list[str]) -> None:
        self.cancel()
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
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        path = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", str(REPO_ROOT) + (os.pathsep + path if path else ""))
        env.insert("PYTHONIOENCODING", "utf-8")
        process.setProcessEnvironment(env)
        process.setWorkingDirectory(str(folder))
        if sys.platform != "win32":  # its own process group, so cancel reaches the reward workers too
            params = QProcess.UnixProcessParameters()
            params.flags = QProcess.UnixProcessFlag.CreateNewSession
            process.setUnixProcessParameters(params)
        process.finished.connect(lambda code, status, p=process: self._on_finished(p, code, status))
        process.errorOccurred.connect(lambda error, p=process: self._on_error(p, error))
        self._process = process
        self.started_at = time.monotonic()
        args = [*self.command[1:], "rubric", kind, str(rubric_path), *option, str(data), "--json"]
        process.start(self.command[0], args)
        self.sig_started.emit(kind)

    def cancel(self) -> None:
        """Stop the running job, if any (idempotent). Emits sig_cancelled."""
        process = self._process
        if process is None or process.state() == QProcess.ProcessState.NotRunning:
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
        if self._process is None:
            return True
        return self._process.waitForFinished(timeout_ms) or not self.running

    def _on_error(self, process: QProcess, error: QProcess.ProcessError) -> None:
        if process is not self._process or error != QProcess.ProcessError.FailedToStart:
            return
        self._process = None
        self._cleanup()
        self.sig_failed.emit(
            self.kind, f"the engine could not be started ({' '.join(self.command)}): {process.errorString()}"
        )

    def _on_finished(self, process: QProcess, code: int, status: QProcess.ExitStatus) -> None:
        if process is not self._process:
            return
        stdout = bytes(process.readAllStandardOutput().data()).decode("utf-8", errors="replace")
        stderr = bytes(process.readAllStandardError().data()).decode("utf-8", errors="replace")
        self._process = None
        process.deleteLater()
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
            result = json.loads(stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.sig_failed.emit(kind, "the engine printed no JSON result.\n" + _tail(stderr or stdout))
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
