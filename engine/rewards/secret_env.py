"""Secrets in the engine's environment: kept out of reward workers, and scrubbed from what is stored.

A variable is secret when its name looks like one (`*KEY*`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`,
`*CREDENTIAL*`, any case) or when the rubric says so: a judge's `api_key_env`, a criterion's `env`.
Reward workers get the environment without secret variables, except those their criterion lists in
`env`. Every secret value (of at least MIN_SECRET_CHARS characters) is replaced by `[secret $NAME]` in
errors, judge answers and explanations before they are stored or printed.

The set of declared names is process-wide, like the environment it describes: a rubric declares its
names as it loads, and they stay declared for the life of the process.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.rewards.api import ScoredBatch

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
MIN_SECRET_CHARS = 8
"""Shorter values are not scrubbed: replacing every "false" or "1" would garble messages, not hide keys."""
NOT_SECRET = {"TOKENIZERS_PARALLELISM"}
"""Names that match the pattern but never hold a secret (the engine sets this one for every worker)."""

_declared: set[str] = set()
_lock = threading.Lock()
_cache: tuple[tuple[tuple[str, str], ...], re.Pattern[str] | None, dict[str, str]] = ((), None, {})


_verdicts: dict[str, bool] = {}


def declare(names: str | list[str] | None) -> None:
    """Name environment variables that hold secrets whatever they are called (api_key_env, env)."""
    if not names:
        return
    with _lock:
        _declared.update([names] if isinstance(names, str) else names)
        _verdicts.clear()


def is_secret_name(name: str) -> bool:
    verdict = _verdicts.get(name)
    if verdict is None:
        verdict = name in _declared or (name not in NOT_SECRET and SECRET_NAME.search(name) is not None)
        _verdicts[name] = verdict
    return verdict


def worker_environment(environ: Mapping[str, str], allowed: list[str]) -> dict[str, str]:
    """The environment a reward worker starts with: `environ` less its secrets, except `allowed`."""
    keep = set(allowed)
    return {k: v for k, v in environ.items() if k in keep or not is_secret_name(k)}


def _secret_values() -> tuple[tuple[str, str], ...]:
    found = {
        (value, name)
        for name, value in os.environ.items()
        if len(value) >= MIN_SECRET_CHARS and is_secret_name(name)
    }
    return tuple(sorted(found, key=lambda pair: (-len(pair[0]), pair)))


def _pattern() -> tuple[re.Pattern[str] | None, dict[str, str]]:
    global _cache
    values = _secret_values()
    if values != _cache[0]:
        names: dict[str, str] = {}
        for value, name in values:
            names.setdefault(value, name)
            # A JSON body echoes the value with its special characters escaped.
            names.setdefault(json.dumps(value)[1:-1], name)
        forms = sorted(names, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(f) for f in forms)) if forms else None
        _cache = (values, pattern, names)
    return _cache[1], _cache[2]


def scrub(text: str) -> str:
    """`text` with every secret value replaced by `[secret $NAME]`."""
    pattern, names = _pattern()
    if pattern is None or not text:
        return text
    return pattern.sub(lambda m: f"[secret ${names[m.group(0)]}]", text)


def scrub_scored(scored: ScoredBatch) -> ScoredBatch:
    """Scrub a batch's errors, explanations and logged text columns in place; returns it."""
    fields = [*scored.errors.values(), *scored.explanations.values(), scored.total_errors]
    fields += scored.logged_columns.values()
    if not any(isinstance(x, str) for items in fields for x in items):
        return scored  # the common batch: no message at all, nothing to look at the environment for
    pattern, names = _pattern()
    if pattern is None:
        return scored

    def hide(match: re.Match[str]) -> str:
        return f"[secret ${names[match.group(0)]}]"

    def clean(items: list[Any]) -> list[Any]:
        return [pattern.sub(hide, x) if isinstance(x, str) else x for x in items]

    scored.errors = {name: clean(v) for name, v in scored.errors.items()}
    scored.explanations = {name: clean(v) for name, v in scored.explanations.items()}
    scored.total_errors = clean(scored.total_errors)
    scored.logged_columns = {name: clean(v) for name, v in scored.logged_columns.items()}
    return scored
