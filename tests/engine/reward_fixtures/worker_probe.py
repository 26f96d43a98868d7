"""Reward functions that report on the worker process they run in."""

import os
import sys

import helper_module

HEAVY = ("torch", "transformers", "numpy", "trl", "engine.cli", "engine.algos", "engine.rewards.rubric")


def pid(completions, **kwargs):
    return [float(os.getpid())] * len(completions)


def heavy_modules(completions, **kwargs):
    loaded = [name for name in HEAVY if name in sys.modules]
    print("a reward function printing to stdout must not corrupt the worker protocol", loaded)
    sys.stdout.write("x" * 100_000)
    return [float(len(loaded))] * len(completions)


def version(completions, **kwargs):
    return [helper_module.VERSION] * len(completions)
