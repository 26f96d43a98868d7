"""Render the dashboard of a demo run while it trains (the README's live screenshot).

    python docs/screenshots/live.py --workspace WS.sqlite --out docs/screenshots/live.png [--steps 70]

Opens the studio offscreen at 1400x900, starts the bundled demo from it (the engine is a child of the
window, as when a user clicks "Run the demo"), waits until the run reaches --steps, grabs the window,
then stops the run (graceful, with a checkpoint). The other screenshots come from
`rl-studio --screenshot`; see README.md here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=70)
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from engine.contract.paths import DEMO_CONFIG
    from studio.state.studio_state import StudioState
    from studio.widgets.main_window import MainWindow
    from studio.widgets.style import apply_style

    apply_style(app)
    state = StudioState()
    state.open_workspace(args.workspace)
    window = MainWindow(state)
    window.resize(1400, 900)
    window.show()
    state.launch(DEMO_CONFIG, name="demo")
    window.show_view("dashboard")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
        run = state.run(state.current_run) if state.current_run is not None else None
        if run is not None and run.step >= args.steps:
            break
    end = time.monotonic() + 1.0  # a few refresh ticks
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)
    ok = window.grab().save(args.out, "PNG")
    for proc in state.training_here():
        proc.send("stop")
        proc.process.waitForFinished(120_000)
    print(args.out if ok else "could not save")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
