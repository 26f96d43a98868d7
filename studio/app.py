"""rl-studio: open a workspace, launch and steer runs, watch live curves.

    rl-studio [--workspace PATH]
    rl-studio --workspace PATH --screenshot OUT.png [--view dashboard|inspector|rubric|...] [--run ID] [--tab tokens]

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

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
    parser.add_argument(
        "--row",
        type=int,
        default=0,
        help="with --view playground: the runs answer this row (0-based) of the first run's eval data",
    )
    parser.add_argument(
        "--tab",
        choices=("group", "history", "prompts", "tokens"),
        help="with --view inspector: the detail tab to show (tokens: the selected completion's heat map)",
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


HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")
"""Qt platforms that need no window system."""

NO_DISPLAY_HINT = (
    "To run it without one, render offscreen (QT_QPA_PLATFORM=offscreen rl-studio --screenshot OUT.png "
    "...) or start a virtual display (xvfb-run rl-studio)."
)


def display_problem(env: dict[str, str] | os._Environ[str], platform: str = sys.platform) -> str | None:
    """Why Qt will not be able to open a window here, or None. Only Linux-like systems need a display
    server named in the environment; Qt aborts the process (a core dump) when it finds none."""
    if platform in ("win32", "darwin"):
        return None
    chosen = [p.split(":")[0].strip() for p in env.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]
    if any(p in HEADLESS_PLATFORMS for p in chosen):
        return None
    x11, wayland = bool(env.get("DISPLAY")), bool(env.get("WAYLAND_DISPLAY"))
    if not chosen and (x11 or wayland):
        return None
    if ("xcb" in chosen and x11) or (any(p.startswith("wayland") for p in chosen) and wayland):
        return None
    if chosen:
        needed = "WAYLAND_DISPLAY" if all(p.startswith("wayland") for p in chosen) else "DISPLAY"
        why = f"QT_QPA_PLATFORM={env.get('QT_QPA_PLATFORM')} needs {needed}, which is not set"
    else:
        why = "neither DISPLAY nor WAYLAND_DISPLAY is set (no desktop session)"
    return f"rl-studio: no display to open the window on: {why}. {NO_DISPLAY_HINT}"


def _create_application() -> QApplication:
    """The QApplication. When Qt cannot open its platform (no reachable display server, missing system
    libraries) it aborts the process; say what happened and exit with code 2 instead of a core dump."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    said: list[str] = []

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        if kind == QtMsgType.QtFatalMsg:
            details = "\n".join(f"  {line}" for line in [*said, message][-6:])
            sys.stderr.write(
                f"rl-studio: Qt could not open the display (DISPLAY={os.environ.get('DISPLAY', '')!r}, "
                f"WAYLAND_DISPLAY={os.environ.get('WAYLAND_DISPLAY', '')!r}, "
                f"QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', '')!r}). Qt said:\n{details}\n"
                f"Check that the display server is running and reachable. {NO_DISPLAY_HINT}\n"
            )
            sys.stderr.flush()
            os._exit(2)
        said.append(message)  # shown once: below if the app starts, in the report above if it does not

    previous = qInstallMessageHandler(handler)
    try:
        app = QApplication([sys.argv[0]])
    finally:
        qInstallMessageHandler(previous)
    for message in said:
        sys.stderr.write(message + "\n")
    return app


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)  # --help and bad arguments end here, before anything needs a display
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        app = existing
    else:
        problem = display_problem(os.environ)
        if problem:
            print(problem, file=sys.stderr)
            return 2
        app = _create_application()
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
        return take_screenshot(
            window,
            state,
            Path(args.screenshot),
            args.view,
            args.run,
            (width, height),
            row=args.row,
            tab=args.tab,
        )

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
