"""Honest held-out evaluation: n samples per prompt, pass@k, mean@n and greedy pass@1, per tier.

RunSession.evaluate hands over to `evaluate_sampled` when [eval] asks for more than one sample per prompt
or a greedy pass; with the defaults it keeps its one-sample path and adds `pass_figures` of that sample
(pass@1 and mean@1 cost nothing more). The pass rule and the estimator are engine/contract/passk.py.

Metric keys: eval/<criterion>/mean and eval/reward/mean (over every sample), eval/pass@<k>, eval/mean@<n>,
eval/greedy_pass@1, and each of the last three per tier when the eval set has a `tier` (or `difficulty`)
column: eval/pass@4/tier=hard.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine import control
from engine.contract.passk import PassRule, PromptSamples, correctness_criterion, eval_figures, tier_of
from engine.data import prompt_text
from engine.rewards.api import ScoredBatch
from engine.rewards.errors import RubricError

if TYPE_CHECKING:
    from engine.session import RunSession


def pass_rule(session: RunSession) -> PassRule:
    """The run's pass rule: [eval] correctness (or the rubric's correctness-like criterion, or the total)
    at [eval] pass_threshold. A configured name the rubric lacks is a RubricError naming the criteria."""
    criteria = [(c.name, float(c.weight)) for c in session.rubric.criteria]
    try:
        name = correctness_criterion(criteria, session.cfg.eval.correctness)
    except ValueError as exc:
        raise RubricError(f"[eval] correctness: {exc}") from None
    return PassRule(name, session.cfg.eval.pass_threshold)


def _prompt_samples(
    rule: PassRule, scored: ScoredBatch, rows: list[dict[str, Any]], n: int, greedy: ScoredBatch | None
) -> tuple[list[PromptSamples], str]:
    prompts, column = [], "tier"
    for p, row in enumerate(rows):
        passed, values = [], []
        for i in range(p * n, p * n + n):
            total, scores, _ = scored.row(i)
            passed.append(rule.passed(total, scores))
            values.append(rule.value(total, scores))
        greedy_passed = None
        if greedy is not None:
            total, scores, _ = greedy.row(p)
            greedy_passed = rule.passed(total, scores)
        col, tier = tier_of(row)
        if tier is not None:
            column = col
        prompts.append(PromptSamples(passed, values, greedy_passed, tier))
    return prompts, column


def pass_figures(
    session: RunSession, rows: list[dict[str, Any]], scored: ScoredBatch
) -> dict[str, float | None]:
    """pass@1 and mean@1 (per tier too) of one sample per prompt: the default evaluation's extra figures."""
    prompts, column = _prompt_samples(pass_rule(session), scored, rows, 1, None)
    return eval_figures(prompts, [1], 1, tier_column=column)


def evaluate_sampled(session: RunSession, model: Any, tokenizer: Any, step: int) -> dict[str, float | None]:
    """Sample [eval] eval_samples completions per held-out prompt (and one greedy completion with
    eval_greedy), score them with the rubric, record every sample and the figures; returns the figures."""
    from engine.generation import generate
    from engine.session import ROW_INDEX, mean_std

    cfg, e = session.cfg, session.cfg.eval
    control.emit(
        "progress",
        run_id=session.run_id,
        step=step,
        max_steps=cfg.training.max_steps,
        steps_per_s=None,
        eta_s=None,
        phase="eval",
    )
    t0 = time.perf_counter()
    rule = pass_rule(session)
    rows, n = session.eval_rows, e.eval_samples
    prompts = [r["prompt"] for r in rows]
    names = [k for k in rows[0] if k != "prompt"]
    seed = cfg.training.seed + 7919 * (
        step + 1
    )  # the one-sample path's seed: its first sample is the same draw
    repeated = [p for p in prompts for _ in range(n)]
    out = generate(model, tokenizer, repeated, cfg, seed=seed)
    columns = {k: [r.get(k) for r in rows for _ in range(n)] for k in names}
    scored = session.score(repeated, out.completions_for_rubric, columns, out.completion_ids, step)
    greedy = None
    if e.eval_greedy:
        best = generate(model, tokenizer, prompts, cfg, seed=seed, greedy=True)
        greedy_columns = {k: [r.get(k) for r in rows] for k in names}
        greedy = session.score(
            prompts, best.completions_for_rubric, greedy_columns, best.completion_ids, step
        )

    summary: dict[str, float | None] = {}
    for name, values in scored.scores.items():
        summary[f"eval/{name}/mean"] = mean_std(values)[0]
    summary["eval/reward/mean"] = mean_std(list(scored.totals))[0]
    per_prompt, column = _prompt_samples(rule, scored, rows, n, greedy)
    summary |= eval_figures(per_prompt, e.pass_k, n, tier_column=column)

    samples = []
    for p, row in enumerate(rows):
        for i in range(p * n, p * n + n):
            total, scores, errors = scored.row(i)
            samples.append(
                {
                    "prompt_index": row.get(ROW_INDEX, p),
                    "prompt": prompt_text(row["prompt"]),
                    "completion": out.texts[i],
                    "reward": total,
                    "scores": scores,
                    "errors": errors,
                }
            )
    session.flush()
    session.workspace.write_evaluation(session.run_id, step, samples, summary)
    control.emit("eval_written", run_id=session.run_id, step=step, reward=summary["eval/reward/mean"])
    shown = [f"pass@{k}" for k in e.pass_k] + [f"mean@{n}", "greedy_pass@1", "reward"]
    pretty = ", ".join(
        f"{key}={v:.3f}"
        for key in shown
        if (v := summary.get(f"eval/{key}" if key != "reward" else "eval/reward/mean")) is not None
    )
    session.log(
        f"eval at step {step} on {len(rows)} prompts x {n} samples{' + greedy' if greedy else ''} "
        f"({rule.describe()} passes; {time.perf_counter() - t0:.1f}s): {pretty}"
    )
    return summary
