"""rl-studio-engine playground as a subprocess: a 2-step demo run's adapter and its base model answer a typed
prompt and a dataset row, streamed, scored by the run's stored rubric; refusals and cancels are messages."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from conftest import engine_cmd, engine_env, requires_demo

from engine.contract.paths import run_dir
from engine.contract.playground import (
    CancelRequest,
    Done,
    Error,
    GenerateRequest,
    Loaded,
    Ready,
    RowRef,
    Token,
    parse_message,
)

pytestmark = requires_demo


def _demo_run(db: Path) -> int:
    out = subprocess.run(
        engine_cmd("demo", "--db", str(db), "--steps", "2", "--json"),
        capture_output=True,
        text=True,
        env=engine_env() | {"OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return int(json.loads(out.stdout.splitlines()[-1])["run_id"])


def _playground(db: Path, lines: list[str]) -> list[object]:
    out = subprocess.run(
        engine_cmd("playground", "--db", str(db)),
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        env=engine_env() | {"OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return [parse_message(line) for line in out.stdout.splitlines()]  # nothing else may be on stdout


def test_playground_streams_and_scores_base_and_adapter(tmp_path: Path) -> None:
    db = tmp_path / "ws.sqlite"
    run_id = _demo_run(db)
    # A run whose adapter/ folder is gone answers from its last complete checkpoint instead.
    adapter = run_dir(db, run_id) / "adapter"
    shutil.rmtree(adapter)
    other = _run_on_another_base(db, run_id, tmp_path)
    requests = [
        GenerateRequest(id="typed", prompt="2+3=", runs=[run_id], max_new_tokens=12, seed=3).to_json(),
        GenerateRequest(
            id="row", row=RowRef(run=run_id, split="eval", index=0), runs=[run_id], temperature=0.0
        ).to_json(),
        GenerateRequest(id="queued", prompt="4+4=", runs=[run_id]).to_json(),
        CancelRequest("queued").to_json(),  # read while "typed" is still loading the model: never starts
        GenerateRequest(id="missing", prompt="1+1=", runs=[999], include_base=False).to_json(),
        GenerateRequest(id="mixed", prompt="1+1=", runs=[run_id, other], temperature=0.0).to_json(),
        "not json",
    ]
    messages = _playground(db, requests)

    assert isinstance(messages[0], Ready)
    assert next(m for m in messages if isinstance(m, Loaded)).device == "cpu"
    done = {(m.id, m.source): m for m in messages if isinstance(m, Done)}
    for request_id in ("typed", "row"):
        for source in ("base", f"run:{run_id}"):
            answer = done[(request_id, source)]
            streamed = "".join(
                m.text for m in messages if isinstance(m, Token) and (m.id, m.source) == (request_id, source)
            )
            assert answer.text and streamed == answer.text  # streamed token by token, then whole
            assert len([m for m in messages if isinstance(m, Token) and m.id == request_id]) > 2
            assert set(answer.scores) == {"correct", "format", "length"}  # the demo rubric's criteria
            assert answer.rubric == "arith-v1 v1"  # the version the run stored
            assert not answer.stopped
    # A typed prompt has no `answer` column: `correct` says so, the others score.
    typed = done[("typed", f"run:{run_id}")]
    assert typed.scores["correct"] is None and "answer" in typed.errors["correct"]
    assert typed.scores["format"] is not None
    assert typed.adapter.endswith("checkpoint-2") and done[("typed", "base")].adapter == ""
    # A dataset row brings its columns: every criterion scores, and the reward is the weighted total.
    row = done[("row", f"run:{run_id}")]
    eval_row = json.loads(
        (Path(__file__).parents[2] / "engine/assets/demo/data/eval.jsonl").read_text().splitlines()[0]
    )
    assert row.rendered_prompt == eval_row["prompt"]  # the demo's tokenizer has no chat template
    assert all(v is not None for v in row.scores.values()) and row.errors == {}
    assert row.reward is not None
    assert {(m.source, m.stopped, m.text) for m in messages if isinstance(m, Done) and m.id == "queued"} == {
        ("base", True, ""),
        (f"run:{run_id}", True, ""),
    }
    errors = [m for m in messages if isinstance(m, Error)]
    assert any(
        e.id == "missing" and e.source == "run:999" and "no run 999" in e.message.lower() for e in errors
    )
    assert any(e.id is None and "not JSON" in e.message for e in errors)
    # One process serves one base model: a run on another base is refused, the others answer.
    refused = next(e for e in errors if e.id == "mixed")
    assert refused.source == f"run:{other}" and "one base model at a time" in refused.message
    assert {m.source for m in messages if isinstance(m, Done) and m.id == "mixed"} == {
        "base",
        f"run:{run_id}",
    }


def _run_on_another_base(db: Path, run_id: int, tmp_path: Path) -> int:
    """A copy of run `run_id` whose base model is a copy of the demo model in another folder."""
    from engine.contract import schema

    model = tmp_path / "other-base"
    shutil.copytree(Path(__file__).parents[2] / "engine/assets/demo/model", model)
    conn = schema.connect(str(db))
    config = json.loads(conn.execute("SELECT config FROM runs WHERE id = ?", (run_id,)).fetchone()[0])
    config["model"]["path"] = str(model)
    with conn:
        other = conn.execute(
            "INSERT INTO runs(name, status, algorithm, config, max_steps, created_at)"
            " VALUES ('other', 'finished', 'grpo', ?, 2, 0)",
            (json.dumps(config),),
        ).lastrowid
    conn.close()
    assert other is not None
    shutil.copytree(run_dir(db, run_id) / "checkpoint-2", run_dir(db, other) / "adapter")
    return int(other)
