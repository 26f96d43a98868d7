"""`rl-studio-engine rubric test` and `rl-studio-engine rubric redteam`: try a rubric on sample completions,
and attack it with cheap cheats, before spending compute on training.

    rl-studio-engine rubric test RUBRIC --samples FILE.jsonl [--json] [--tokenizer PATH]
    rl-studio-engine rubric redteam RUBRIC --dataset FILE.jsonl [--json] [--fail-on-flag]
    rl-studio-engine rubric calibrate RUBRIC --labels FILE.jsonl [--json]  (engine/rewards/calibrate.py)

With --json each prints one JSON line, whose shape is defined in engine/contract/command_outputs.py.
Exit codes: 0 done, 2 bad input (the message says what and where), 3 redteam flagged a cheat with
--fail-on-flag. Both commands score through Rubric.score, the code path training uses.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from engine.contract.command_outputs import (
    CheatScore,
    RedteamOutput,
    SampleScores,
    rubric_redteam_json,
    rubric_test_json,
)
from engine.rewards.errors import RubricError
from engine.rewards.rubric import Rubric, load_rubric
from engine.rewards.samples import SampleError, batch_from_rows, read_jsonl

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FLAGGED = 3


def default_tokenizer() -> Path:
    from engine.contract.paths import DEMO_DIR

    return DEMO_DIR / "model"


def register(subparsers: Any) -> None:
    """Add `rubric test` and `rubric redteam` to the engine CLI's argparse subparsers."""
    rubric = subparsers.add_parser(
        "rubric", help="Test a rubric on samples, or red-team it with cheap cheats."
    )
    commands = rubric.add_subparsers(dest="rubric_command", metavar="{test,redteam,calibrate}", required=True)

    test = commands.add_parser(
        "test", help="Score sample completions with a rubric and show every criterion."
    )
    test.add_argument("rubric", help="The rubric TOML file.")
    test.add_argument(
        "--samples",
        required=True,
        help="JSONL: one object per line with 'prompt', 'completion' (a string or a message list) and any "
        "dataset columns the rubric reads.",
    )
    test.add_argument("--json", action="store_true", help="Print a JSON list instead of a table.")
    _tokenizer_option(test)
    test.set_defaults(func=cmd_rubric_test, protocol=False)

    redteam = commands.add_parser("redteam", help="Score cheap cheats on a dataset and flag those that pay.")
    redteam.add_argument("rubric", help="The rubric TOML file.")
    redteam.add_argument(
        "--dataset",
        required=True,
        help="JSONL dataset rows ('prompt' and columns); rows with a 'reference' completion set the yardstick.",
    )
    redteam.add_argument("--json", action="store_true", help="Print a JSON object instead of a table.")
    redteam.add_argument(
        "--fail-on-flag", action="store_true", help="Exit with code 3 when a cheat is flagged."
    )
    redteam.add_argument(
        "--pad-chars", type=int, default=1000, help="Length of the pad_to_limit cheat, in characters (1000)."
    )
    _tokenizer_option(redteam)
    redteam.set_defaults(func=cmd_rubric_redteam, protocol=False)

    from engine.rewards.calibrate import add_calibrate

    add_calibrate(commands, _tokenizer_option)


def _tokenizer_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="Tokenizer folder for criteria that read completion_ids when the samples carry none "
        "(default: the bundled demo model's).",
    )


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(args: argparse.Namespace, batch_has_ids: bool) -> Rubric:
    rubric = load_rubric(args.rubric)
    if rubric.needs_completion_ids and not batch_has_ids:
        path = Path(args.tokenizer) if args.tokenizer else default_tokenizer()
        try:
            rubric.tokenizer = load_tokenizer(path)
        except Exception:
            rubric.close()
            raise
    return rubric


def load_tokenizer(path: Path) -> Any:
    if not path.is_dir():
        raise RubricError(
            f"a criterion reads completion_ids, and the tokenizer folder {path} does not exist; "
            "pass --tokenizer PATH or put completion_ids in the samples"
        )
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise RubricError(f"cannot load a tokenizer from {path}: {exc}") from None


# ---- rubric test --------------------------------------------------------------------------------------


