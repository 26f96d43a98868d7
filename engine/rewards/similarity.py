"""Text similarity metrics for OpenAI `text_similarity` graders, in plain Python. Each returns [0, 1].

fuzzy_match  character-level Indel similarity (rapidfuzz's fuzz.ratio / 100): 1 - edits / (len a + len b)
bleu         sentence BLEU-4 with brevity penalty and sacrebleu's default "exp" smoothing
gleu         sentence Google-BLEU (min of n-gram precision and recall, n = 1..4)
meteor       METEOR with exact unigram matches only (no stemming or synonyms, unlike NLTK's)
rouge_1..5   ROUGE-N F1 (rouge-score's tokenization: lowercase, alphanumeric runs)
rouge_l      ROUGE-L F1 (longest common subsequence of tokens)

`cosine` needs an embedding model; RL Studio rejects it at load rather than compute something else.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence

_WORDS = re.compile(r"\w+|[^\w\s]")
_ROUGE_TOKENS = re.compile(r"[a-z0-9]+")


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix / Hyyrö): O(len a) big-int
    operations over len(b) bits, fast enough for long completions in pure Python."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[Hashable, int] = {}
    for i, item in enumerate(b):
        masks[item] = masks.get(item, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for item in a:
        match = masks.get(item, 0)
        u = v & match
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def fuzzy_match(candidate: str, reference: str) -> float:
    total = len(candidate) + len(reference)
    if total == 0:
        return 1.0
    return 2.0 * lcs_length(candidate, reference) / total


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(candidate: str, reference: str, max_n: int = 4) -> float:
    hyp, ref = _WORDS.findall(candidate), _WORDS.findall(reference)
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    # sacrebleu's sentence_bleu: "exp" smoothing, and only the orders the hypothesis is long enough for.
    logs = []
    smooth = 1.0
    for n in range(1, max_n + 1):
        total = len(hyp) - n + 1
        if total <= 0:
            break
        matches = sum((_ngrams(hyp, n) & _ngrams(ref, n)).values())
        if matches == 0:
            smooth *= 2.0
            precision = 1.0 / (smooth * total)
        else:
            precision = matches / total
        logs.append(math.log(precision))
    log_precision = math.fsum(logs) / len(logs)
    brevity = 1.0 if len(hyp) > len(ref) else math.exp(1.0 - len(ref) / len(hyp))
    return brevity * math.exp(log_precision)


def gleu(candidate: str, reference: str, max_n: int = 4) -> float:
    hyp, ref = _WORDS.findall(candidate), _WORDS.findall(reference)
    hyp_total = ref_total = matches = 0
    for n in range(1, max_n + 1):
        hyp_grams, ref_grams = _ngrams(hyp, n), _ngrams(ref, n)
        hyp_total += sum(hyp_grams.values())
        ref_total += sum(ref_grams.values())
        matches += sum((hyp_grams & ref_grams).values())
    if max(hyp_total, ref_total) == 0:
        return 1.0 if hyp == ref else 0.0
    return matches / max(hyp_total, ref_total)


def _rouge_tokens(text: str) -> list[str]:
    return _ROUGE_TOKENS.findall(text.lower())


def _f1(matches: int, hyp_total: int, ref_total: int) -> float:
    if matches == 0 or hyp_total == 0 or ref_total == 0:
        return 0.0
    precision, recall = matches / hyp_total, matches / ref_total
    return 2 * precision * recall / (precision + recall)


def rouge_n(candidate: str, reference: str, n: int) -> float:
    hyp, ref = _ngrams(_rouge_tokens(candidate), n), _ngrams(_rouge_tokens(reference), n)
    return _f1(sum((hyp & ref).values()), sum(hyp.values()), sum(ref.values()))


def _rouge_n_metric(candidate: str, reference: str, n: int) -> float:
    return rouge_n(candidate, reference, n)


def rouge_l(candidate: str, reference: str) -> float:
    hyp, ref = _rouge_tokens(candidate), _rouge_tokens(reference)
    return _f1(lcs_length(hyp, ref), len(hyp), len(ref))


def meteor(
    candidate: str, reference: str, alpha: float = 0.9, beta: float = 3.0, gamma: float = 0.5
) -> float:
    hyp = [t.lower() for t in _WORDS.findall(candidate)]
    ref = [t.lower() for t in _WORDS.findall(reference)]
    if not hyp or not ref:
        return 0.0
    # Align each hypothesis word to the first unused identical reference word, left to right.
    used: set[int] = set()
    alignment: list[tuple[int, int]] = []
    for i, word in enumerate(hyp):
        for j, other in enumerate(ref):
            if j not in used and other == word:
                used.add(j)
                alignment.append((i, j))
                break
    matches = len(alignment)
    if matches == 0:
        return 0.0
    precision, recall = matches / len(hyp), matches / len(ref)
    fmean = precision * recall / (alpha * precision + (1 - alpha) * recall)
    chunks = 1 + sum(
        1 for (i0, j0), (i1, j1) in itertools.pairwise(alignment) if i1 != i0 + 1 or j1 != j0 + 1
    )
    penalty = gamma * (chunks / matches) ** beta
    return fmean * (1 - penalty)


METRICS: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": fuzzy_match,
    "bleu": bleu,
    "gleu": gleu,
    "meteor": meteor,
    **{f"rouge_{n}": functools.partial(_rouge_n_metric, n=n) for n in range(1, 6)},
    "rouge_l": rouge_l,
}
