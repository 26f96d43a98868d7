"""Tripwires during training: detectors of reward hacking and unhealthy training, evaluated at every step.

The monitor reads only what the run records anyway: the metrics of a step, its rollouts and their scores,
and the held-out evaluations. It generates nothing. Each detector compares a recent window of a series
with its early-run baseline (or its rolling mean) and, when it trips, the monitor stores an alert in the
workspace (engine/alerts_store.py), emits an `alert` event, and with `[monitor] action = "pause"` pauses
the run through its controller. docs/monitor.md says what each detector looks at and why its default
threshold is where it is.

It runs on the session's recorder thread, after the writes it reads: a step's rollouts are handed to
`rollouts_written` as they are committed, and `metrics_written` evaluates the detectors once the step's
metrics are. What it derives from the rollouts (mean length, truncation, the length-reward correlation,
the cheat-shape fractions) is recorded as `monitor/...` metrics, so a resumed run rebuilds its baselines
from the workspace alone.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from engine import control
from engine.alerts_store import add_alert, fired_steps, forget_alerts_after
from engine.contract.config import MonitorConfig
from engine.rewards.redteam import SHAPES, cheat_shapes

KINDS = (
    "proxy_divergence",
    "length_drift",
    "criterion_dominance",
    "entropy_collapse",
    "kl_spike",
    "truncation",
    "cheat_shapes",
)
CRITICAL = {"proxy_divergence", "criterion_dominance", "cheat_shapes"}
"""Kinds that are direct evidence of a gamed reward; the others are warnings about training health."""
CORRECTNESS_NAMES = ("correct", "accuracy", "exact_match", "success", "pass")
EXAMPLES = 5
"""Example rollout ids an alert carries."""

MEAN_TOKENS = "monitor/mean_tokens"
TRUNCATED = "monitor/truncated_fraction"
LENGTH_CORR = "monitor/length_reward_corr"
CHEAT = "monitor/cheat/"
REWARD = "reward"


@dataclass
class Alert:
    """What a detector found. `examples` names which rollouts of the step illustrate it (see Monitor)."""

    kind: str
    message: str
    evidence: dict[str, Any]
    examples: str = "top_reward"
    key: str = ""
    """What the cooldown counts by (the kind, or kind:shape for cheat shapes)."""

    @property
    def severity(self) -> str:
        return "critical" if self.kind in CRITICAL else "warning"


@dataclass
class RolloutRow:
    id: int
    reward: float | None
    tokens: int
    truncated: bool
    shapes: list[str]
    correct: float | None


# ---- series ------------------------------------------------------------------------------------------
class History:
    """Per metric key, its value at each step it was recorded (NaN and None left out)."""

    def __init__(self) -> None:
        self.series: dict[str, dict[int, float]] = {}

    def add(self, step: int, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                self.series.setdefault(key, {})[step] = float(value)

    def points(self, key: str, upto: int | None = None) -> list[tuple[int, float]]:
        found = self.series.get(key, {})
        return sorted((s, v) for s, v in found.items() if upto is None or s <= upto)

    def values(self, key: str, upto: int | None = None) -> list[float]:
        return [v for _, v in self.points(key, upto)]

    def at(self, key: str, step: int) -> float | None:
        return self.series.get(key, {}).get(step)

    def keys(self, prefix: str) -> list[str]:
        return [k for k in self.series if k.startswith(prefix)]


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def baseline_and_recent(values: list[float], baseline: int, window: int) -> tuple[float, float] | None:
    """The mean of the first `baseline` values and of the last `window`, once both exist without overlap."""
    if len(values) < baseline + window:
        return None
    return _mean(values[:baseline]), _mean(values[-window:])


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r, or None when either side does not vary."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = _mean(xs), _mean(ys)
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    if sxx <= 1e-12 or syy <= 1e-12:
        return None
    return sxy / math.sqrt(sxx * syy)


# ---- what a step's rollouts say ----------------------------------------------------------------------
def step_stats(groups: Sequence[Sequence[RolloutRow]]) -> dict[str, float]:
    """The monitor's own per-step series from the step's rollouts, grouped by prompt."""
    rows = [r for g in groups for r in g]
    if not rows:
        return {}
    out = {
        MEAN_TOKENS: _mean([r.tokens for r in rows]),
        TRUNCATED: sum(r.truncated for r in rows) / len(rows),
    }
    for shape in SHAPES:
        out[CHEAT + shape] = sum(shape in r.shapes for r in rows) / len(rows)
    correlations = []
    for g in groups:
        pairs = [(float(r.tokens), r.reward) for r in g if r.reward is not None and math.isfinite(r.reward)]
        r_ = pearson([p[0] for p in pairs], [p[1] for p in pairs]) if len(pairs) > 2 else None
        if r_ is not None:
            correlations.append(r_)
    if correlations:
        out[LENGTH_CORR] = _mean(correlations)
    return out


# ---- the detectors: plain functions of the series, one per kind ---------------------------------------
@dataclass
class Context:
    cfg: MonitorConfig
    correctness: str | None
    """The correctness criterion's name, or None when the rubric has none."""
    weights: dict[str, float] = field(default_factory=dict)
    """Each criterion's weight in the total."""


