"""Reward functions that fail in every way a reward function can, for the containment tests."""

import os
import sys
import time


def raises(completions, **kwargs):
    raise ValueError("the answer column is malformed")


def hangs(completions, **kwargs):
    while True:
        time.sleep(0.05)


def spins_in_c(completions, **kwargs):
    import re

    # Catastrophic backtracking: re holds the GIL, so only a watchdog outside Python can stop it.
    re.match(r"(a+)+$", "a" * 40 + "b")
    return [1.0] * len(completions)


def exits(completions, **kwargs):
    os._exit(3)


def calls_sys_exit(completions, **kwargs):
    sys.exit(4)


def wrong_length(completions, **kwargs):
    return [1.0] * (len(completions) + 1)


def not_numbers(completions, **kwargs):
    return ["high" if "good" in c else 0.5 for c in completions]


def not_a_list(completions, **kwargs):
    return 1.0


def infinite(completions, **kwargs):
    return [float("inf")] * len(completions)


def allocates(completions, **kwargs):
    hog = bytearray(1024 * 1024 * 1024)  # 1 GiB, over the criterion's memory_mb
    return [float(len(hog) > 0)] * len(completions)


def hangs_on_one(completion, **kwargs):
    """verifiers style: one call per sample; only the sample saying 'hang' hangs."""
    if completion == "hang":
        time.sleep(60)
    return float(len(completion))


def exits_on_one(completion, **kwargs):
    if completion == "exit":
        os._exit(9)
    return 1.0


def ok(completions, **kwargs):
    return [1.0] * len(completions)
