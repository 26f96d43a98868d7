"""Workspaces with rollouts, written through the engine's own store, for the inspector's tests.

The builder returns the rows as the workspace holds them (read back, not assumed), so tests compute
what a filter should show in plain Python and compare. The tests here pin the invariant the inspector's
paging rests on: within a run, rollout ids grow with the step, with runs interleaved and after a resume.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from engine.contract import schema
from engine.contract.paths import DEMO_DIR
from engine.store import GroupRecord, RolloutRecord, Workspace

WORDS = ["the", "answer", "is", "carry", "sum", "digit", "so", "we", "get", "therefore", "final"]
RUBRIC = (DEMO_DIR / "rubric.toml").read_text()


@dataclass
class Rollout:
    id: int
    run_id: int
    step: int
    group_id: int
    prompt: str
    prompt_index: int
    completion: str
    reward: float | None
    advantage: float | None
    truncated: bool
    errors: dict[str, str]
    scores: dict[str, float | None]
    group_std: float | None


def make_step(rng: random.Random, step: int, prompts: int, generations: int) -> list[GroupRecord]:
    """One step of the demo's arithmetic task: `correct`, `format` and a weight-0 `length` criterion."""
    groups = []
    for p in range(prompts):
        a, b = (p * 7) % 13 + 1, (p * 5) % 11 + 2
        skill = rng.random()
        rollouts = []
        for g in range(generations):
            answer = a + b if rng.random() < skill else a + b + rng.choice([-1, 1])
            words = " ".join(rng.choices(WORDS, k=4))
            text = rng.choice(
                [
                    f"<answer>{answer}</answer>",
                    f"{words}\n<answer>{answer}</answer>",
                    f"{words} {answer}<|im_end|>",
                    f" <answer>{answer}</answer>  ",
                ]
            )
            if p == 0:  # the first prompt of each step: every completion alike, a zero-std group
                text = f"<answer>{a + b}</answer>"
            correct = float(answer == a + b) if p else 1.0
            fmt = float(text.strip() == text and text.startswith("<answer>") and text.endswith("</answer>"))
            failed = p != 0 and g == generations - 1 and step % 2 == 0
            errors = {"correct": "TimeoutError: the reward function took more than 10 s"} if failed else {}
            rollouts.append(
                RolloutRecord(
                    completion=text,
                    reward=None if failed else correct + 0.2 * fmt,
                    advantage=rng.gauss(0, 1),
                    completion_tokens=len(text) // 3,
                    truncated=not text.endswith(">"),
                    scores={"correct": None if failed else correct, "format": fmt, "length": len(text) / 40},
                    errors=errors,
                )
            )
        groups.append(GroupRecord(f"{a}+{b}=", p, {"answer": str(a + b)}, rollouts))
    return groups


def build_run(
    path: Path | str,
    steps: int = 6,
    prompts: int = 4,
    generations: int = 4,
    seed: int = 0,
    name: str = "demo",
    status: str = "finished",
) -> int:
    """A run with its rubric version and `steps` steps of rollouts. Returns its id."""
    ws = Workspace(path)
    version = ws.save_rubric_version(f"arith-{seed}", RUBRIC, {}, "")
    run_id = ws.create_run(name, "grpo", {}, max_steps=steps, rubric_version_id=version)
    rng = random.Random(seed)
    for step in range(1, steps + 1):
        ws.write_rollouts(run_id, step, make_step(rng, step, prompts, generations))
        ws.write_metrics(run_id, step, {"reward": 0.5})
    ws.set_status(run_id, status)
    ws.close()
    return run_id


def add_steps(path: Path | str, run_id: int, steps: range, prompts: int = 4, generations: int = 4) -> None:
    """More steps of a run, as the engine writes them while it trains."""
    ws = Workspace(path)
    rng = random.Random(steps.start)
    for step in steps:
        ws.write_rollouts(run_id, step, make_step(rng, step, prompts, generations))
        ws.write_metrics(run_id, step, {"reward": 0.5})
    ws.close()


def read_back(path: Path | str, run_id: int) -> list[Rollout]:
    """Every rollout of a run as the workspace holds it, in the inspector's (step, id) order."""
    ws = Workspace(path)
    groups = {
        gid: (prompt, index, std)
        for gid, prompt, index, std in ws.conn.execute(
            "SELECT id, prompt, prompt_index, reward_std FROM groups WHERE run_id = ?", (run_id,)
        )
    }
    rows = []
    for r in ws.rollouts(run_id):
        prompt, index, std = groups[r["group"]]
        rows.append(
            Rollout(
                r["id"],
                run_id,
                r["step"],
                r["group"],
                prompt,
                index,
                r["completion"],
                r["reward"],
                r["advantage"],
                r["truncated"],
                r["errors"],
                r["scores"],
                std,
            )
        )
    ws.close()
    return sorted(rows, key=lambda r: (r.step, r.id))


# ---- the invariant the inspector's keyset paging rests on ----------------------------------------------
def test_ids_grow_with_the_step_within_a_run_even_with_runs_interleaved(tmp_path: Path) -> None:
    path = tmp_path / "ws.sqlite"
    a = build_run(path, steps=2, seed=1)
    b = build_run(path, steps=2, seed=2)
    add_steps(path, a, range(3, 5))
    add_steps(path, b, range(3, 4))
    for run_id in (a, b):
        rows = read_back(path, run_id)
        assert [r.id for r in rows] == sorted(r.id for r in rows)


def test_ids_grow_with_the_step_after_a_resume_rewrites_steps(tmp_path: Path) -> None:
    path = tmp_path / "ws.sqlite"
    run_id = build_run(path, steps=5)
    ws = Workspace(path)
    ws.truncate_after(run_id, 3)  # a resume from the step-3 checkpoint forgets steps 4 and 5
    ws.close()
    add_steps(path, run_id, range(4, 7))
    rows = read_back(path, run_id)
    assert [r.step for r in rows] == sorted(r.step for r in rows)
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    conn = schema.connect(str(path), readonly=True)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM rollouts WHERE run_id = ? ORDER BY step, id LIMIT 10", (run_id,)
    ).fetchall()
    conn.close()
    assert "TEMP B-TREE" not in " ".join(str(p[-1]) for p in plan)  # the index serves the order
