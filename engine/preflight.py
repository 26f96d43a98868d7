"""Checks a run passes before the model loads, for honest mistakes that would otherwise crash late, hang,
or train without error on a reward that is always null.

- The training set holds at least one step's distinct prompts (`prompts_per_step`); with fewer, TRL's
  sampler yields no batch and the run "stops" at step 0 with exit 0.
- No prompt is longer than `[data] max_prompt_chars` characters (counted before anything is tokenised:
  a 50 MB line once made the tokenizer grow to 13 GB). The message names the file and line.
- Conversational prompts (message lists) have a chat template to be rendered with.
- Every criterion scores at least one row of a small batch of the training set without an error. The
  batch is the rows' `reference` completions when the dataset has them, else stand-ins built from the
  row (its answer column, the empty string): a criterion that errors on every row of every one of them
  (a column the dataset lacks, a typo in the code) would score null on every rollout of the run.

`check` raises ConfigError, DataError or RubricError: the run fails as bad input (exit 2) with the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import control
from engine.contract.config import ConfigError, RunConfig
from engine.data import DataError, line_of_row, prompt_chars

PREFLIGHT_ROWS = 8
"""How many training rows the criteria are tried on."""
CHARS_PER_TOKEN = 8
"""The automatic prompt limit allows this many characters per token of the model's context window:
generous (English averages about 4), since the check is cheap and only has to catch the absurd."""
DEFAULT_MAX_PROMPT_CHARS = 100_000
"""The prompt limit when the model's context window is unknown (a hub id)."""
ANSWER_COLUMNS = ("answer", "solution", "target", "label", "ground_truth", "gold", "expected", "final_answer")
ROW_INDEX = "_row"  # engine.session.ROW_INDEX, not imported: the session module pulls in the store
MESSAGE_CHARS = 400


def check(
    cfg: RunConfig, rubric: Any, train_rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]]
) -> None:
    """Every preflight check, cheapest first."""
    check_training_set_size(cfg, train_rows)
    check_correctness(cfg, rubric)
    check_prompt_lengths(cfg, train_rows, eval_rows)
    check_chat_template(cfg, train_rows, eval_rows)
    check_criteria(cfg, rubric, train_rows)


def check_correctness(cfg: RunConfig, rubric: Any) -> None:
    """[eval] correctness names a criterion of the rubric (pass@k and difficulty sampling read it)."""
    from engine.contract.passk import correctness_criterion
    from engine.rewards import RubricError

    try:
        correctness_criterion([(c.name, float(c.weight)) for c in rubric.criteria], cfg.eval.correctness)
    except ValueError as exc:
        raise RubricError(f"[eval] correctness: {exc}. Name one of them, or leave it empty.") from None


# ---- the training set holds a step ---------------------------------------------------------------------


def check_training_set_size(cfg: RunConfig, train_rows: list[dict[str, Any]]) -> None:
    wanted = cfg.training.prompts_per_step
    processes = control.world_size()
    needed = wanted * processes
    if len(train_rows) >= needed:
        return
    per = f" x {processes} processes" if processes > 1 else ""
    raise ConfigError(
        f"[training] prompts_per_step = {wanted}{per} needs {needed} distinct prompts per step, but the "
        f"training set {cfg.resolve(cfg.data.train)} has {len(train_rows)}: training could not take a single "
        f"step. Lower prompts_per_step to {max(len(train_rows) // processes, 1)} or less, or add prompts."
    )


# ---- prompt lengths, before tokenising -----------------------------------------------------------------


def max_prompt_chars(cfg: RunConfig) -> tuple[int, str]:
    """The prompt length limit in characters, and where it comes from (for the message)."""
    if cfg.data.max_prompt_chars:
        return cfg.data.max_prompt_chars, "[data] max_prompt_chars"
    from engine.modeling import context_tokens

    tokens = context_tokens(cfg)
    if tokens is None:
        return DEFAULT_MAX_PROMPT_CHARS, "the default of [data] max_prompt_chars"
    return (
        CHARS_PER_TOKEN * tokens,
        f"the automatic limit: {CHARS_PER_TOKEN} characters per token of the model's {tokens}-token context",
    )


def check_prompt_lengths(
    cfg: RunConfig, train_rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]]
) -> None:
    limit, source = max_prompt_chars(cfg)
    for key, rows in (("train", train_rows), ("eval", eval_rows)):
        for index, row in enumerate(rows):
            chars = prompt_chars(row.get("prompt"))
            if chars <= limit:
                continue
            path = cfg.resolve(getattr(cfg.data, key))
            line = line_of_row(path, int(row.get(ROW_INDEX, index)))
            where = f"{path}:{line}" if line is not None else f"{path} (row {index + 1})"
            raise DataError(
                f"{where}: the prompt is {chars:,} characters long, over the limit of {limit:,} ({source}). "
                "A prompt this long cannot fit the model's context; shorten or remove that row, or raise "
                "[data] max_prompt_chars if the model really takes prompts this long."
            )


# ---- conversational prompts need a chat template -------------------------------------------------------


