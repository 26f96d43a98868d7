"""The inspector's reads on real workspaces: keyset pages, every filter, search, counts, groups, prompt
history, labels and exports. Expected rows are computed in Python from what the workspace holds."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_rollout_workspace import Rollout, build_run, read_back

from engine.contract import schema
from studio.state import rollout_groups as rg
from studio.state import rollout_query as rq
from studio.state.labels import LabelError, label_counts, read_labels, save_label
from studio.state.rollout_export import ExportOptions, export_jsonl, export_rows
from studio.state.rollout_query import RolloutFilter


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """Two runs written alternately (so their ids interleave); tests read the second, "main" one."""
    path = tmp_path_factory.mktemp("rq") / "ws.sqlite"
    other = build_run(path, steps=3, seed=7, name="other")
    main = build_run(path, steps=8, prompts=5, generations=4, seed=3)
    return path, main, other


@pytest.fixture
def conn(built: tuple[Path, int, int]) -> Iterator[sqlite3.Connection]:
    c = schema.connect(str(built[0]), readonly=True)
    yield c
    c.close()


def read_all(conn: sqlite3.Connection, run_id: int, flt: RolloutFilter, limit: int = 7) -> list[int]:
    ids: list[int] = []
    after = None
    while True:
        page = rq.read_page(conn, run_id, flt, after, limit)
        assert len(page.rows) <= limit
        ids += [r.id for r in page.rows]
        after = page.cursor
        if page.done:
            return ids


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[^\W_]+", text)}


def has_phrase(text: str, phrase: str) -> bool:
    tokens, wanted = [w.lower() for w in re.findall(r"[^\W_]+", text)], phrase.split()
    return any(tokens[i : i + len(wanted)] == wanted for i in range(len(tokens)))


CASES: dict[str, tuple[RolloutFilter, Callable[[Rollout], bool]]] = {
    "everything": (RolloutFilter(), lambda r: True),
    "step range": (RolloutFilter(step_min=3, step_max=5), lambda r: 3 <= r.step <= 5),
    "from a step": (RolloutFilter(step_min=6), lambda r: r.step >= 6),
    "up to a step": (RolloutFilter(step_max=2), lambda r: r.step <= 2),
    "reward range": (
        RolloutFilter(reward_min=0.5, reward_max=1.1),
        lambda r: r.reward is not None and 0.5 <= r.reward <= 1.1,
    ),
    "reward floor": (RolloutFilter(reward_min=1.2), lambda r: r.reward is not None and r.reward >= 1.2),
    "no reward that high": (RolloutFilter(reward_min=5.0), lambda r: False),
    "errors": (RolloutFilter(errors_only=True), lambda r: bool(r.errors)),
    "truncated": (RolloutFilter(truncated_only=True), lambda r: r.truncated),
    "zero-std groups": (
        RolloutFilter(zero_std_only=True),
        lambda r: r.group_std is not None and r.group_std <= rq.ZERO_STD,
    ),
    "a word": (RolloutFilter(search="therefore"), lambda r: "therefore" in words(r.completion)),
    "two words": (
        RolloutFilter(search="final answer"),
        lambda r: {"final", "answer"} <= words(r.completion),
    ),
    "a phrase": (RolloutFilter(search='"the answer"'), lambda r: has_phrase(r.completion, "the answer")),
    "a prefix": (
        RolloutFilter(search="there*"),
        lambda r: any(w.startswith("there") for w in words(r.completion)),
    ),
    "a special token": (RolloutFilter(search="<|im_end|>"), lambda r: has_phrase(r.completion, "im end")),
    "punctuation only": (RolloutFilter(search="|>"), lambda r: "|>" in r.completion),
    "search and errors": (
        RolloutFilter(search="answer", errors_only=True),
        lambda r: "answer" in words(r.completion) and bool(r.errors),
    ),
    "everything at once": (
        RolloutFilter(step_min=2, step_max=7, reward_min=0.1, truncated_only=True, search="answer"),
        lambda r: (
            2 <= r.step <= 7 and (r.reward or 0) >= 0.1 and r.truncated and "answer" in words(r.completion)
        ),
    ),
    "zero-std and a step": (
        RolloutFilter(zero_std_only=True, step_min=4, step_max=4),
        lambda r: r.step == 4 and r.group_std is not None and r.group_std <= rq.ZERO_STD,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_filter_pages_exactly_the_matching_rollouts_in_order(
    case: str, built: tuple[Path, int, int], conn: sqlite3.Connection
) -> None:
    path, run_id, _ = built
    flt, keep = CASES[case]
    expected = [r.id for r in read_back(path, run_id) if keep(r)]
    if case not in ("no reward that high",):
        assert expected, f"the test data has no rollout for {case!r}"
    assert read_all(conn, run_id, flt) == expected
    assert rq.count_matching(conn, run_id, flt) == len(expected)


def test_pages_have_no_gap_or_repeat_whatever_their_size(built: tuple[Path, int, int], conn) -> None:
    path, run_id, other = built
    everything = [r.id for r in read_back(path, run_id)]
    for limit in (1, 3, 16, 1000):
        assert read_all(conn, run_id, RolloutFilter(), limit) == everything
    assert set(everything).isdisjoint(r.id for r in read_back(path, other))
    assert rq.run_total(conn, run_id) == len(everything)
    assert rq.last_rollout_id(conn, run_id) == everything[-1]


def test_a_slow_scan_reports_each_window_and_its_progress(
    built: tuple[Path, int, int], conn, monkeypatch
) -> None:
    path, run_id, _ = built
    monkeypatch.setattr(rq, "SCAN_WINDOW", 10)
    seen: list[tuple[int, float]] = []
    flt = RolloutFilter(reward_min=1.2)
    page = rq.read_page(
        conn, run_id, flt, None, 1000, lambda rows, cursor, done: seen.append((len(rows), done))
    )
    assert len(seen) > 5 and sum(n for n, _ in seen) == len(page.rows)
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert [r.id for r in page.rows] == [r.id for r in read_back(path, run_id) if (r.reward or 0) >= 1.2]


def test_rows_carry_prompts_scores_and_errors(built: tuple[Path, int, int], conn) -> None:
    path, run_id, _ = built
    truth = {r.id: r for r in read_back(path, run_id)}
    page = rq.read_page(conn, run_id, RolloutFilter(errors_only=True), None, 50)
    assert page.rows
    for row in page.rows:
        t = truth[row.id]
        assert (row.step, row.group_id, row.prompt, row.prompt_index) == (
            t.step,
            t.group_id,
            t.prompt,
            t.prompt_index,
        )
        assert row.scores == t.scores and row.errors == t.errors and "TimeoutError" in row.errors["correct"]
        assert row.completion == t.completion[: rq.PREVIEW_CHARS]
    assert rq.run_criteria(conn, run_id) == ["correct", "format", "length"]  # the rubric's order
    assert rq.criterion_weights(conn, run_id) == {"correct": 1.0, "format": 0.2, "length": 0.0}


@pytest.mark.parametrize(
    "typed", ['"', "(", "AND", "OR NOT", "-x", "*", "a:b", "NEAR(a b)", '"unclosed', "x^2", "日本語"]
)
def test_any_typed_search_is_a_valid_query(typed: str, built, conn) -> None:
    _, run_id, _ = built
    rq.read_page(conn, run_id, RolloutFilter(search=typed))
    rq.count_matching(conn, run_id, RolloutFilter(search=typed))


def test_fts_query_terms() -> None:
    assert rq.fts_query("final answer") == '"final" "answer"'
    assert rq.fts_query('"the answer" is*') == '"the answer" "is"*'
    assert rq.fts_query("<|im_end|>") == '"im end"'
    assert rq.fts_query("### ...") is None


def test_group_detail_sorts_by_reward_and_reads_explanations(built: tuple[Path, int, int], conn) -> None:
    path, run_id, _ = built
    rows = read_back(path, run_id)
    group_id = rows[len(rows) // 2].group_id
    detail = rg.group_detail(conn, group_id)
    assert detail is not None
    members = [r for r in rows if r.group_id == group_id]
    assert {r.id for r in detail.rollouts} == {r.id for r in members}
    rewards = [r.reward for r in detail.rollouts if r.reward is not None]
    assert rewards == sorted(rewards, reverse=True)
    assert [r.reward for r in detail.rollouts][len(rewards) :] == [None] * (len(members) - len(rewards))
    assert {r.completion for r in detail.rollouts} == {r.completion for r in members}  # whole, not previews
    assert rg.group_detail(conn, 10**9) is None


def test_judge_explanations_are_read_with_the_group(tmp_path: Path) -> None:
    path = tmp_path / "ws.sqlite"
    run_id = build_run(path, steps=1)
    c = schema.connect(str(path))
    rid = c.execute("SELECT min(id) FROM rollouts WHERE run_id = ?", (run_id,)).fetchone()[0]
    with c:
        c.execute(
            "UPDATE rollouts SET explanations_json = json_object('correct', 'the sum is right') WHERE id = ?",
            (rid,),
        )
    group_id = c.execute("SELECT group_id FROM rollouts WHERE id = ?", (rid,)).fetchone()[0]
    detail = rg.group_detail(c, group_id)
    c.close()
    assert detail is not None
    assert next(r for r in detail.rollouts if r.id == rid).explanations == {"correct": "the sum is right"}
    assert all(not r.explanations for r in detail.rollouts if r.id != rid)


def test_prompt_history_is_every_group_of_the_prompt_by_step(built: tuple[Path, int, int], conn) -> None:
    path, run_id, _ = built
    rows = read_back(path, run_id)
    pick = next(r for r in rows if r.step == 4 and r.prompt_index == 2)
    groups, total = rg.prompt_history(conn, run_id, pick.group_id)
    assert total == 8 and [g.step for g in groups] == list(range(1, 9))
    assert all(g.prompt_index == 2 and len(g.rollouts) == 4 for g in groups)
    last_two, total = rg.prompt_history(conn, run_id, pick.group_id, limit=2)
    assert total == 8 and [g.step for g in last_two] == [7, 8]


# ---- labels --------------------------------------------------------------------------------------------
def test_labels_round_trip_and_filter(tmp_path: Path) -> None:
    path = tmp_path / "ws.sqlite"
    run_id = build_run(path, steps=3)
    rows = read_back(path, run_id)
    good, bad, noted = rows[1].id, rows[5].id, rows[9].id
    save_label(path, good, 1, "")
    save_label(path, bad, -1, "  off by one  ")
    save_label(path, noted, 0, "look at the spacing")
    save_label(path, rows[2].id, 1, "")
    save_label(path, rows[2].id, 0, "")  # cleared again: the row is deleted
    conn = schema.connect(str(path), readonly=True)
    found = read_labels(conn, [r.id for r in rows])
    assert {k: (v.label, v.note) for k, v in found.items()} == {
        good: (1, ""),
        bad: (-1, "off by one"),
        noted: (0, "look at the spacing"),
    }
    assert label_counts(conn, run_id) == (1, 1)
    assert read_all(conn, run_id, RolloutFilter(label="good")) == [good]
    assert read_all(conn, run_id, RolloutFilter(label="bad")) == [bad]
    assert read_all(conn, run_id, RolloutFilter(label="labelled")) == [good, bad, noted]
    unlabelled = [r.id for r in rows if r.id not in (good, bad, noted)]
    assert read_all(conn, run_id, RolloutFilter(label="unlabelled")) == unlabelled
    assert read_all(conn, run_id, RolloutFilter(label="good", search="zzz")) == []
    page = rq.read_page(conn, run_id, RolloutFilter(step_min=1), None, 20)
    assert {r.id: (r.label, r.note) for r in page.rows}[bad] == (-1, "off by one")
    conn.close()
    with pytest.raises(ValueError, match="label must be"):
        save_label(path, good, 2, "")


def test_a_label_that_cannot_be_written_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    import studio.state.labels as labels_module

    path = tmp_path / "ws.sqlite"
    run_id = build_run(path, steps=1)
    rid = read_back(path, run_id)[0].id
    monkeypatch.setattr(labels_module, "WRITE_TIMEOUT_S", 0.05)
    holder = schema.connect(str(path))
    holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        with pytest.raises(LabelError, match=r"not saved.*locked"):
            save_label(path, rid, 1, "")
    finally:
        holder.rollback()
        holder.close()
    assert save_label(path, rid, 1, "").label == 1


# ---- export --------------------------------------------------------------------------------------------
def _jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_sft_and_pairs_from_labels(tmp_path: Path) -> None:
    path = tmp_path / "ws.sqlite"
    run_id = build_run(path, steps=2)
    rows = read_back(path, run_id)
    g1 = [r for r in rows if r.group_id == rows[4].group_id]
    g2 = [r for r in rows if r.group_id == rows[8].group_id]
    save_label(path, g1[0].id, 1, "")
    save_label(path, g1[1].id, -1, "")
    save_label(path, g1[2].id, -1, "")
    save_label(path, g2[3].id, 1, "")  # a thumbs-up alone in its group: SFT yes, no pair
    conn = schema.connect(str(path), readonly=True)
    out = tmp_path / "sft.jsonl"
    assert export_jsonl(conn, run_id, out, ExportOptions("sft", "labels")) == 2
    assert _jsonl(out) == [
        {"prompt": g1[0].prompt, "completion": g1[0].completion},
        {"prompt": g2[3].prompt, "completion": g2[3].completion},
    ]
    out = tmp_path / "pairs.jsonl"
    assert export_jsonl(conn, run_id, out, ExportOptions("pairs", "labels")) == 2
    assert _jsonl(out) == [
        {"prompt": g1[0].prompt, "chosen": g1[0].completion, "rejected": g1[1].completion},
        {"prompt": g1[0].prompt, "chosen": g1[0].completion, "rejected": g1[2].completion},
    ]
    only_step_2 = ExportOptions("sft", "labels", filter=RolloutFilter(step_min=2))
    assert [r["completion"] for r in export_rows(conn, run_id, only_step_2)] == [
        r.completion for r in (g1[0], g2[3]) if r.step == 2
    ]
    conn.close()


def test_export_from_rewards(tmp_path: Path) -> None:
    path = tmp_path / "ws.sqlite"
    run_id = build_run(path, steps=3)
    rows = read_back(path, run_id)
    groups: dict[int, list[Rollout]] = {}
    for r in rows:
        groups.setdefault(r.group_id, []).append(r)
    conn = schema.connect(str(path), readonly=True)

    def best(members: list[Rollout]) -> list[Rollout]:
        return sorted((m for m in members if m.reward is not None), key=lambda m: (-(m.reward or 0), m.id))

    top2 = list(export_rows(conn, run_id, ExportOptions("sft", "reward", per_group=2, min_reward=1.0)))
    assert top2 == [
        {"prompt": m.prompt, "completion": m.completion}
        for g in groups.values()
        for m in best(g)[:2]
        if (m.reward or 0) >= 1.0
    ]
    pairs = list(export_rows(conn, run_id, ExportOptions("pairs", "reward", min_margin=0.5)))
    expected = []
    for g in groups.values():
        ranked = best(g)
        if len(ranked) >= 2 and (ranked[0].reward or 0) - (ranked[-1].reward or 0) > 0.5:
            expected.append(
                {"prompt": g[0].prompt, "chosen": ranked[0].completion, "rejected": ranked[-1].completion}
            )
    assert pairs == expected and expected
    zero_std_only = ExportOptions("pairs", "reward", filter=RolloutFilter(zero_std_only=True))
    assert list(export_rows(conn, run_id, zero_std_only)) == []  # no signal, no pair
    conn.close()


def test_export_options_are_checked() -> None:
    with pytest.raises(ValueError, match="kind"):
        ExportOptions(kind="dpo")
    with pytest.raises(ValueError, match="source"):
        ExportOptions(source="vibes")
    with pytest.raises(ValueError, match="per_group"):
        ExportOptions(per_group=0)
    assert "best 2 of each group" in ExportOptions("sft", "reward", per_group=2).describe()
