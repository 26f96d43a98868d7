"""Keep a run's human log (stderr) to what matters; library noise goes to a debug file.

A training run's stderr is the log the studio shows and a terminal user reads: the config, the device,
a line every few steps, evaluations, checkpoints, errors. Libraries add deprecation FutureWarnings,
advisory messages and progress bars on every run. `route_library_noise` sends Python warnings and every
library logger (transformers, TRL, PEFT, accelerate, datasets, torch, ...) to
`<workspace>_files/runs/<id>/engine-debug.log` instead, says once on stderr where that file is, and
keeps library errors on stderr too, since those may explain a failure.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from engine.contract.paths import run_dir

DEBUG_LOG = "engine-debug.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_installed: list[logging.Handler] = []
_saved: dict[str, object] = {}
"""What routing changed: the root logger's level, whether transformers drew progress bars."""


def route_library_noise(workspace: str | Path, run_id: int) -> Path:
    """From now on, warnings and library logs of this process go to the run's debug file.

    Safe to call again (a resume in the same process): the previous routing is replaced. Under
    `accelerate launch` each process writes its own file (engine-debug.rank<N>.log beyond the first).
    """
    stop_routing()
    rank = int(os.environ.get("RANK", "0"))
    run_files = run_dir(workspace, run_id)
    run_files.mkdir(parents=True, exist_ok=True)
    path = run_files / (DEBUG_LOG if rank == 0 else f"engine-debug.rank{rank}.log")
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(_FORMAT))
    to_file.setLevel(logging.INFO)
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(logging.Formatter("[%(name)s] %(levelname)s: %(message)s"))
    errors.setLevel(logging.ERROR)

    root = logging.getLogger()
    _saved["root_level"] = root.level
    root.addHandler(to_file)
    root.addHandler(errors)
    root.setLevel(logging.INFO)
    _installed.extend((to_file, errors))
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> the file
    _quiet_transformers()
    print(f"[run {run_id}] library warnings and logs: {path}", file=sys.stderr, flush=True)
    return path


def _quiet_transformers() -> None:
    """transformers logs through its own stderr handler, not the root logger, and draws progress bars
    (`Loading weights`) that are noise in a log: hand its records to the root logger, drop the bars."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # the engine always has transformers; a bare contract-only install does not
        return
    if "transformers" not in _saved:
        _saved["transformers"] = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    hf_logging.disable_progress_bar()


def stop_routing() -> None:
    """Undo `route_library_noise` (tests, or a process that goes on to do something else)."""
    root = logging.getLogger()
    while _installed:
        handler = _installed.pop()
        root.removeHandler(handler)
        handler.close()
    if "root_level" in _saved:
        logging.captureWarnings(False)
        root.setLevel(int(_saved.pop("root_level")))  # type: ignore[call-overload]
    if "transformers" in _saved:
        from transformers.utils import logging as hf_logging

        hf_logging.enable_default_handler()
        hf_logging.disable_propagation()
        if _saved.pop("transformers"):
            hf_logging.enable_progress_bar()
