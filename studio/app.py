"""rl-studio: open a workspace, launch and steer runs, watch live curves.

    rl-studio [--workspace PATH]
    rl-studio --workspace PATH --screenshot OUT.png [--view dashboard|inspector|rubric|...] [--run ID]

Builds the state (workspace reader, metrics cache, watcher, engine client), the main window, and
connects them. With no workspace argument it opens the default one in the user's data folder,
creating it and seeding the bundled demo on first start.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

_T0 = time.time()


def _run_ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a run id or a comma-separated list of run ids"
        ) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from studio.widgets.main_window import VIEWS

    parser = argparse.ArgumentParser(prog="rl-studio", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workspace", "-w", help="workspace file (default: the one in your RL Studio data folder)"
    )
    parser.add_argument(
        "--screenshot", metavar="OUT.png", help="render the window offscreen at 1400x900, save, exit"
    )
    parser.add_argument(
        "--view", choices=VIEWS, default="dashboard", help="the view to show in the screenshot"
    )
    parser.add_argument(
        "--run",
        type=_run_ids,
        help="the run to show (default: the newest); 3,1,2 shows run 3 compared with 1 and 2",
    )
    parser.add_argument("--size", default="1400x900", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _freeze_startup_objects() -> None:
    """Move what startup made (Qt wrappers, pyqtgraph, the views) out of the garbage collector's
    sight: a full collection then walks only what the session allocates since, which keeps its pauses
    under a frame while a large rollouts table scrolls (benchmarks/studio_inspector.py)."""
    import gc

    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--screenshot" in argv or any(a.startswith("--screenshot=") for a in argv):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    args = parse_args(argv)
    from PySide6.QtGui import QIcon

    from engine.contract.paths import ICON, default_workspace
    from studio.state.authored import seed_demo
    from studio.state.studio_state import StudioState
    from studio.state.workspace import WorkspaceError
    from studio.widgets.main_window import MainWindow
    from studio.widgets.style import apply_style

    app.setApplicationName("RL Studio")
    app.setOrganizationName("RL Studio")
    app.setDesktopFileName("rl-studio")
    app.setWindowIcon(QIcon(str(ICON)))
    apply_style(app)

    state = StudioState()
    path = Path(args.workspace).expanduser() if args.workspace else default_workspace()
    try:
        db = state.open_workspace(path)
    except WorkspaceError as exc:
        if args.screenshot:
            print(f"rl-studio: {exc}", file=sys.stderr)
            return 2
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, "RL Studio", str(exc))
        return 2
    if not args.workspace:
        seed_demo(db)
        state.sig_authored_changed.emit()

    window = MainWindow(state)
    if args.screenshot:
        from studio.screenshot import take_screenshot

        width, height = (int(v) for v in args.size.lower().split("x"))
        return take_screenshot(window, state, Path(args.screenshot), args.view, args.run, (width, height))

    if os.environ.get("RL_STUDIO_REPORT_STARTUP"):
        _report_first_paint(window)
    window.show()
    from PySide6.QtCore import QTimer

    QTimer.singleShot(2000, _freeze_startup_objects)
    code = app.exec()
    if state.training_here():
        # Runs the user chose to keep training: destroying their QProcess objects would kill them, so
        # leave without running destructors. Settings were saved when the window closed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _report_first_paint(window: object) -> None:
    """Print the wall-clock time of the window's first paint (benchmarks/studio_startup.py reads it)."""
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    class FirstPaint(QObject):
        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and not getattr(self, "done", False):
                self.done = True
                QTimer.singleShot(0, self._report)
            return False

        def _report(self) -> None:
            print(f"first-paint {time.time():.6f} imports-start {_T0:.6f}", flush=True)
            if os.environ.get("RL_STUDIO_REPORT_STARTUP") == "exit":
                QApplication.quit()

    watcher = FirstPaint(window)  # type: ignore[arg-type]
    window.installEventFilter(watcher)  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
