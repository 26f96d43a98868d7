"""Every reward convention RL Studio accepts, each exercised with functions written in its own style:
TRL (sync, async, named-only, None), open-r1 (conversational), verifiers (per sample, group, async) and
OpenAI's grade(sample, item). See docs/rewards.md#conventions."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from engine.rewards import RewardBatch, load_rubric
from engine.rewards.conventions import ConventionError, analyse, metric_name

FIXTURES = Path(__file__).parent / "reward_fixtures" / "conventions"

THINK = "<think>\nFirst, 2+2.\nNext, check.\nFinally, done.\n</think>\n<answer>\n4\n</answer>"
PROMPTS = ["What is 2+2?", "What is 3+3?", "Spell cat", "What is 2+2?"]
COMPLETIONS = ["4", "7", "cat cat cat cat", THINK]
COLUMNS = {"answer": ["4", "6", "cat", "4"], "solution": ["4", "6", "no number here", "The answer is 4"]}
IDS = [[1], [2, 3], [4, 5, 6, 7, 8, 9], list(range(12))]


@pytest.fixture(scope="module")
def rubric():
    with load_rubric(FIXTURES / "conventions.toml") as r:
        yield r


@pytest.fixture(scope="module")
def standard(rubric):
    return rubric.score(RewardBatch(PROMPTS, COMPLETIONS, dict(COLUMNS), completion_ids=IDS, step=7))


@pytest.fixture(scope="module")
def conversational(rubric):
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    completions = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    return rubric.score(RewardBatch(prompts, completions, dict(COLUMNS), completion_ids=IDS, step=7))


def test_styles_are_detected(rubric):
    styles = {c.name: c.detected_style for c in rubric.criteria}
    assert styles == {
        "reward_len": "trl",
        "exact_answer": "trl",
        "only_numeric": "trl",
        "async_reward": "trl",
        "step_scaled": "trl",
        "bools_and_ints": "trl",
        "accuracy": "conversational",  # detected: it reads completion[0]["content"]
        "format": "conversational",
        "tag_count": "conversational",
        "reasoning_steps": "conversational",
        "repetition": "conversational",  # a closure, as open-r1 builds it
        "soft_overlong": "trl",
        "vf_correct": "verifiers",
        "vf_parsed": "verifiers",
        "vf_echo": "verifiers",
        "vf_async": "verifiers",
        "vf_diversity": "verifiers (group)",
        "vf_task": "verifiers",
        "oa_grade": "openai-python",
        "oa_json": "openai-python",
    }


def failing(scored):
    return {k for k, v in scored.errors.items() if any(v)}


def test_only_the_expected_criteria_fail(standard, conversational):
    # bools_and_ints returns 3 values, whatever the batch size.
    assert failing(standard) == {"bools_and_ints"}
    # Functions that treat completions as strings fail on message lists, as they would in TRL or verifiers.
    assert failing(conversational) == {"bools_and_ints", "exact_answer", "only_numeric", "vf_diversity"}
    assert (
        "AttributeError: 'list' object has no attribute 'strip'" in conversational.errors["exact_answer"][0]
    )


# ---- TRL ---------------------------------------------------------------------------------------------


def test_trl_keyword_batch(standard):
    assert standard.scores["reward_len"] == [-19.0, -19.0, -5.0, -float(len(THINK) - 20)]
    assert standard.scores["exact_answer"] == [1.0, 0.0, 0.0, 0.0]


def test_trl_log_metric_and_log_extra(standard):
    assert standard.logged_metrics["exact_answer/hit_rate"] == 0.25
    assert standard.logged_columns["n_tokens"] == [1, 2, 6, 12]


def test_trl_named_only_and_none_means_not_applicable(standard):
    assert standard.scores["only_numeric"] == [1.0, 0.0, None, 0.0]
    assert standard.errors["only_numeric"] == [None] * 4


def test_trl_async(standard):
    assert standard.scores["async_reward"] == [0.5] * 4


def test_trl_trainer_state(standard):
    assert standard.scores["step_scaled"] == [7.0] * 4


def test_trl_bools_and_ints_are_numbers(rubric):
    scored = rubric.score(RewardBatch(PROMPTS[:3], COMPLETIONS[:3], {k: v[:3] for k, v in COLUMNS.items()}))
    assert scored.scores["bools_and_ints"] == [1.0, 0.0, 2.0]


def test_trl_functions_see_the_dataset_format(conversational):
    # exact_answer strips strings; handed message lists it fails to match, as it would in TRL.
    assert conversational.scores["reward_len"] == [-19.0] * 4  # len(list of one message) = 1


# ---- open-r1 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["standard", "conversational"])
def test_open_r1_gets_conversational_completions_either_way(which, standard, conversational):
    scored = standard if which == "standard" else conversational
    assert scored.scores["accuracy"] == [1.0, 0.0, None, 1.0]  # None: the gold solution has no number
    assert scored.scores["format"] == [0.0, 0.0, 0.0, 1.0]
    assert scored.scores["tag_count"] == [0.0, 0.0, 0.0, 1.0]
    assert scored.scores["reasoning_steps"] == [0.0, 0.0, 0.0, 1.0]
    assert scored.scores["repetition"][2] == pytest.approx(-(1 - 1 / 3))
    assert scored.scores["repetition"][0] == 0.0


def test_open_r1_soft_overlong_reads_completion_ids(standard):
    # max 8, cache 4: <= 4 tokens -> 0; 5..8 -> (4 - len) / 4; > 8 -> -1
    assert standard.scores["soft_overlong"] == [0.0, 0.0, -0.5, -1.0]


def test_completion_ids_come_from_the_tokenizer_when_the_batch_has_none(rubric):
    class CharTokenizer:
        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[ord(ch) for ch in text] for text in texts]}

    assert rubric.needs_completion_ids  # exact_answer and soft_overlong name completion_ids
    rubric.tokenizer = CharTokenizer()
    try:
        scored = rubric.score(
            RewardBatch(["p", "p"], ["abc", "abcdef"], {"answer": ["x", "y"], "solution": ["1", "2"]})
        )
    finally:
        rubric.tokenizer = None
    assert scored.scores["soft_overlong"] == [0.0, -0.5]
    assert scored.logged_columns["n_tokens"] == [3, 6]


def test_without_ids_or_tokenizer_the_error_says_so(rubric):
    scored = rubric.score(RewardBatch(["p"], ["abc"], {"answer": ["x"], "solution": ["1"]}))
    assert scored.scores["soft_overlong"] == [None]
    assert "asks for 'completion_ids'" in scored.errors["soft_overlong"][0]


# ---- verifiers ---------------------------------------------------------------------------------------


def test_verifiers_per_sample_named_parameters(standard, conversational):
    for scored in (standard, conversational):
        assert scored.scores["vf_correct"] == [1.0, 0.0, 1.0, 1.0]
        assert scored.scores["vf_task"] == [1.0] * 4
    assert standard.scores["vf_parsed"] == [1.0, 0.0, 0.0, 0.0]
    assert standard.scores["vf_echo"] == [0.0, 0.0, 0.0, 0.0]
    assert standard.scores["vf_async"] == [float(len(c)) for c in COMPLETIONS]


def test_verifiers_group_function_sees_plural_parameters(standard):
    assert standard.scores["vf_diversity"] == [1.0] * 4
    assert standard.errors["vf_diversity"] == [None] * 4


# ---- OpenAI grade(sample, item) ------------------------------------------------------------------------


def test_openai_grade(standard, rubric):
    assert standard.scores["oa_grade"] == [1.0, 0.0, 0.0, 0.0]
    scored = rubric.score(
        RewardBatch(
            ["q", "q"],
            ['{"answer": "4"}', '```json\n{"answer": "5"}\n```'],
            {"answer": ["4", "4"], "solution": ["", ""]},
        )
    )
    assert scored.scores["oa_json"] == [1.0, 0.0]


# ---- signature analysis, in-process --------------------------------------------------------------------


def test_metric_names_follow_trl():
    def my_reward(completions, **kwargs):
        return []

    class Scorer:
        def __call__(self, completions, **kwargs):
            return []

    assert metric_name(my_reward) == "my_reward"
    assert metric_name(functools.partial(my_reward, scale=2)) == "my_reward"
    assert metric_name(Scorer()) == "Scorer"
    assert analyse(Scorer(), None)["style"] == "trl"
    assert analyse(functools.partial(my_reward, scale=2), None)["style"] == "trl"


def test_signatures_that_fit_no_convention():
    def two_unknowns(x, y):
        return 0.0

    def positional_only(completions, /):
        return []

    with pytest.raises(ConventionError, match=r"fits no convention"):
        analyse(two_unknowns, None)
    with pytest.raises(ConventionError, match="positional-only"):
        analyse(positional_only, "trl")
    with pytest.raises(ConventionError, match=r"grade\(sample, item\)"):
        analyse(lambda sample: 0.0, "openai-python")
