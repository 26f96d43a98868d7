"""`rl-studio --screenshot`: render one view offscreen at a fixed size and save it as PNG."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from studio.state.studio_state import StudioState
from studio.widgets.main_window import MainWindow


def _settle(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def take_screenshot(
    window: MainWindow,
    state: StudioState,
    out: Path,
    view: str,
    run_ids: list[int] | None,
    size: tuple[int, int],
    row: int = 0,
    tab: str | None = None,
) -> int:
    window.resize(*size)
    window.show()
    if view in ("dashboard", "inspector", "playground"):
        latest = state.db.latest_run_id() if state.db else None
        ids = run_ids or ([latest] if latest is not None else [])
        for run_id in ids:
            if state.run(run_id) is None:
                print(
                    f"rl-studio: there is no run {run_id} in {state.db.path if state.db else '?'}",
                    file=sys.stderr,
                )
                return 2
            state.load_metrics(run_id, background=False)  # the full history, not the overview
        if ids:
            state.select_run(ids[0], compare=ids[1:])
    window.show_view(view)
    if view == "inspector" and tab:  # a detail tab other than the group (tokens: the heat map)
        inspector = window.inspector
        pages = {"group": inspector.group, "history": inspector.history, "prompts": inspector.prompts}
        inspector.tabs.setCurrentWidget(pages.get(tab, inspector.tokens))
    # A view may fill itself with real content first (the rubric editor runs its test on sample rows).
    prepare = getattr(window.views.get(view), "prepare_screenshot", None)
    if view == "playground":  # the checked runs answer a dataset row (streamed, then scored)
        window.playground.prepare_screenshot(row=row)
    elif callable(prepare):
        prepare()
    _settle(0.4)
    window.dashboard.grid.refresh()
    _settle(0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = window.grab().save(str(out), "PNG")
    window.playground.shutdown()
    if not saved:
        print(f"rl-studio: could not write {out}", file=sys.stderr)
        return 1
    print(out)
    return 0
