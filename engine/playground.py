"""rl-studio-engine playground --db WS: the base model and runs' trained adapters answer prompts side by side.

One process serves one base model: it loads it once (on the first request, from that request's runs'
configs), then switches LoRA adapters with PEFT (load_adapter / set_adapter; the base answers with every
adapter disabled). A prompt is formatted exactly as the run's training formatted it (engine.prompts: chat
template, system prompt), each answer is streamed as it is generated, then scored by the run's rubric (the
version the run stored, else its config's file) on the same code path as training. The messages are
engine/contract/playground.py's: requests on stdin, typed messages on stdout, a human log on stderr.

Requests are served one at a time in order; a `{"cancel": id}` line stops a request between two tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine.contract.config import ConfigError, RunConfig
from engine.contract.playground import (
    BASE,
    Done,
    Error,
    GenerateRequest,
    Loaded,
    Ready,
    RowRef,
    run_source,
)
from engine.playground_io import CancelCriteria, Output, Requests, TokenStream, log


class PlaygroundInputError(Exception):
    """Something the user can fix (a run without an adapter, another base model, a missing row)."""


# ---- what a run brings: its config, adapter and rubric ----------------------------------------------------
@dataclass
class RunInfo:
    run_id: int
    name: str
    cfg: RunConfig
    adapter: Path
    rubric_version_id: int | None

    @property
    def base_key(self) -> tuple[str, bool]:
        return self.cfg.resolved_model(), self.cfg.model.load_in_4bit


def adapter_folder(workspace: Any, run_id: int) -> Path | None:
    """A run's trained adapter: its final `adapter/`, else its last complete checkpoint's (a run that is
    still training, stopped or failed), else None."""
    from engine.contract.paths import run_dir
    from engine.session import ADAPTER_DIR, last_complete_checkpoint

    final = run_dir(workspace.path, run_id) / ADAPTER_DIR
    if (final / "adapter_config.json").is_file():
        return final
    checkpoint = last_complete_checkpoint(workspace, run_id)
    if checkpoint is not None and (Path(checkpoint["path"]) / "adapter_config.json").is_file():
        return Path(checkpoint["path"])
    return None


def read_run(workspace: Any, run_id: int) -> RunInfo:
    from engine.runner import stored_config
    from engine.store import StoreError

    try:
        run = workspace.run(run_id)
    except (StoreError, KeyError, LookupError) as exc:
        raise PlaygroundInputError(f"run {run_id} is not in {workspace.path}: {exc}") from None
    cfg = stored_config(run)
    if cfg.environment is not None:
        raise PlaygroundInputError(
            f"run {run_id} ({run['name']}) trains an agent with tools; the playground answers single-turn "
            "prompts only. Inspect its episodes in the inspector."
        )
    adapter = adapter_folder(workspace, run_id)
    if adapter is None:
        raise PlaygroundInputError(
            f"run {run_id} ({run['name']}) has no trained adapter yet: neither its adapter/ folder nor a "
            "complete checkpoint exists. Let it reach its first checkpoint (or press Checkpoint on its dashboard)."
        )
    return RunInfo(run_id, str(run["name"]), cfg, adapter, run.get("rubric_version_id"))


def row_of(workspace: Any, ref: RowRef) -> dict[str, Any]:
    from engine.data import DataError, read_jsonl

    cfg = read_run(workspace, ref.run).cfg
    name = cfg.data.train if ref.split == "train" else cfg.data.eval
    if not name:
        raise PlaygroundInputError(f"run {ref.run} has no {ref.split} data")
    path = cfg.resolve(name)
    try:
        rows = read_jsonl(path)
    except DataError as exc:
        raise PlaygroundInputError(str(exc)) from None
    if not 0 <= ref.index < len(rows):
        raise PlaygroundInputError(f"{path} has {len(rows)} rows; there is no row {ref.index}")
    return rows[ref.index]


# ---- the server ------------------------------------------------------------------------------------------
class Playground:
    def __init__(self, db: str, out: Output) -> None:
        from engine.store import Workspace

        self.db = db
        self.out = out
        self.workspace = Workspace(db, create=False)
        self.base_key: tuple[str, bool] | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self.device = "cpu"
        self.adapters: dict[int, tuple[str, Path]] = {}
        """run id -> (PEFT adapter name, folder it was loaded from)"""
        self.rubrics: dict[tuple[int | None, str], tuple[Any, str]] = {}
        self._rubric_dirs: list[tempfile.TemporaryDirectory[str]] = []

    def close(self) -> None:
        for rubric, _ in self.rubrics.values():
            with contextlib.suppress(Exception):
                rubric.close()
        for folder in self._rubric_dirs:
            folder.cleanup()

    # ---- the base model and adapters -------------------------------------------------------------------
    def _ensure_base(self, info: RunInfo) -> None:
        if self.base_key is not None:
            if info.base_key != self.base_key:
                model, four_bit = info.base_key
                raise PlaygroundInputError(
                    f"run {info.run_id} ({info.name}) trains {model}{' in 4 bits' if four_bit else ''}, and this "
                    f"playground process serves {self.base_key[0]}. Compare runs of one base model at a time "
                    "(the studio starts one playground process per base model)."
                )
            return
        from engine.modeling import load_model, load_tokenizer, plan_device, set_cpu_threads

        log(f"loading {info.cfg.resolved_model()}")
        plan = plan_device(info.cfg)
        self.tokenizer = load_tokenizer(info.cfg)
        model = load_model(info.cfg, plan)
        if not info.cfg.model.load_in_4bit:
            model.to(plan.device)
        model.eval()
        set_cpu_threads(info.cfg, plan, model)
        self.model, self.device, self.base_key = model, plan.device, info.base_key
        self.out.send(Loaded(base_model=info.cfg.resolved_model(), device=plan.device, dtype=plan.dtype_name))
        log(f"loaded on {plan.device} ({plan.dtype_name})")

    def _use_adapter(self, info: RunInfo) -> None:
        name_and_path = self.adapters.get(info.run_id)
        if name_and_path is not None and name_and_path[1] != info.adapter:  # a newer checkpoint since
            self.model.delete_adapter(name_and_path[0])
            del self.adapters[info.run_id]
            name_and_path = None
        if name_and_path is None:
            name = f"run{info.run_id}_{len(self.adapters)}_{info.adapter.name.replace('.', '_')}"
            if not hasattr(self.model, "peft_config"):
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, str(info.adapter), adapter_name=name)
            else:
                self.model.load_adapter(str(info.adapter), adapter_name=name)
            self.model.eval()
            self.adapters[info.run_id] = name_and_path = (name, info.adapter)
            log(f"adapter of run {info.run_id}: {info.adapter}")
        self.model.set_adapter(name_and_path[0])

    # ---- scoring -----------------------------------------------------------------------------------------
    def _rubric(self, info: RunInfo) -> tuple[Any, str]:
        """The rubric the run was trained with: its stored version, else its config's file."""
        key = (info.rubric_version_id, str(info.cfg.resolve(info.cfg.rubric.path)))
        found = self.rubrics.get(key)
        if found is not None:
            return found
        from engine.rewards import load_rubric

        path = Path(key[1])
        label = str(path)
        if info.rubric_version_id is not None:
            row = self.workspace.conn.execute(
                "SELECT v.toml, v.sources, v.version, r.name FROM rubric_versions v "
                "JOIN rubrics r ON r.id = v.rubric_id WHERE v.id = ?",
                (info.rubric_version_id,),
            ).fetchone()
            if row is not None:
                import json

                folder = tempfile.TemporaryDirectory(prefix="rl-studio-rubric-")
                self._rubric_dirs.append(folder)
                root = Path(folder.name).resolve()
                for rel, content in (json.loads(row[1] or "{}") or {}).items():
                    target = (root / rel).resolve()
                    if root in target.parents:  # never write outside the folder
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(content, encoding="utf-8")
                path = root / "rubric.toml"
                path.write_text(row[0], encoding="utf-8")
                label = f"{row[3]} v{row[2]}"
        rubric = load_rubric(path, tokenizer=self.tokenizer, cache_db=self.db)
        self.rubrics[key] = (rubric, label)
        return rubric, label

    def _score(
        self, info: RunInfo, prompt: Any, text: str, ids: list[int], columns: dict[str, Any]
    ) -> tuple[dict[str, float | None], float | None, dict[str, str], str]:
        from engine.rewards.api import RewardBatch
        from engine.rewards.shapes import shape_completions

        rubric, label = self._rubric(info)
        batch = RewardBatch(
            [prompt], shape_completions([prompt], [text]), {k: [v] for k, v in columns.items()}, [ids]
        )
        scored = rubric.score(batch)
        total, scores, errors = scored.row(0)
        errors = {k: str(v) for k, v in errors.items() if v}
        if scored.total_errors and scored.total_errors[0]:
            errors["total"] = str(scored.total_errors[0])
        return {k: _finite(v) for k, v in scores.items()}, _finite(total), errors, label

    # ---- one request -------------------------------------------------------------------------------------
    def serve(self, request: GenerateRequest, cancelled: threading.Event) -> None:
        ended: set[str] = set()
        try:
            self._serve(request, cancelled, ended)
        except (PlaygroundInputError, ConfigError) as exc:
            self.out.send(Error(id=request.id, source=None, message=str(exc), kind="input"))
        except Exception as exc:  # a bug of ours: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            self.out.send(
                Error(id=request.id, source=None, message=f"{type(exc).__name__}: {exc}", kind="bug")
            )

    def _serve(self, request: GenerateRequest, cancelled: threading.Event, ended: set[str]) -> None:
        infos: list[RunInfo] = []
        for run_id in request.runs:
            try:
                info = read_run(self.workspace, run_id)
                self._ensure_base(info)
            except PlaygroundInputError as exc:
                self.out.send(Error(id=request.id, source=run_source(run_id), message=str(exc)))
                ended.add(run_source(run_id))
                continue
            infos.append(info)
        if not infos:
            if request.include_base:
                self.out.send(
                    Error(id=request.id, source=BASE, message="no run of this request could be loaded")
                )
            return
        if request.row is not None:
            row = row_of(self.workspace, request.row)
            prompt = row["prompt"]
            columns = {k: v for k, v in row.items() if k != "prompt"}
        else:
            prompt, columns = request.prompt, {}
        # The base model answers as the first run's training would have asked it (same formatting, rubric).
        jobs = ([(BASE, infos[0])] if request.include_base else []) + [
            (run_source(i.run_id), i) for i in infos
        ]
        for source, info in jobs:
            if cancelled.is_set():
                self.out.send(_stopped(request.id, source, "", 0, ""))
                continue
            self._answer(request, source, info, prompt, columns, cancelled)

    def _answer(
        self,
        request: GenerateRequest,
        source: str,
        info: RunInfo,
        prompt: Any,
        columns: dict[str, Any],
        cancelled: threading.Event,
    ) -> None:
        import torch
        from transformers import StoppingCriteriaList

        from engine.prompts import model_prompt, prompt_ids, rendered_text

        tok, t = self.tokenizer, info.cfg.training
        model_input = model_prompt(prompt, info.cfg.data, tok)
        ids = prompt_ids(model_input, info.cfg.data, tok)
        rendered = rendered_text(model_input, info.cfg.data, tok)
        if source == BASE:
            use: Any = (
                self.model.disable_adapter()
                if hasattr(self.model, "peft_config")
                else contextlib.nullcontext()
            )
        else:
            self._use_adapter(info)
            use = contextlib.nullcontext()
        sampling: dict[str, Any] = {"do_sample": False}
        if request.temperature > 0:
            sampling = {
                "do_sample": True,
                "temperature": request.temperature,
                "top_p": t.top_p,
                "top_k": t.top_k,
                "min_p": t.min_p or None,
            }
        stream = TokenStream(tok, self.out.send, request.id, source)
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
        with use, torch.no_grad():
            torch.manual_seed(request.seed)
            out = self.model.generate(
                input_ids=torch.tensor([ids], dtype=torch.long, device=device),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
                max_new_tokens=request.max_new_tokens,
                repetition_penalty=t.repetition_penalty,
                pad_token_id=pad_id,
                eos_token_id=tok.eos_token_id,
                streamer=stream,
                stopping_criteria=StoppingCriteriaList([CancelCriteria(cancelled)]),
                **sampling,
            )
        completion = out[0, len(ids) :].tolist()
        eos = tok.eos_token_id
        truncated = eos is None or eos not in completion
        if not truncated:
            completion = completion[: completion.index(eos) + 1]
        text = tok.decode(completion, skip_special_tokens=True)
        adapter = "" if source == BASE else str(info.adapter)
        if cancelled.is_set():
            self.out.send(_stopped(request.id, source, text, len(completion), rendered))
            return
        scores, reward, errors, label = self._score(info, prompt, text, completion, columns)
        self.out.send(
            Done(
                id=request.id,
                source=source,
                text=text,
                scores=scores,
                reward=reward,
                errors=errors,
                rubric=label,
                truncated=truncated,
                tokens=len(completion),
                rendered_prompt=rendered,
                adapter=adapter,
            )
        )


