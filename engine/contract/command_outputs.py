"""What `rl-studio-engine rubric test --json` and `rubric redteam --json` print, defined once.

The engine prints one JSON line on stdout (engine/rewards/commands.py builds these records); the studio
parses that line back into the same records (studio/state/rubric_runner.py), with every field checked:

    rubric test     [{"index": 0, "total": 0.8, "scores": {name: float|null}, "errors": {name: message}}]
    rubric redteam  {"reference_mean": float|null, "cheats": [{"name", "mean_total", "flagged", "example"}]}
    rubric calibrate {"rows": int, "label_kind": str, "criteria": [Agreement...], "errors": {name: message}}
                    (engine/contract/agreement.py defines Agreement; "total" is the rubric's weighted total)

A score of null means "not applicable"; a criterion that failed on a sample has its message in
``errors`` (the key "total" when the weighted total itself could not be formed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.contract.agreement import Agreement
from engine.contract.typed import RecordError, check_fields, from_dict, to_dict


class CommandOutputError(RecordError):
    """Output that is not what the command prints; the message says what was wrong."""


@dataclass(frozen=True)
class SampleScores:
    """One sample scored by `rubric test`."""

    index: int
    """The sample's position in the samples file."""
    total: float | None
    scores: dict[str, float | None]
    errors: dict[str, str]

    def __post_init__(self) -> None:
        _check(self, "a rubric test result")


@dataclass(frozen=True)
class CheatScore:
    """One cheat of `rubric redteam`: what it earns on average, and whether that pays too well."""

    name: str
    mean_total: float
    flagged: bool
    example: str

    def __post_init__(self) -> None:
        _check(self, "a red-team cheat")


@dataclass(frozen=True)
class RedteamOutput:
    reference_mean: float | None
    """The mean total of the rows' reference completions (None: no row has one, nothing is flagged)."""
    cheats: list[CheatScore]

    def __post_init__(self) -> None:
        _check(self, "a red-team report")

    @property
    def flagged(self) -> list[CheatScore]:
        return [c for c in self.cheats if c.flagged]


@dataclass(frozen=True)
class CalibrateOutput:
    """`rubric calibrate`: each criterion (and the weighted total, named "total") against the human labels."""

    rows: int
    """Labelled rows scored."""
    label_kind: str
    """binary, ordinal or score (engine/contract/agreement.py)."""
    criteria: list[Agreement]
    errors: dict[str, str]
    """A criterion's first error message, for criteria that failed on some rows (those rows are skipped)."""

    def __post_init__(self) -> None:
        _check(self, "a calibration report")

    def by_name(self) -> dict[str, Agreement]:
        return {a.criterion: a for a in self.criteria}


def _check(record: Any, what: str) -> None:
    try:
        check_fields(record, what)
    except RecordError as exc:
        raise CommandOutputError(str(exc)) from None


# ---- printing (the engine) ------------------------------------------------------------------------------
def rubric_test_json(results: list[SampleScores]) -> str:
    return json.dumps([to_dict(r) for r in results], ensure_ascii=False)


def rubric_redteam_json(report: RedteamOutput) -> str:
    return json.dumps(to_dict(report), ensure_ascii=False)


def rubric_calibrate_json(report: CalibrateOutput) -> str:
    return json.dumps(to_dict(report), ensure_ascii=False, allow_nan=False)


# ---- parsing (the studio) -------------------------------------------------------------------------------
def _last_json_line(stdout: str, command: str) -> Any:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise CommandOutputError(f"`{command} --json` printed nothing")
    try:
        return json.loads(lines[-1])
    except ValueError as exc:
        raise CommandOutputError(f"`{command} --json` printed no JSON ({exc}): {lines[-1][:200]!r}") from None


def parse_rubric_test(stdout: str) -> list[SampleScores]:
    """The results `rubric test --json` printed (its last line). Raises CommandOutputError."""
    data = _last_json_line(stdout, "rubric test")
    if not isinstance(data, list):
        raise CommandOutputError(f"`rubric test --json` printed {type(data).__name__}, not a list of results")
    try:
        return [from_dict(SampleScores, item, f"rubric test result {i}") for i, item in enumerate(data)]
    except RecordError as exc:
        raise CommandOutputError(str(exc)) from None


def parse_rubric_redteam(stdout: str) -> RedteamOutput:
    """The report `rubric redteam --json` printed (its last line). Raises CommandOutputError."""
    data = _last_json_line(stdout, "rubric redteam")
    try:
        return from_dict(RedteamOutput, data, "the red-team report")
    except RecordError as exc:
        raise CommandOutputError(str(exc)) from None


def parse_rubric_calibrate(stdout: str) -> CalibrateOutput:
    """The report `rubric calibrate --json` printed (its last line). Raises CommandOutputError."""
    data = _last_json_line(stdout, "rubric calibrate")
    try:
        return from_dict(CalibrateOutput, data, "the calibration report")
    except RecordError as exc:
        raise CommandOutputError(str(exc)) from None
