"""The rollout inspector on a run with 1,000,000 rollouts: first page, filter changes, scrolling.

    python benchmarks/studio_inspector.py [--rollouts 1000000] [--workspace PATH] [--keep]

Builds a workspace (groups of 8, three criteria, ~1% criterion errors, ~8% truncated, ~30% zero-std
groups, full-text index, 2,000 labels) with executemany in one transaction, then drives the real
RolloutsModel under a shown QTableView (offscreen) and prints, in one run:

- first page: from selecting the run to its first rows painted (goal <= 100 ms);
- a filter change: from the new filter to its first rows on screen, or to "no match" (goal <= 200 ms);
- scrolling to row 5,000 (holding End: a jump to the last row every frame): the longest the GUI thread
  was blocked, measured several ways: the longest fetchMore call, the longest storing of arrived rows,
  the longest repaint of the table (beside Qt's own model painting the same cells), Python's garbage
  collector pauses, and the longest gap of a 1 ms timer (any stall of the event loop, whatever caused
  it) (goal <= 16 ms). Then once more after gc.freeze(), as an app may call once it has started.

`--workspace PATH` keeps the generated workspace there and reuses it on the next run.

Figures are wall-clock on this machine, shared with other work: read ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.contract import schema
from engine.contract.paths import DEMO_DIR

_WORDS = (
    "the answer is so we get carry sum digit therefore final result think step first then add subtract "
    "ones tens number equals check again wait total left right plus minus because means value write "
    "format tag close open correct wrong maybe sure let me compute quickly slowly careful done"
)
VOCABULARY = _WORDS.split()
PER_STEP, GENERATIONS = 512, 8


def generate(path: Path, rollouts: int, seed: int = 0) -> int:
    """A workspace with one run of `rollouts` rollouts, written the engine's way. Returns the run id."""
    rng = random.Random(seed)
    conn = schema.connect(str(path))
    schema.migrate(conn)
    now = time.time()
    steps = rollouts // PER_STEP
    with conn:
        conn.execute("INSERT INTO rubrics(id, name, created_at) VALUES (1, 'arith', ?)", (now,))
        conn.execute(
            "INSERT INTO rubric_versions(id, rubric_id, version, toml, sha256, created_at) VALUES (1, 1, 1, ?, '', ?)",
            ((DEMO_DIR / "rubric.toml").read_text(), now),
        )
        run_id = conn.execute(
            "INSERT INTO runs(name, status, algorithm, config, rubric_version_id, step, max_steps, created_at)"
            " VALUES ('bench-1M', 'finished', 'grpo', '{}', 1, ?, ?, ?)",
            (steps, steps, now),
        ).lastrowid
        rid = gid = 0
        for step in range(1, steps + 1):
            groups, rows, fts = [], [], []
            for p in range(PER_STEP // GENERATIONS):
                gid += 1
                skill = rng.random()
                flat = rng.random() < 0.3  # a zero-std group: every completion scores the same
                rewards = []
                for _ in range(GENERATIONS):
                    rid += 1
                    correct = (1.0 if skill > 0.5 else 0.0) if flat else float(rng.random() < skill)
                    fmt = 1.0 if flat else float(rng.random() < 0.8)
                    text = " ".join(rng.choices(VOCABULARY, k=rng.randint(6, 20)))
                    text += f"\n<answer>{rng.randint(0, 99)}</answer>"
                    failed = not flat and rng.random() < 0.01
                    reward = None if failed else correct + 0.2 * fmt
                    rewards.append(reward)
                    truncated = int(rng.random() < 0.08)
                    rows.append(
                        (
                            rid,
                            run_id,
                            step,
                            gid,
                            text,
                            reward,
                            rng.gauss(0, 1),
                            len(text) // 4,
                            truncated,
                            int(failed),
                            json.dumps(
                                {
                                    "correct": None if failed else correct,
                                    "format": fmt,
                                    "length": len(text) / 100,
                                }
                            ),
                            json.dumps({"correct": "TimeoutError: over 10 s"}) if failed else None,
                        )
                    )
                    fts.append((rid, text))
                values = [r for r in rewards if r is not None]
                mean = sum(values) / len(values)
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                groups.append(
                    (gid, run_id, step, (step * 64 + p) % 2000, f"{p}+{step % 97}=", "{}", mean, std)
                )
            conn.executemany("INSERT INTO groups VALUES (?, ?, ?, ?, ?, ?, ?, ?)", groups)
            conn.executemany(
                "INSERT INTO rollouts(id, run_id, step, group_id, completion, reward, advantage, completion_tokens,"
                " truncated, error_count, scores_json, errors_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany("INSERT INTO rollouts_fts(rowid, completion) VALUES (?, ?)", fts)
        labelled = rng.sample(range(1, rid + 1), 2000)
        conn.executemany(
            "INSERT INTO labels(rollout_id, label, note, updated_at) VALUES (?, ?, NULL, ?)",
            [(i, 1 if k % 3 else -1, now) for k, i in enumerate(labelled)],
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return int(run_id or 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=1_000_000)
    parser.add_argument("--workspace", help="reuse (or create) this workspace instead of a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep a generated temporary workspace")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="rl-studio-bench-")
    path = Path(args.workspace) if args.workspace else Path(folder) / "inspector.sqlite"
    if path.exists():
        conn = schema.connect(str(path), readonly=True)
        run_id = int(conn.execute("SELECT max(id) FROM runs").fetchone()[0])
        conn.close()
        print(f"reusing {path}")
    else:
        t0 = time.perf_counter()
        run_id = generate(path, args.rollouts)
        print(f"generated {args.rollouts:,} rollouts in {time.perf_counter() - t0:.0f} s: {path}")
    try:
        measure(path, run_id)
    finally:
        if not args.workspace and not args.keep:
            for f in Path(folder).iterdir():
                f.unlink()
            os.rmdir(folder)


def measure(path: Path, run_id: int) -> None:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtGui import QStandardItem, QStandardItemModel
    from PySide6.QtWidgets import QApplication, QTableView

    import studio  # noqa: F401  (the PySide6 guard)
    from studio.models.rollouts_model import RolloutsModel
    from studio.state import rollout_query as rq
    from studio.state.rollout_query import RolloutFilter
    from studio.widgets.inspector_cells import RolloutCells

    app = QApplication.instance() or QApplication([])
    conn = schema.connect(str(path), readonly=True)
    total = rq.run_total(conn, run_id)
    print(f"run {run_id}: {total:,} rollouts\n")

    # ---- GUI-thread stall probes -------------------------------------------------------------------
    gaps: list[float] = []
    last = [time.perf_counter()]
    t_scroll = [time.perf_counter()]

    long_ticks: list[tuple[float, float]] = []
    gc_pauses: list[tuple[float, int]] = []
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((time.perf_counter() - gc_started[0], info["generation"]))

    gc.callbacks.append(on_gc)

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        if now - last[0] > 0.017:
            long_ticks.append((now - t_scroll[0], now - last[0]))
        last[0] = now

    probe = QTimer()
    probe.setInterval(1)
    probe.timeout.connect(tick)

    fetch_times: list[float] = []
    arrive_times: list[float] = []

    class TimedModel(RolloutsModel):
        """The real model, with a stopwatch on the two things it does on the GUI thread."""

        def fetchMore(self, parent: Any = None) -> None:
            t = time.perf_counter()
            super().fetchMore()
            fetch_times.append(time.perf_counter() - t)

        def _on_window(self, gen: int, window: Any) -> None:
            t = time.perf_counter()
            super()._on_window(gen, window)
            arrive_times.append(time.perf_counter() - t)

    paint_times: list[float] = []

    class TimedTable(QTableView):
        def paintEvent(self, event: Any) -> None:
            t = time.perf_counter()
            super().paintEvent(event)
            paint_times.append(time.perf_counter() - t)

    def baseline_paint(size: tuple[int, int]) -> float:
        """The same visible cells in Qt's C++ QStandardItemModel: the floor for a QTableView repaint."""
        plain = QStandardItemModel(60, model.columnCount())
        for row in range(60):
            for col in range(model.columnCount()):
                plain.setItem(row, col, QStandardItem(model.index(row, col).data()))
        view = QTableView()
        view.setModel(plain)
        view.verticalHeader().setDefaultSectionSize(22)
        view.resize(*size)
        view.show()
        app.processEvents()
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            view.viewport().repaint()
            best = min(best, time.perf_counter() - t)
        view.close()
        return best * 1000

    model = TimedModel(RolloutCells())
    table = TimedTable()
    table.setModel(model)
    table.verticalHeader().setDefaultSectionSize(22)
    table.resize(1100, 700)
    table.show()

    def wait(done: Callable[[], bool], limit_s: float = 60.0) -> float:
        """Run the event loop (as the app does, idle between events) until done(), then paint."""
        t0 = time.perf_counter()
        if not done():
            loop = QEventLoop()

            def check() -> None:
                if done():
                    loop.quit()

            model.sig_state_changed.connect(check)
            model.rowsInserted.connect(check)
            QTimer.singleShot(int(limit_s * 1000), loop.quit)
            loop.exec()
            model.sig_state_changed.disconnect(check)
            model.rowsInserted.disconnect(check)
            if not done():
                raise TimeoutError(
                    f"the inspector did not answer within a minute ({model.rowCount()} rows,"
                    f" loading {model.loading}, at end {model.at_end}, can fetch {model.canFetchMore()})"
                )
        table.viewport().repaint()  # the rows on screen, not only in the model
        return (time.perf_counter() - t0) * 1000

    def answered() -> bool:
        return model.rowCount() > 0 or model.at_end

    def ratio(ms: float, goal: float) -> str:
        return f"{ms:7.1f} ms (goal <= {goal:g} ms; ratio {ms / goal:.2f})"

    # ---- first page ---------------------------------------------------------------------------------
    firsts = []
    for _ in range(5):
        model.set_source(None, None)
        app.processEvents()
        t0 = time.perf_counter()
        model.set_source(str(path), run_id)
        wait(answered)
        firsts.append((time.perf_counter() - t0) * 1000)
        wait(lambda: not model.loading)
    print(
        f"first page shown:            median {ratio(statistics.median(firsts), 100)}, worst {max(firsts):.1f} ms"
    )

    # ---- filter changes -----------------------------------------------------------------------------
    filters = {
        "steps 900-950": RolloutFilter(step_min=900, step_max=950),
        "reward >= 1.1": RolloutFilter(reward_min=1.1),
        "criterion errors": RolloutFilter(errors_only=True),
        "truncated": RolloutFilter(truncated_only=True),
        "zero-std groups": RolloutFilter(zero_std_only=True),
        "search 'therefore'": RolloutFilter(search="therefore"),
        "search '\"let me compute\"'": RolloutFilter(search='"let me compute"'),
        "search 'compute', errors": RolloutFilter(search="compute", errors_only=True),
        "thumbs up": RolloutFilter(label="good"),
        "truncated, zero-std, steps": RolloutFilter(truncated_only=True, zero_std_only=True, step_min=1000),
        "reward >= 5 (matches none)": RolloutFilter(reward_min=5),
    }
    worst = 0.0
    for name, flt in filters.items():
        model.set_filter(RolloutFilter())
        wait(lambda: not model.loading)
        t0 = time.perf_counter()
        model.set_filter(flt)
        first = wait(answered)
        page = wait(lambda: not model.loading) + first
        worst = max(worst, first) if "none" not in name else worst
        print(
            f"filter {name:28s} first rows {ratio(first, 200)}; page of {model.rowCount()} in {page:6.1f} ms"
        )
    print(f"filter change, worst with matches: {ratio(worst, 200)}")

    # ---- scrolling ----------------------------------------------------------------------------------
    # A user holding End (or dragging the scrollbar to the bottom): the view jumps to the last row every
    # frame, repaints all of it, and fetches a page whenever the last row shows. Done at the table's size
    # in the 1400x900 window, then with the table filling a large window.
    print()
    scenarios = (
        ("table as in a 1400x900 window", (1040, 300), False),
        ("table maximised", (1100, 700), False),
        ("table maximised, after gc.freeze()", (1100, 700), True),
    )
    for label, size, freeze in scenarios:
        table.resize(*size)
        model.set_filter(RolloutFilter())
        model.reload()  # a fresh list, read from the top
        wait(lambda: not model.loading)
        if freeze:
            # What an app can do once it has started: objects alive now are never walked again by the
            # cyclic garbage collector, so its pauses scale with what was made since, not with Qt's
            # and the libraries' own objects.
            gc.collect()
            gc.freeze()
        for times in (fetch_times, arrive_times, paint_times, gaps, gc_pauses):
            times.clear()
        long_ticks.clear()
        probe.start()
        t0 = t_scroll[0] = last[0] = time.perf_counter()
        frame = QTimer()
        frame.setInterval(16)
        frame.timeout.connect(table.scrollToBottom)
        frame.start()
        wait(lambda: model.rowCount() >= 5000)
        frame.stop()
        probe.stop()
        scroll_s = time.perf_counter() - t0
        print(
            f"scrolling to row {model.rowCount():,}, {label} ({size[0]}x{size[1]}): {scroll_s:.2f} s, "
            f"{len(fetch_times)} fetchMore calls, {len(arrive_times)} pages arrived, {len(paint_times)} repaints"
        )
        print(f"  longest fetchMore call:   {ratio(max(fetch_times) * 1000, 16)}")
        print(f"  longest page arrival:     {ratio(max(arrive_times) * 1000, 16)}")
        print(
            f"  repaint of the table:     median {_pct(paint_times, 50):.1f} ms, longest"
            f" {ratio(max(paint_times) * 1000, 16)}, next longest "
            + ", ".join(f"{t * 1000:.1f}" for t in sorted(paint_times)[-4:-1][::-1])
            + f" ms; Qt's own model: {baseline_paint(size):.1f} ms"
        )
        collections = sorted(gc_pauses, reverse=True)[:3]
        print(
            "  Python's garbage collector, longest pauses: "
            + (", ".join(f"{d * 1000:.1f} ms (generation {g})" for d, g in collections) or "none")
        )
        print(
            f"  longest event-loop stall: {ratio(max(gaps) * 1000 - 1, 16)} (a 1 ms timer: median gap"
            f" {_pct(gaps, 50) - 1:.1f} ms; {len(long_ticks)} of {len(gaps)} gaps over 16 ms)"
        )

    # ---- for reference: the queries themselves (in the worker threads) -------------------------------
    print("\nqueries as the worker runs them (not on the GUI thread):")
    deep = rq.last_rollout_id(conn, run_id) - 50_000
    for name, flt, after in (
        ("first page", RolloutFilter(), None),
        ("page at row ~950,000", RolloutFilter(), deep),
        ("reward >= 1.1, deep", RolloutFilter(reward_min=1.1), deep),
    ):
        t = time.perf_counter()
        rq.read_page(conn, run_id, flt, after)
        print(f"  {name:24s} {(time.perf_counter() - t) * 1000:6.1f} ms")
    for name, flt in (
        ("count, no filter", RolloutFilter()),
        ("count, reward >= 1.1", RolloutFilter(reward_min=1.1)),
    ):
        t = time.perf_counter()
        n = rq.count_matching(conn, run_id, flt)
        print(f"  {name:24s} {(time.perf_counter() - t) * 1000:6.1f} ms ({n:,})")
    model.close()
    conn.close()


def _pct(values: list[float], q: int) -> float:
    """The q-th percentile of durations in seconds, in ms."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000 if ordered else 0.0


if __name__ == "__main__":
    main()