def cmd_rubric_test(args: argparse.Namespace) -> int:
    try:
        rows = read_jsonl(args.samples, required=("prompt", "completion"))
        batch = batch_from_rows(rows)
        rubric = _load(args, batch.completion_ids is not None)
    except (RubricError, SampleError) as exc:
        return _fail(str(exc))
    with rubric:
        scored = rubric.score(batch)
    results = []
    for i in range(len(rows)):
        total, scores, errors = scored.row(i)
        if scored.total_errors and scored.total_errors[i]:
            errors = {**errors, "total": scored.total_errors[i]}  # type: ignore[dict-item]
        results.append(SampleScores(index=i, total=total, scores=scores, errors=errors))
    if args.json:
        print(rubric_test_json(results))
        return EXIT_OK
    explanations = {
        (i, name): text for name, texts in scored.explanations.items() for i, text in enumerate(texts) if text
    }
    print(_test_table(rubric, results, explanations))
    return EXIT_OK


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"


def _test_table(rubric: Rubric, results: list[SampleScores], explanations: dict[tuple[int, str], str]) -> str:
    names = [c.name for c in rubric.criteria]
    header = ["#", "total", *[f"{c.name} (x{c.weight:g})" for c in rubric.criteria]]
    body = []
    for r in results:
        cells = [str(r.index), _number(r.total)]
        for name in names:
            cells.append("ERROR" if name in r.errors else _number(r.scores[name]))
        body.append(cells)
    widths = [max(len(row[k]) for row in [header, *body]) for k in range(len(header))]
    lines = [f"rubric {rubric.name}: {len(names)} criteria, {len(results)} samples", ""]
    for row in [header, *body]:
        lines.append("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    notes = [f"  #{r.index} {name}: {message}" for r in results for name, message in r.errors.items()]
    if notes:
        lines += ["", "errors:", *notes]
    if explanations:
        lines += ["", "judge explanations:"]
        for (i, name), text in sorted(explanations.items()):
            short = " ".join(text.split())
            lines.append(f"  #{i} {name}: {short if len(short) <= 160 else short[:157] + '...'}")
    return "\n".join(lines)


# ---- rubric redteam -----------------------------------------------------------------------------------


def cmd_rubric_redteam(args: argparse.Namespace) -> int:
    from engine.rewards.redteam import FLAG_FRACTION, redteam

    if args.pad_chars < 1:
        return _fail(f"--pad-chars must be at least 1, not {args.pad_chars}")
    try:
        rows = read_jsonl(args.dataset, required=("prompt",))
        rubric = _load(args, batch_has_ids=False)
    except (RubricError, SampleError) as exc:
        return _fail(str(exc))
    with rubric:
        report = redteam(rubric, rows, pad_chars=args.pad_chars)
    if args.json:
        cheats = [CheatScore(c.name, c.mean_total, c.flagged, c.example) for c in report.cheats]
        print(rubric_redteam_json(RedteamOutput(reference_mean=report.reference_mean, cheats=cheats)))
    else:
        lines = [f"rubric {rubric.name} red-teamed on {report.rows} rows", ""]
        if report.reference_mean is None:
            lines.append(
                "no row has a 'reference' completion: nothing to compare with, so nothing is flagged"
            )
        else:
            lines.append(
                f"reference mean total: {report.reference_mean:.3f} over {report.reference_rows} rows; "
                f"a cheat reaching {FLAG_FRACTION * report.reference_mean:.3f} is flagged"
            )
        lines.append("")
        width = max(len(c.name) for c in report.cheats)
        lines.append(f"{'cheat'.ljust(width)}  mean total  flagged  example")
        for c in report.cheats:
            example = json.dumps(c.example[:60] + ("..." if len(c.example) > 60 else ""), ensure_ascii=False)
            lines.append(
                f"{c.name.ljust(width)}  {c.mean_total:10.3f}  {'FLAGGED' if c.flagged else '':7}  {example}"
            )
        print("\n".join(lines))
    if args.fail_on_flag and report.flagged:
        names = ", ".join(c.name for c in report.flagged)
        print(f"flagged: {names} (--fail-on-flag)", file=sys.stderr)
        return EXIT_FLAGGED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.rewards.commands")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