def _stopped(request_id: str, source: str, text: str, tokens: int, rendered: str) -> Done:
    return Done(
        id=request_id,
        source=source,
        text=text,
        scores={},
        reward=None,
        errors={},
        stopped=True,
        tokens=tokens,
        rendered_prompt=rendered,
    )


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def run(db: str, stdin: IO[str] | None = None) -> int:
    out = Output()
    if not Path(db).expanduser().is_file():
        out.send(Error(id=None, source=None, message=f"workspace {db} does not exist"))
        return 2
    from engine.store import StoreError

    try:
        server = Playground(db, out)
    except StoreError as exc:
        out.send(Error(id=None, source=None, message=str(exc)))
        return 2
    out.send(Ready(pid=os.getpid()))  # first on stdout, before any answer to what stdin already holds
    requests = Requests(out, stdin or sys.stdin)
    log(f"ready on {db}")
    try:
        while (item := requests.queue.get()) is not None:
            request, cancelled = item
            server.serve(request, cancelled)
            requests.finished(request.id)
    finally:
        server.close()
    return 0


def _cmd_playground(args: argparse.Namespace) -> int:
    return run(args.db)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "playground",
        help="answer prompts with the base model and runs' adapters side by side (JSON lines on stdin/stdout)",
        description="Reads requests on stdin and streams typed messages on stdout, one JSON object per line "
        "(engine/contract/playground.py). One process serves the base model of its first request's runs.",
    )
    p.add_argument("--db", required=True, help="the workspace file")
    p.set_defaults(func=_cmd_playground, protocol=False)
