"""Agreement with human labels (engine/contract/agreement.py) and pass@k (engine/contract/passk.py)
against values computed by hand (the working is in the comments)."""

from __future__ import annotations

import math

import pytest

from engine.contract.agreement import BINARY, ORDINAL, SCORE, agreement, cohen_kappa, spearman
from engine.contract.passk import (
    LEARNING,
    NEVER_SOLVED,
    SOLVED,
    UNSEEN,
    PassRule,
    PromptSamples,
    correctness_criterion,
    eval_figures,
    pass_at_k,
    prompt_status,
)


def test_binary_agreement_matches_the_hand_computed_figures() -> None:
    labels = [True, True, False, False, True, False]
    scores = [0.9, 0.2, 0.1, 0.7, 0.6, 0.3]  # at >= 0.5: T F F T T F
    a = agreement("judge", scores, labels, ids=[10, 11, 12, 13, 14, 15])
    assert a.kind == BINARY and a.n == 6 and a.skipped == 0
    assert a.levels == [0.0, 1.0]
    assert a.confusion == [[2, 1], [1, 2]]  # rows: label False, True; columns: the judge's verdict
    assert a.accuracy == pytest.approx(4 / 6)
    # p_o = 4/6, p_e = 3/6 * 3/6 + 3/6 * 3/6 = 1/2, kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3
    assert a.kappa == pytest.approx(1 / 3)
    # score ranks 6 2 1 5 4 3, label ranks 5 5 2 2 5 2: r = 4.5 / sqrt(17.5 * 13.5)
    assert a.spearman == pytest.approx(4.5 / math.sqrt(17.5 * 13.5))
    assert a.disagreements == [11, 13]


def test_thumbs_labels_and_missing_scores() -> None:
    # the inspector's thumbs: 1 good, -1 bad; a None score (not applicable) is skipped
    a = agreement("format", [1.0, None, 0.0, 1.0], [1, -1, -1, -1])
    assert a.kind == BINARY and a.levels == [-1.0, 1.0]
    assert a.n == 3 and a.skipped == 1
    assert a.confusion == [[1, 1], [0, 1]]
    assert a.disagreements == [3]
    # p_o = 2/3; rows (2, 1) cols (1, 2): p_e = (2*1 + 1*2) / 9 = 4/9; kappa = (2/3 - 4/9) / (5/9) = 2/5
    assert a.kappa == pytest.approx(0.4)


def test_perfect_and_undefined_agreement() -> None:
    perfect = agreement("c", [1.0, 0.0, 1.0], [True, False, True])
    assert (
        perfect.accuracy == 1.0
        and perfect.kappa == pytest.approx(1.0)
        and perfect.spearman == pytest.approx(1.0)
    )
    constant = agreement(
        "c", [1.0, 1.0], [True, True]
    )  # both sides always say "good": chance explains it all
    assert constant.accuracy == 1.0 and constant.kappa is None and constant.spearman is None
    nothing = agreement("c", [None, float("nan")], [True, False])
    assert nothing.n == 0 and nothing.skipped == 2 and nothing.accuracy is None


def test_ordinal_labels_use_quadratic_weighted_kappa() -> None:
    # grades 1..3; the judge scores on the same scale
    a = agreement("judge", [1, 3, 3, 2], [1, 2, 3, 3])
    assert a.kind == ORDINAL and a.levels == [1.0, 2.0, 3.0]
    assert a.confusion == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert a.accuracy == pytest.approx(0.5)
    # w_ij = ((i - j) / 2)^2; observed (0.25 + 0.25) / 4 = 0.125; rows = cols = (1, 1, 2):
    # expected (0.25 + 2 + 0.25 + 0.5 + 2 + 0.5) / 16 = 5.5 / 16; kappa = 1 - 0.125 / 0.34375 = 7/11
    assert a.kappa == pytest.approx(7 / 11)
    assert a.disagreements == [1, 3]


def test_ordinal_labels_spread_a_unit_score_over_their_range() -> None:
    # labels 1..5, scores in [0, 1]: 1 + s * 4, rounded to the nearest grade
    a = agreement("judge", [0.0, 0.5, 1.0, 0.74], [1, 3, 5, 4])
    assert a.accuracy == 1.0 and a.disagreements == []


