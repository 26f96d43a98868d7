"""The dashboard draws the held-out pass@k, mean@n and greedy pass@1 curves, overall and per tier."""

from __future__ import annotations

from studio.plots.plot_grid import SPECS, plotted_key


def plot_of(key: str) -> tuple[str, str] | None:
    for spec in SPECS:
        label = spec.match(key)
        if label is not None:
            return spec.name, label
    return None


def test_pass_at_k_keys_have_their_own_plots() -> None:
    assert plot_of("eval/pass@4") == ("pass_at_k", "pass@4")
    assert plot_of("eval/greedy_pass@1") == ("pass_at_k", "greedy_pass@1")
    assert plot_of("eval/mean@8") == ("pass_at_k", "mean@8")
    assert plot_of("eval/pass@1/tier=hard") == ("pass_by_tier", "pass@1/tier=hard")
    assert plot_of("eval/greedy_pass@1/difficulty=3") == ("pass_by_tier", "greedy_pass@1/difficulty=3")
    assert plot_of("eval/correct/mean") == (
        "eval",
        "correct",
    )  # the per-criterion curves stay where they were
    assert all(plotted_key(k) for k in ("eval/pass@4", "eval/mean@4/tier=easy"))
    assert not plotted_key("eval/pass@4/other=x")
