"""Text similarity metrics of OpenAI's `text_similarity` graders, computed by the libraries those graders
name. Each returns a score in [0, 1]; `METRICS` maps `evaluation_metric` to its function.

fuzzy_match  rapidfuzz: fuzz.ratio / 100, the normalised Indel similarity of the two texts
bleu         sacrebleu: sentence BLEU with sacrebleu's defaults (13a tokens, exp smoothing, effective
             order) / 100
gleu         NLTK: sentence GLEU (n-grams 1..4) over NLTK's word tokens
meteor       NLTK: METEOR over NLTK's word tokens, lowercased, with exact and Porter-stem matches.
             The WordNet synonym stage is off: WordNet is a separate corpus download, and with it a
             score would depend on what one machine happens to have installed.
rouge_1..5   rouge-score: ROUGE-N F-measure (its tokens: lowercase letters and digits, no stemming)
rouge_l      rouge-score: ROUGE-L F-measure (longest common subsequence)

`cosine` needs an embedding model; RL Studio refuses it at load rather than compute something else.
The libraries load on first use: a rubric without text_similarity never imports them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def fuzzy_match(candidate: str, reference: str) -> float:
    from rapidfuzz import fuzz

    return fuzz.ratio(candidate, reference) / 100.0


@functools.cache
def _bleu() -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)  # sentence-level, as sacrebleu.sentence_bleu


def bleu(candidate: str, reference: str) -> float:
    return _unit(_bleu().sentence_score(candidate, [reference]).score / 100.0)


@functools.cache
def _word_tokens() -> Callable[[str], list[str]]:
    # NLTK's word_tokenize without its sentence splitter, which needs a downloaded model (punkt).
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer().tokenize  # type: ignore[no-any-return]


def gleu(candidate: str, reference: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    tokens = _word_tokens()
    return _unit(sentence_gleu([tokens(reference)], tokens(candidate), min_len=1, max_len=4))


class _NoSynonyms:
    """Stands in for NLTK's WordNet reader: no synsets, so METEOR matches exact words and stems."""

    def synsets(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def meteor(candidate: str, reference: str) -> float:
    from nltk.translate.meteor_score import meteor_score

    tokens = _word_tokens()
    return _unit(meteor_score([tokens(reference)], tokens(candidate), wordnet=_NoSynonyms()))


@functools.cache
def _rouge(kind: str) -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer([kind], use_stemmer=False)


def rouge(candidate: str, reference: str, kind: str) -> float:
    """`kind`: rouge1 .. rouge5 or rougeL, as rouge-score names them."""
    return _unit(_rouge(kind).score(reference, candidate)[kind].fmeasure)


def _unit(x: float) -> float:
    """Library scores of identical texts can land a rounding error above 1 (sacrebleu: 100.00000000000004)."""
    return min(1.0, max(0.0, float(x)))


METRICS: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": fuzzy_match,
    "bleu": bleu,
    "gleu": gleu,
    "meteor": meteor,
    **{f"rouge_{n}": functools.partial(rouge, kind=f"rouge{n}") for n in range(1, 6)},
    "rouge_l": functools.partial(rouge, kind="rougeL"),
}