def _r(x: float) -> float:
    return round(x, 4)


def detect_proxy_divergence(h: History, step: int, ctx: Context) -> Alert | None:
    """Training reward rose across the last `divergence_evals` held-out evaluations while the held-out
    score (the correctness criterion's, else the total) was flat or fell from each one to the next."""
    c = ctx.cfg
    target = f"eval/{ctx.correctness}/mean"
    if not h.series.get(target):
        target = "eval/reward/mean"
    evals = h.points(target, upto=step)[-c.divergence_evals :]
    rewards = h.points(REWARD, upto=step)
    if len(evals) < c.divergence_evals or not rewards:
        return None
    if any(b - a > c.divergence_tolerance for (_, a), (_, b) in pairwise(evals)):
        return None

    first, last = evals[0], evals[-1]
    # the training reward around each end, over at most `window` steps that do not overlap
    span = max(1, min(c.window, (last[0] - first[0]) // 2))

    def train_at(at: int) -> float:
        upto = [v for s, v in rewards if s <= at][-span:]
        return _mean(upto or [v for _, v in rewards[:span]])  # an evaluation before the first step

    before, after = train_at(first[0]), train_at(last[0])
    if after - before < c.divergence_rise:
        return None
    name = target.split("/")[1]
    return Alert(
        "proxy_divergence",
        f"Training reward rose {before:.3f} → {after:.3f} between steps {first[0]} and {last[0]}, while "
        f"held-out {name} went {first[1]:.3f} → {last[1]:.3f} over {len(evals)} evaluations: the policy "
        "may be learning the reward, not the task.",
        {
            "train_reward_before": _r(before),
            "train_reward_after": _r(after),
            "heldout_key": target,
            "heldout": [[s, _r(v)] for s, v in evals],
        },
        examples="top_reward_incorrect",
    )


def detect_length_drift(h: History, step: int, ctx: Context) -> Alert | None:
    """Mean completion length far above its early-run baseline, with reward tracking length in groups."""
    c = ctx.cfg
    found = baseline_and_recent(h.values(MEAN_TOKENS, step), c.baseline_steps, c.window)
    corr = h.values(LENGTH_CORR, step)[-c.window :]
    if found is None or not corr:
        return None
    base, recent = found
    correlation = _mean(corr)
    if base <= 0 or recent < c.length_ratio * base or correlation < c.length_correlation:
        return None
    return Alert(
        "length_drift",
        f"Completions grew from {base:.1f} to {recent:.1f} tokens on average ({recent / base:.1f}x) and "
        f"reward follows length inside groups (r = {correlation:.2f}): length may be what is rewarded.",
        {
            "baseline_tokens": _r(base),
            "recent_tokens": _r(recent),
            "ratio": _r(recent / base),
            "length_reward_corr": _r(correlation),
        },
        examples="longest",
    )


def detect_criterion_dominance(h: History, step: int, ctx: Context) -> Alert | None:
    """The total rose, almost all of it through one criterion, while the weighted correctness fell."""
    c = ctx.cfg
    correct = ctx.correctness
    if correct is None or ctx.weights.get(correct, 0) <= 0:
        return None
    total = baseline_and_recent(h.values(REWARD, step), c.baseline_steps, c.window)
    right = baseline_and_recent(h.values(f"rewards/{correct}/mean", step), c.baseline_steps, c.window)
    if total is None or right is None:
        return None
    rise = total[1] - total[0]
    if rise < c.dominance_rise or right[1] - right[0] > -c.dominance_fall:
        return None
    contributions = {}
    for name, weight in ctx.weights.items():
        found = baseline_and_recent(h.values(f"rewards/{name}/mean", step), c.baseline_steps, c.window)
        if found is not None and weight != 0:
            contributions[name] = weight * (found[1] - found[0])
    if not contributions:
        return None
    top = max(contributions, key=lambda n: contributions[n])
    if top == correct or contributions[top] < c.dominance_share * rise:
        return None
    return Alert(
        "criterion_dominance",
        f"The total reward rose by {rise:.3f}, {contributions[top]:.3f} of it through '{top}', while "
        f"'{correct}' fell {right[0]:.3f} → {right[1]:.3f}.",
        {
            "total_before": _r(total[0]),
            "total_after": _r(total[1]),
            "criterion": top,
            "contributions": {k: _r(v) for k, v in contributions.items()},
            "correctness": correct,
            "correctness_before": _r(right[0]),
            "correctness_after": _r(right[1]),
        },
        examples="top_reward_incorrect",
    )


def detect_entropy_collapse(h: History, step: int, ctx: Context) -> Alert | None:
    """Policy entropy fell to a small fraction of its early-run value: sampling has stopped exploring."""
    c = ctx.cfg
    found = baseline_and_recent(h.values("entropy", step), c.baseline_steps, c.window)
    if found is None:
        return None
    base, recent = found
    if base <= 0 or recent > c.entropy_ratio * base:
        return None
    return Alert(
        "entropy_collapse",
        f"Policy entropy fell from {base:.3g} to {recent:.3g} ({recent / base:.1%} of its early value): "
        "the policy samples nearly one completion per prompt.",
        {"baseline_entropy": _r(base), "recent_entropy": _r(recent), "ratio": _r(recent / base)},
    )


def detect_kl_spike(h: History, step: int, ctx: Context) -> Alert | None:
    """KL at this step far above its rolling mean over the previous `kl_window` steps."""
    c = ctx.cfg
    now = h.at("kl", step)
    previous = [v for s, v in h.points("kl", step - 1)][-c.kl_window :]
    if now is None or len(previous) < c.kl_window or now < c.kl_min:
        return None
    rolling = _mean(previous)
    if now < c.kl_spike * max(rolling, 1e-12):
        return None
    return Alert(
        "kl_spike",
        f"KL jumped to {now:.3g} at step {step}, {now / max(rolling, 1e-12):.1f}x its mean over the previous "
        f"{len(previous)} steps ({rolling:.3g}).",
        {"kl": _r(now), "rolling_mean": _r(rolling), "window": len(previous)},
    )


def detect_truncation(h: History, step: int, ctx: Context) -> Alert | None:
    """The fraction of completions cut off at max_completion_length rose well above its baseline."""
    c = ctx.cfg
    found = baseline_and_recent(h.values(TRUNCATED, step), c.baseline_steps, c.window)
    if found is None:
        return None
    base, recent = found
    if recent - base < c.truncation_rise:
        return None
    return Alert(
        "truncation",
        f"{recent:.0%} of completions now run into max_completion_length (early in the run: {base:.0%}).",
        {"baseline_fraction": _r(base), "recent_fraction": _r(recent)},
        examples="truncated",
    )


def detect_cheat_shapes(h: History, step: int, ctx: Context) -> Alert | None:
    """The fraction of rollouts shaped like a red-team cheat rose well above its baseline."""
    c = ctx.cfg
    rises = {}
    for shape in SHAPES:
        found = baseline_and_recent(h.values(CHEAT + shape, step), c.baseline_steps, c.window)
        if found is not None and found[1] - found[0] >= c.cheat_rise:
            rises[shape] = found
    if not rises:
        return None
    shape = max(rises, key=lambda s: rises[s][1] - rises[s][0])
    base, recent = rises[shape]
    return Alert(
        "cheat_shapes",
        f"{recent:.0%} of rollouts now look like the '{shape.replace('_', ' ')}' cheat (early in the run: "
        f"{base:.0%}).",
        {"shape": shape, "baseline_fraction": _r(base), "recent_fraction": _r(recent)},
        examples=f"shape:{shape}",
        key=f"cheat_shapes:{shape}",
    )


DETECTORS: tuple[Callable[[History, int, Context], Alert | None], ...] = (
    detect_proxy_divergence,
    detect_length_drift,
    detect_criterion_dominance,
    detect_entropy_collapse,
    detect_kl_spike,
    detect_truncation,
    detect_cheat_shapes,
)


def evaluate(h: History, step: int, ctx: Context) -> list[Alert]:
    """Every detector's alert at `step` (before cooldowns)."""
    alerts = []
    for detector in DETECTORS:
        alert = detector(h, step, ctx)
        if alert is not None:
            alert.key = alert.key or alert.kind
            alerts.append(alert)
    return alerts


def correctness_criterion(names: Sequence[str], configured: str) -> str | None:
    """The criterion named in [monitor] correctness, else the first named like a correctness check."""
    if configured:
        return configured if configured in names else None
    for name in names:
        if any(word in name.lower() for word in CORRECTNESS_NAMES):
            return name
    return None


def pick_examples(rows: Sequence[RolloutRow], which: str) -> list[int]:
    """Ids of the step's rollouts that show an alert best."""

    def reward(r: RolloutRow) -> float:
        return r.reward if r.reward is not None and math.isfinite(r.reward) else -math.inf

    if which == "longest":
        chosen = sorted(rows, key=lambda r: -r.tokens)
    elif which == "truncated":
        chosen = [r for r in rows if r.truncated]
    elif which.startswith("shape:"):
        chosen = [r for r in rows if which.removeprefix("shape:") in r.shapes]
    elif which == "top_reward_incorrect":
        wrong = [r for r in rows if r.correct is not None and r.correct <= 0]
        chosen = sorted(wrong or rows, key=lambda r: -reward(r))
    else:
        chosen = sorted(rows, key=lambda r: -reward(r))
    return [r.id for r in chosen[:EXAMPLES]]


# ---- the monitor of one run -----------------------------------------------------------------------------
class Monitor:
    """The detectors of one run over its workspace. Called on the recorder thread (see module doc)."""

    def __init__(
        self,
        workspace: Any,
        run_id: int,
        cfg: MonitorConfig,
        criteria: dict[str, float],
        controller: control.Controller | None,
        resumed_from_step: int = 0,
        format_example: str = "",
        correctness: str | None = None,
    ) -> None:
        self.workspace = workspace
        self.run_id = run_id
        self.cfg = cfg
        self.controller = controller
        self.format_example = format_example
        named = cfg.correctness if correctness is None else correctness
        self.ctx = Context(cfg, correctness_criterion(list(criteria), named), dict(criteria))
        self.history = History()
        self.pending: dict[int, list[list[RolloutRow]]] = {}
        self.last_fired: dict[str, int] = {}
        self.enabled = cfg.enabled and control.is_main_process()
        if self.enabled:
            # a resume forgets what was recorded after its checkpoint: the alerts of those steps too
            forget_alerts_after(workspace, run_id, resumed_from_step)
            self._load_history()
            self.last_fired = fired_steps(workspace, run_id)

    def _load_history(self) -> None:
        rows = self.workspace.conn.execute(
            "SELECT step, key, value FROM metrics WHERE run_id = ? AND value IS NOT NULL AND"
            " (key IN ('reward', 'entropy', 'kl') OR key GLOB 'rewards/*/mean' OR key GLOB 'eval/*'"
            " OR key GLOB 'monitor/*')",
            (self.run_id,),
        )
        for step, key, value in rows:
            self.history.add(step, {key: value})

    # ---- what the session hands over ----------------------------------------------------------------
    def rollouts_written(self, step: int, groups: Sequence[Any], last_id: int) -> None:
        """A batch of the step's groups (engine.store.GroupRecord) was committed with ids up to `last_id`."""
        if not self.enabled:
            return
        count = sum(len(g.rollouts) for g in groups)
        next_id = last_id - count + 1
        correct = self.ctx.correctness
        for g in groups:
            rows = []
            for r in g.rollouts:
                shapes = cheat_shapes(r.completion, g.prompt, r.truncated, self.format_example)
                score = r.scores.get(correct) if correct else None
                rows.append(RolloutRow(next_id, r.reward, r.completion_tokens, r.truncated, shapes, score))
                next_id += 1
            self.pending.setdefault(step, []).append(rows)

    def metrics_written(self, step: int, values: dict[str, Any]) -> list[Alert]:
        """The step's metrics are committed: add them and the rollouts' own series, run the detectors."""
        if not self.enabled:
            return []
        rows: list[RolloutRow] = []
        for at in sorted(s for s in self.pending if s <= step):
            groups = self.pending.pop(at)
            stats = step_stats(groups)
            if stats:
                self.workspace.write_metrics(self.run_id, at, stats)
                self.history.add(at, stats)
            if at == step:
                rows = [r for g in groups for r in g]
        self.history.add(step, values)
        self._read_evaluations()
        fired = []
        for alert in evaluate(self.history, step, self.ctx):
            last = self.last_fired.get(alert.key)
            if last is not None and step - last < max(self.cfg.cooldown_steps, 1):
                continue
            self.last_fired[alert.key] = step
            self._raise(step, alert, pick_examples(rows, alert.examples))
            fired.append(alert)
        return fired

    def _read_evaluations(self) -> None:
        """Held-out scores are written by the evaluation itself (before or after the step's metrics)."""
        evals = self.history.points("eval/reward/mean")
        since = evals[-1][0] if evals else -1
        for step, key, value in self.workspace.conn.execute(
            "SELECT step, key, value FROM metrics WHERE run_id = ? AND key >= 'eval/' AND key < 'eval0'"
            " AND step >= ? AND value IS NOT NULL",
            (self.run_id, since),
        ):
            self.history.add(step, {key: value})

    def _raise(self, step: int, alert: Alert, examples: list[int]) -> None:
        evidence = dict(alert.evidence, step=step, examples=examples)
        alert_id = add_alert(
            self.workspace, self.run_id, step, alert.kind, alert.severity, alert.message, evidence
        )
        self.workspace.log_event(
            self.run_id,
            "alert",
            {"alert_id": alert_id, "step": step, "kind": alert.kind, "severity": alert.severity},
        )
        control.emit(
            "alert",
            run_id=self.run_id,
            alert_id=alert_id,
            step=step,
            kind=alert.kind,
            severity=alert.severity,
            message=alert.message,
        )
        pause = self.cfg.action == "pause" and self.controller is not None
        print(
            f"[run {self.run_id}] alert at step {step}: {alert.kind}: {alert.message}"
            + (" Pausing the run (resume it to continue)." if pause else ""),
            file=sys.stderr,
            flush=True,
        )
        if pause and self.controller is not None:
            self.controller.apply("pause")


def for_session(session: Any) -> Monitor:
    """The monitor of a RunSession: its workspace, config, rubric weights and controller."""
    from engine.rewards.redteam import format_only

    rubric, cfg = session.rubric, session.cfg
    criteria = {c.name: float(c.weight) for c in getattr(rubric, "criteria", [])}
    # [monitor] correctness, else the one [eval] names (pass@k), else one named like a correctness check
    correctness = cfg.monitor.correctness or getattr(getattr(cfg, "eval", None), "correctness", "")
    try:
        example = format_only(rubric, session.train_rows[:64])
    except Exception:  # a rubric whose format no cheat can be built from: the shape is only tags then
        example = ""
    return Monitor(
        session.workspace,
        session.run_id,
        cfg.monitor,
        criteria,
        session.controller,
        session.resumed_from_step,
        example,
        correctness=correctness,
    )
