"""text_similarity metrics: the libraries OpenAI's graders use, configured as their own sentence-level
entry points are, on varied text; and the grader wiring through a rubric."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.rewards import RewardBatch
from engine.rewards.rubric import rubric_from_text
from engine.rewards.similarity import METRICS, bleu, fuzzy_match, gleu, meteor, rouge

OPENAI_METRICS = {
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    "cosine",
    *(f"rouge_{n}" for n in range(1, 6)),
    "rouge_l",
}

PAIRS = [
    ("the cat sat on the mat", "the cat is on the mat"),
    ("The Cat, sat on the mat.", "the cat is on the mat"),
    ("Paris", "Paris"),
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("", "x"),
    ("", ""),
    ("x", ""),
    ("42", "forty-two"),
    ("Le café coûte 3,50 € — c'est cher!", "Le café coûte 3,50 €."),
    ("naïve résumé 東京 です", "naive resume 東京"),
    ("def f(x):\n    return x + 1\n", "def f(x): return x+1"),
    ("running runs ran", "run running runner"),
    ("a a a a a a a a", "a"),
    (" ".join(f"w{i % 17}" for i in range(300)), " ".join(f"w{i % 13}" for i in range(280))),
    ("isn't it the U.S.A.'s?", "is not it the USA's ?"),
]


def test_the_metrics_are_openais_less_cosine():
    assert set(METRICS) == OPENAI_METRICS - {"cosine"}


def test_known_values():
    # the libraries' documented results for these pairs
    assert fuzzy_match("this is a test", "this is a test!") == pytest.approx(0.9655, abs=1e-4)
    assert bleu("the cat sat on the mat", "the cat is on the mat") == pytest.approx(0.3799, abs=1e-4)
    assert bleu("same words here", "same words here") == 1.0
    assert gleu("the cat sat on the mat", "the cat is on the mat") == pytest.approx(0.5)
    assert METRICS["rouge_1"]("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    assert METRICS["rouge_2"]("the cat sat on the mat", "the cat is on the mat") == pytest.approx(0.6)
    assert METRICS["rouge_l"]("The cat, sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    assert meteor("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(
        1 - 0.5 / 6**3, abs=1e-3
    )
    assert meteor("", "x") == 0.0


def test_meteor_matches_stems_but_not_synonyms():
    # "runs" ~ "run" through the Porter stemmer; "big" / "large" would need WordNet, which is off
    assert meteor("he runs", "he run") == pytest.approx(meteor("he run", "he run"))
    assert meteor("a big dog", "a large dog") < meteor("a large dog", "a large dog")


@pytest.mark.parametrize(("candidate", "reference"), PAIRS)
def test_each_metric_is_its_librarys_own_sentence_score(candidate, reference):
    import sacrebleu
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.translate.gleu_score import sentence_gleu
    from rapidfuzz import fuzz
    from rouge_score import rouge_scorer

    words = NLTKWordTokenizer().tokenize
    scorer = rouge_scorer.RougeScorer([*(f"rouge{n}" for n in range(1, 6)), "rougeL"])
    rouges = scorer.score(reference, candidate)
    expected = {
        "fuzzy_match": fuzz.ratio(candidate, reference) / 100,
        "bleu": min(1.0, sacrebleu.sentence_bleu(candidate, [reference]).score / 100),
        "gleu": sentence_gleu([words(reference)], words(candidate)),
        **{f"rouge_{n}": rouges[f"rouge{n}"].fmeasure for n in range(1, 6)},
        "rouge_l": rouges["rougeL"].fmeasure,
    }
    for name, value in expected.items():
        assert METRICS[name](candidate, reference) == pytest.approx(value, abs=1e-12), name
    for name, metric in METRICS.items():
        assert 0.0 <= metric(candidate, reference) <= 1.0, name


def test_rouge_kinds_are_the_ones_rouge_score_knows():
    assert rouge("a b c d e f", "a b c d e f", "rouge5") == 1.0
    assert rouge("a b c d e", "a b c d e", "rougeL") == 1.0


def test_a_text_similarity_grader_scores_with_the_metric(tmp_path: Path):
    body = "\n".join(
        f'[[criteria]]\nname = "{name}"\nkind = "openai_grader"\n'
        f'grader = {{ type = "text_similarity", name = "{name}", input = "{{{{sample.output_text}}}}", '
        f'reference = "{{{{item.answer}}}}", evaluation_metric = "{name}", pass_threshold = 0.5 }}'
        for name in sorted(METRICS)
    )
    completions: list = ["the cat sat on the mat", "a dog", ""]
    answers = ["the cat is on the mat", "a dog", "nothing"]
    with rubric_from_text(f'name = "r"\n{body}\n', tmp_path) as rubric:
        scored = rubric.score(RewardBatch(["p"] * 3, completions, {"answer": answers}))
    for name, metric in METRICS.items():
        assert scored.scores[name] == pytest.approx(
            [metric(c, a) for c, a in zip(completions, answers, strict=True)]
        ), name
        assert scored.errors[name] == [None] * 3
