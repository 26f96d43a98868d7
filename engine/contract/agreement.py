"""How well a criterion agrees with human labels: accuracy, Cohen's kappa, Spearman, the confusion matrix
and the rows where they disagree. Stdlib only: the engine (`rubric calibrate`) and the studio (the
inspector's agreement view, the rubric editor's calibration pane) compute it with this one module.

A human label is one of three kinds, told apart by its values:

binary   bools, or integers with at most two distinct values (the inspector's thumbs: 1 good, -1 bad;
         or 0/1). The criterion's score counts as "good" at or above `threshold` (0.5 by default).
         Accuracy, Cohen's kappa, the 2x2 confusion matrix, and Spearman between score and label.
ordinal  integers with three or more distinct values (for example a 1-5 grade). A score in [0, 1] is
         spread over the label range (lowest label + score x (highest - lowest)); any other score is
         read on the label's own scale; either is then rounded to the nearest label level. Accuracy,
         Cohen's kappa with quadratic weights (a 4 for a 5 costs less than a 1), the confusion
         matrix over the levels, and Spearman.
score    any non-integer number. Spearman only; a row disagrees when the score's and the label's
         percentile ranks are more than half the range apart.

Rows whose score is None or NaN (not applicable, or the criterion failed) are left out and counted in
`skipped`. A figure that is undefined (kappa when both sides always say the same, Spearman when one
side is constant) is None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

BINARY, ORDINAL, SCORE = "binary", "ordinal", "score"
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Agreement:
    """One criterion against the human labels."""

    criterion: str
    kind: str
    """binary, ordinal or score: how the labels were read (see the module's docstring)."""
    n: int
    """Rows that have both a label and a score."""
    skipped: int
    """Labelled rows the criterion gave no score (not applicable, or it failed)."""
    accuracy: float | None
    kappa: float | None
    """Cohen's kappa (binary) or quadratic-weighted kappa (ordinal); None for scores."""
    spearman: float | None
    levels: list[float] = field(default_factory=list)
    """The label levels the confusion matrix is indexed by, lowest first (empty for scores)."""
    confusion: list[list[int]] = field(default_factory=list)
    """confusion[i][j]: rows labelled levels[i] that the criterion put at levels[j]."""
    disagreements: list[Any] = field(default_factory=list)
    """The ids of the rows where the criterion and the label disagree, in input order."""
    threshold: float = DEFAULT_THRESHOLD


def label_kind(labels: Sequence[float | int | bool]) -> str:
    if all(isinstance(v, bool) for v in labels):
        return BINARY
    if all(float(v).is_integer() for v in labels):
        return BINARY if len({float(v) for v in labels}) <= 2 else ORDINAL
    return SCORE


def _finite(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value))


def agreement(
    criterion: str,
    scores: Sequence[float | None],
    labels: Sequence[float | int | bool],
    ids: Sequence[Any] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Agreement:
    """The agreement of one criterion's scores with the labels of the same rows (`ids` name the rows in
    `disagreements`; their positions by default)."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} labels: one of each per row")
    row_ids = list(ids) if ids is not None else list(range(len(labels)))
    kept = [
        (float(s), lab, rid)
        for s, lab, rid in zip(scores, labels, row_ids, strict=True)
        if s is not None and _finite(s)
    ]
    skipped = len(labels) - len(kept)
    kind = label_kind(labels) if labels else BINARY
    if not kept:
        return Agreement(criterion, kind, 0, skipped, None, None, None, threshold=threshold)
    xs = [s for s, _, _ in kept]
    ys = [float(lab) for _, lab, _ in kept]
    rid = [r for _, _, r in kept]
    rho = spearman(xs, ys)
    if kind == SCORE:
        rx, ry = _percentiles(xs), _percentiles(ys)
        far = [r for a, b, r in zip(rx, ry, rid, strict=True) if abs(a - b) > 0.5]
        return Agreement(
            criterion, kind, len(kept), skipped, None, None, rho, disagreements=far, threshold=threshold
        )
    levels = sorted({float(v) for v in labels})
    if kind == BINARY:
        if len(levels) == 1:  # every label the same: the other level is the one that was never given
            levels = [0.0, levels[0]] if levels[0] > 0 else [levels[0], 1.0]
        low, high = levels
        predicted = [high if s >= threshold else low for s in xs]
    else:
        predicted = [_nearest(_on_label_scale(s, levels, xs), levels) for s in xs]
    index = {v: i for i, v in enumerate(levels)}
    confusion = [[0] * len(levels) for _ in levels]
    for truth, guess in zip(ys, predicted, strict=True):
        confusion[index[truth]][index[guess]] += 1
    accuracy = sum(confusion[i][i] for i in range(len(levels))) / len(kept)
    kappa = cohen_kappa(confusion, weights="quadratic" if kind == ORDINAL else None)
    wrong = [r for truth, guess, r in zip(ys, predicted, rid, strict=True) if truth != guess]
    return Agreement(
        criterion, kind, len(kept), skipped, accuracy, kappa, rho, levels, confusion, wrong, threshold
    )


def _on_label_scale(score: float, levels: list[float], all_scores: list[float]) -> float:
    if all(0.0 <= s <= 1.0 for s in all_scores) and not (levels[0] >= 0 and levels[-1] <= 1):
        return levels[0] + score * (levels[-1] - levels[0])
    return score


def _nearest(value: float, levels: list[float]) -> float:
    return min(levels, key=lambda level: (abs(level - value), level))


def cohen_kappa(confusion: list[list[int]], weights: str | None = None) -> float | None:
    """Cohen's kappa of a square confusion matrix (rows: one rater, columns: the other); weights None
    (unweighted), "linear" or "quadratic". None when the chance agreement is total (kappa undefined)."""
    k = len(confusion)
    total = sum(sum(row) for row in confusion)
    if k < 2 or total == 0:
        return None
    rows = [sum(row) for row in confusion]
    cols = [sum(confusion[i][j] for i in range(k)) for j in range(k)]

    def disagreement_weight(i: int, j: int) -> float:
        if weights is None:
            return 0.0 if i == j else 1.0
        d = abs(i - j) / (k - 1)
        return d if weights == "linear" else d * d

    observed = sum(disagreement_weight(i, j) * confusion[i][j] for i in range(k) for j in range(k)) / total
    expected = sum(disagreement_weight(i, j) * rows[i] * cols[j] for i in range(k) for j in range(k)) / (
        total * total
    )
    if expected == 0:
        return None
    return 1.0 - observed / expected


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            out[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks, as scipy computes it)."""
    return pearson(ranks(xs), ranks(ys))


def _percentiles(values: list[float]) -> list[float]:
    r = ranks(values)
    n = len(values)
    return [(x - 1) / (n - 1) if n > 1 else 0.5 for x in r]


def human_label_value(label: int) -> bool | None:
    """The inspector's thumbs as a binary label: 1 (good) True, -1 (bad) False, 0 (none) None."""
    return True if label > 0 else False if label < 0 else None