def check_chat_template(
    cfg: RunConfig, train_rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]]
) -> None:
    """A message-list prompt becomes tokens through the tokenizer's chat template; without one, TRL fails
    at the first step with a traceback."""
    first = next(
        (
            (key, index, row)
            for key, rows in (("train", train_rows), ("eval", eval_rows))
            for index, row in enumerate(rows)
            if isinstance(row.get("prompt"), list)
        ),
        None,
    )
    if first is None:
        return
    from engine.modeling import load_tokenizer

    if getattr(load_tokenizer(cfg), "chat_template", None):
        return
    key, index, row = first
    path = cfg.resolve(getattr(cfg.data, key))
    line = line_of_row(path, int(row.get(ROW_INDEX, index)))
    where = f"{path}:{line}" if line is not None else f"{path} (row {index + 1})"
    raise DataError(
        f"{where}: the prompt is a list of chat messages, but the tokenizer of the model at "
        f"{cfg.resolved_model()} has no chat template to turn messages into text. Use a chat model (an "
        "-Instruct one), add a chat_template to its tokenizer_config.json, or write the prompts as strings."
    )


# ---- every criterion scores something ------------------------------------------------------------------


def preflight_batches(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[str, list[Any]]]]:
    """The rows to try the rubric on, and the completions to try: [(what they are, completions)]."""
    with_reference = [r for r in rows if r.get("reference") not in (None, "", [])][:PREFLIGHT_ROWS]
    if with_reference:
        return with_reference, [("their 'reference' completions", [r["reference"] for r in with_reference])]
    chosen = rows[:PREFLIGHT_ROWS]
    candidates: list[tuple[str, list[Any]]] = []
    for column in ANSWER_COLUMNS:
        if any(r.get(column) not in (None, "") for r in chosen):
            candidates.append(
                (f"their '{column}' as the completion", [_as_text(r.get(column)) for r in chosen])
            )
            break
    candidates.append(("an empty completion", [""] * len(chosen)))
    return chosen, candidates


def _as_text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def check_criteria(cfg: RunConfig, rubric: Any, train_rows: list[dict[str, Any]]) -> None:
    """Raise RubricError when some criterion errors on every row of every preflight batch."""
    from engine.rewards import RubricError
    from engine.rewards.samples import batch_from_rows
    from engine.rewards.text import completion_text

    rows, candidates = preflight_batches(train_rows)
    rows = [{k: v for k, v in row.items() if k != ROW_INDEX} for row in rows]  # as training passes columns
    tokenizer = _tokenizer_if_needed(cfg, rubric)

    def errors_of(chunk: list[dict[str, Any]], completions: list[Any]) -> dict[str, list[str | None]]:
        batch = batch_from_rows(chunk, completions)
        if tokenizer is not None:
            texts = [completion_text(c) for c in batch.completions]
            batch.completion_ids = [
                list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]
            ]
        return dict(rubric.score(batch).errors)

    failing: dict[str, str] | None = None
    for _what, completions in candidates:
        errors = errors_of(rows, completions)  # one batch, as training scores (judges run concurrently)
        if any(all(e is not None for e in errs) for errs in errors.values()):
            # A batch function that raises fails its whole batch: a criterion is refused only when it
            # fails on every row by itself, so the suspects are tried one row at a time.
            single = [
                errors_of([row], [completion]) for row, completion in zip(rows, completions, strict=True)
            ]
            errors = {name: [one[name][0] for one in single] for name in errors}
        always = {
            name: next(e for e in errs if e is not None)
            for name, errs in errors.items()
            if errs and all(e is not None for e in errs)
        }
        if cfg.environment is not None:  # an agent run: episode criteria score episodes, not these rows
            always = {name: e for name, e in always.items() if not _needs_episode(e)}
        failing = always if failing is None else {k: v for k, v in failing.items() if k in always}
        if not failing:
            return
    assert failing
    tried = " and ".join(what for what, _ in candidates)
    problems = "; ".join(f"criterion '{name}': {_short(message)}" for name, message in failing.items())
    train = cfg.resolve(cfg.data.train)
    raise RubricError(
        f"Preflight: before training, the rubric {Path(cfg.resolve(cfg.rubric.path)).name} was tried on the "
        f"{len(rows)} rows of {train} with {tried}, and {_count(failing)} failed on every row, so "
        f"{'it' if len(failing) == 1 else 'they'} would score null on every rollout of the run. {problems}. "
        "Fix the criterion or the dataset (a column it reads may be missing), then start the run again; "
        f"`rl-studio-engine rubric test {cfg.resolve(cfg.rubric.path)} --samples FILE` shows each row."
    )


def _needs_episode(message: str) -> bool:
    """Whether a criterion failed only for want of what an agent run gives it: a trajectory criterion, or
    a Python function asking for the `trajectories` or `environments` columns."""
    from engine.envs.criteria import NO_TRAJECTORY

    asks = message.partition("which the batch does not have")[0]
    return NO_TRAJECTORY in message or "'trajectories'" in asks or "'environments'" in asks


def _count(failing: dict[str, str]) -> str:
    return "one criterion" if len(failing) == 1 else f"{len(failing)} criteria"


def _short(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def _tokenizer_if_needed(cfg: RunConfig, rubric: Any) -> Any:
    """The model's tokenizer when a criterion reads completion_ids (training hands it TRL's)."""
    if not getattr(rubric, "needs_completion_ids", False) or getattr(rubric, "tokenizer", None) is not None:
        return None
    from engine.modeling import load_tokenizer

    return load_tokenizer(cfg)