def test_unweighted_and_linear_kappa_of_a_known_table() -> None:
    table = [[20, 5], [10, 15]]  # p_o = 35/50; p_e = (25*30 + 25*20) / 2500 = 1/2; kappa = 0.4
    assert cohen_kappa(table) == pytest.approx(0.4)
    assert cohen_kappa(table, "linear") == pytest.approx(0.4)  # two levels: every weighting agrees


def test_score_labels_get_spearman_and_rank_disagreements() -> None:
    a = agreement("judge", [0.1, 0.2, 0.3, 0.9], [0.15, 0.25, 0.95, 0.05])
    assert a.kind == SCORE and a.accuracy is None and a.kappa is None and a.confusion == []
    # ranks 1 2 3 4 vs 2 3 4 1: d^2 = 1 + 1 + 1 + 9 = 12; rho = 1 - 6 * 12 / (4 * 15) = -0.2
    assert a.spearman == pytest.approx(-0.2)
    assert a.disagreements == [3]  # percentile 1.0 vs 0.0


def test_spearman_with_ties_uses_average_ranks() -> None:
    # x ranks 1.5 1.5 3 4, y ranks 1 2 3 4: Pearson of the ranks
    xs, ys = [1.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]
    rx, ry = [1.5, 1.5, 3, 4], [1, 2, 3, 4]
    mx, my = sum(rx) / 4, sum(ry) / 4
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    assert spearman(xs, ys) == pytest.approx(sxy / math.sqrt(sxx * syy))


def test_pass_at_k_matches_the_binomial_formula() -> None:
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(5, 2, 4) == 1.0  # fewer than 4 failures: any 4 samples hold a pass
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - 35 / 210)  # 1 - C(7,4)/C(10,4)
    assert pass_at_k(8, 0, 4) == 0.0
    assert pass_at_k(8, 8, 1) == 1.0
    # stable where the binomials are astronomically large: 1 - C(199,100)/C(200,100) = 1 - 100/200
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    assert pass_at_k(1000, 7, 500) == pytest.approx(1 - math.comb(993, 500) / math.comb(1000, 500))
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_eval_figures_per_tier() -> None:
    prompts = [
        PromptSamples([True, False, False, False], [1, 0, 0, 0], greedy_passed=True, tier="easy"),
        PromptSamples([True, True, True, True], [1, 1, 1, 1], greedy_passed=True, tier="easy"),
        PromptSamples([False, False, False, False], [0, 0, 0.5, 0], greedy_passed=False, tier="hard"),
    ]
    f = eval_figures(prompts, [1, 4], n=4)
    assert f["eval/pass@1"] == pytest.approx((0.25 + 1 + 0) / 3)
    assert f["eval/pass@4"] == pytest.approx((1 + 1 + 0) / 3)
    assert f["eval/mean@4"] == pytest.approx((0.25 + 1 + 0.125) / 3)
    assert f["eval/greedy_pass@1"] == pytest.approx(2 / 3)
    assert f["eval/pass@1/tier=easy"] == pytest.approx(0.625)
    assert f["eval/pass@4/tier=hard"] == 0.0
    assert f["eval/greedy_pass@1/tier=hard"] == 0.0
    assert "eval/greedy_pass@1" not in eval_figures([PromptSamples([True], [1.0])], [1], n=1)


def test_the_correctness_criterion_and_the_pass_rule() -> None:
    demo = [("correct", 1.0), ("format", 0.2), ("length", 0.0)]
    assert correctness_criterion(demo) == "correct"
    assert correctness_criterion([("accuracy_logged", 0.0), ("task_success", 1.0)]) == "task_success"
    assert correctness_criterion([("format", 1.0)]) is None
    assert correctness_criterion(demo, "format") == "format"
    with pytest.raises(ValueError, match="not in the rubric"):
        correctness_criterion(demo, "corect")
    rule = PassRule("correct", 1.0)
    assert rule.passed(0.2, {"correct": 1.0}) and not rule.passed(1.2, {"correct": 0.0})
    assert not rule.passed(1.0, {"correct": None}) and not rule.passed(1.0, {"correct": float("nan")})
    total = PassRule(None, 0.5)
    assert total.passed(0.6, {}) and not total.passed(0.5, {}) and total.value(0.6, {}) == 0.6


def test_prompt_status() -> None:
    assert prompt_status(0, 0, 0, 0) == UNSEEN
    assert prompt_status(16, 0, 8, 0) == NEVER_SOLVED
    assert prompt_status(16, 9, 8, 8) == SOLVED
    assert prompt_status(16, 9, 8, 5) == LEARNING
