"""User reward code that raises, hangs, exits, runs out of memory or returns nonsense is contained: each
failure is an error message on its rows, a null score, and the rest of the rubric and the run go on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.rewards import RewardBatch, load_rubric

FIXTURES = Path(__file__).parent / "reward_fixtures"


@pytest.fixture(scope="module")
def failing():
    with load_rubric(FIXTURES / "failing.toml") as rubric:
        yield rubric


@pytest.fixture(scope="module")
def scored(failing):
    batch = RewardBatch(prompts=["p"] * 4, completions=["good", "hang", "exit", "fine"])
    return failing.score(batch)


def errors(scored, name):
    return scored.errors[name]


def test_healthy_criterion_scores_beside_failing_ones(scored):
    assert scored.scores["ok"] == [1.0, 1.0, 1.0, 1.0]
    assert scored.errors["ok"] == [None] * 4


def test_total_sums_only_values_that_exist(scored):
    # weights: ok 1.0, every other criterion 1.0; only ok, not_numbers (rows 1-3: 0.5),
    # hangs_on_one (len of completion, except the hung row) and exits_on_one (1.0 but the exited row) count.
    expected = []
    for i, c in enumerate(["good", "hang", "exit", "fine"]):
        total = 1.0
        total += 0.5 if i else 0.0
        total += 0.0 if c == "hang" else float(len(c))
        total += 0.0 if c == "exit" else 1.0
        expected.append(total)
    assert scored.totals == expected


def test_raise_is_recorded_with_message_and_location(scored):
    assert scored.scores["raises"] == [None] * 4
    assert all("ValueError: the answer column is malformed" in e for e in errors(scored, "raises"))
    assert "failing.py:9, in raises" in errors(scored, "raises")[0]


def test_hang_times_out_and_says_where(scored):
    assert scored.scores["hangs"] == [None] * 4
    message = errors(scored, "hangs")[0]
    assert message.startswith("timed out after 1 s")
    assert "failing.py" in message and "in hangs" in message


def test_hang_inside_c_code_holding_the_gil_is_stopped(scored):
    message = errors(scored, "spins_in_c")[0]
    assert message.startswith("timed out after 1 s")
    assert "in spins_in_c" in message


def test_process_exit_is_recorded(scored):
    assert all("exited with code 3" in e for e in errors(scored, "exits"))


def test_sys_exit_is_recorded_without_killing_the_worker(scored):
    assert all("tried to exit the process (exit code 4)" in e for e in errors(scored, "calls_sys_exit"))


def test_wrong_number_of_values(scored):
    assert scored.scores["wrong_length"] == [None] * 4
    assert errors(scored, "wrong_length")[0] == (
        "returned 5 values for 4 completions; return exactly one reward per completion"
    )


def test_not_a_number_fails_only_its_row(scored):
    assert scored.scores["not_numbers"] == [None, 0.5, 0.5, 0.5]
    assert "returned 'high' (str) for row 0" in errors(scored, "not_numbers")[0]
    assert errors(scored, "not_numbers")[1:] == [None, None, None]


def test_not_a_list(scored):
    assert "returned float instead of a list of 4 rewards" in errors(scored, "not_a_list")[0]


def test_infinite_is_an_error(scored):
    assert "a reward must be finite" in errors(scored, "infinite")[0]


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="memory_mb is enforced with RLIMIT_AS on Linux"
)
def test_memory_limit(scored):
    assert all(e.startswith("ran out of memory (memory_mb = 300)") for e in errors(scored, "allocates"))


def test_per_sample_hang_blames_only_its_row(scored):
    assert scored.scores["hangs_on_one"] == [4.0, None, 4.0, 4.0]
    message = errors(scored, "hangs_on_one")[1]
    assert message.startswith("timed out after 1 s") and message.endswith("(row 1)")


def test_per_sample_exit_blames_only_its_row(scored):
    assert scored.scores["exits_on_one"] == [1.0, 1.0, None, 1.0]
    assert "exited with code 9" in errors(scored, "exits_on_one")[2]


def test_dead_workers_are_replaced_and_score_again(failing, scored):
    exits = failing.criterion("exits").code.worker
    starts = exits.starts
    again = failing.score(RewardBatch(prompts=["p"], completions=["fine"]))
    assert again.scores["ok"] == [1.0]
    assert "exited with code 3" in again.errors["exits"][0]
    assert exits.starts == starts + 1
    assert again.scores["exits_on_one"] == [1.0]
