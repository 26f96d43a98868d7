"""`rl-studio-engine rubric calibrate`: how well each criterion of a rubric agrees with human labels.

    rl-studio-engine rubric calibrate RUBRIC --labels FILE.jsonl [--threshold 0.5] [--json]

FILE holds one labelled completion per line: 'prompt', 'completion', any dataset columns the rubric reads,
and the human 'label' (true/false, an integer grade, or a number). Every row is scored through
Rubric.score, the code path training uses, and each criterion, and the weighted total, is compared with
the labels (engine/contract/agreement.py: accuracy, Cohen's kappa, Spearman, the confusion matrix and
the rows where they disagree). With --json it prints one JSON line (engine/contract/command_outputs.py).
Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from engine.contract.agreement import DEFAULT_THRESHOLD, Agreement, agreement, label_kind
from engine.contract.command_outputs import CalibrateOutput, rubric_calibrate_json
from engine.rewards.errors import RubricError
from engine.rewards.samples import SampleError, batch_from_rows, read_jsonl

LABEL = "label"
TOTAL = "total"
MAX_SHOWN_DISAGREEMENTS = 10


def add_calibrate(commands: Any, tokenizer_option: Any) -> None:
    """Add `calibrate` to the `rubric` command's subparsers (engine/rewards/commands.py)."""
    calibrate = commands.add_parser(
        "calibrate",
        help="Score human-labelled completions and show how well each criterion agrees with the labels.",
    )
    calibrate.add_argument("rubric", help="The rubric TOML file.")
    calibrate.add_argument(
        "--labels",
        required=True,
        help="JSONL: one object per line with 'prompt', 'completion', the columns the rubric reads and the "
        "human 'label' (true/false, an integer grade such as 1-5, or a number).",
    )
    calibrate.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="With true/false labels: a score at or above this counts as 'good' (default 0.5).",
    )
    calibrate.add_argument("--json", action="store_true", help="Print a JSON object instead of a table.")
    tokenizer_option(calibrate)
    calibrate.set_defaults(func=cmd_rubric_calibrate, protocol=False)


def read_labelled(path: str) -> tuple[list[dict[str, Any]], list[float | int | bool]]:
    """The rows of a labels file without their label, and the labels. Raises SampleError."""
    rows = read_jsonl(path, required=("prompt", "completion", LABEL))
    labels: list[float | int | bool] = []
    for i, row in enumerate(rows):
        value = row.pop(LABEL)
        if not isinstance(value, bool | int | float) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise SampleError(
                f"{path}: row {i + 1}: 'label' must be true/false, an integer grade or a finite number, "
                f"not {value!r:.60}"
            )
        labels.append(value)
    return rows, labels


def calibrate(
    rubric: Any, rows: list[dict[str, Any]], labels: list[Any], threshold: float
) -> CalibrateOutput:
    """Score the rows with the rubric and compare every criterion, and the total, with the labels."""
    scored = rubric.score(batch_from_rows(rows))
    results: list[Agreement] = []
    errors: dict[str, str] = {}
    for name, values in scored.scores.items():
        results.append(agreement(name, values, labels, threshold=threshold))
        first = next((e for e in scored.errors.get(name, []) if e), None)
        if first:
            errors[name] = first
    totals: list[float | None] = [
        None if scored.total_errors and scored.total_errors[i] else t for i, t in enumerate(scored.totals)
    ]
    results.append(agreement(TOTAL, totals, labels, threshold=threshold))
    return CalibrateOutput(rows=len(rows), label_kind=label_kind(labels), criteria=results, errors=errors)


def cmd_rubric_calibrate(args: argparse.Namespace) -> int:
    from engine.rewards.commands import EXIT_OK, _fail, _load

    if not math.isfinite(args.threshold):
        return _fail(f"--threshold must be a finite number, not {args.threshold}")
    try:
        rows, labels = read_labelled(args.labels)
        rubric = _load(args, batch_has_ids=all(r.get("completion_ids") is not None for r in rows))
    except (RubricError, SampleError) as exc:
        return _fail(str(exc))
    with rubric:
        report = calibrate(rubric, rows, labels, args.threshold)
    if args.json:
        print(rubric_calibrate_json(report))
    else:
        print(calibration_table(rubric.name, report))
    return EXIT_OK


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def calibration_table(rubric_name: str, report: CalibrateOutput) -> str:
    lines = [
        f"rubric {rubric_name} against {report.rows} human labels ({report.label_kind})",
        "",
    ]
    header = ["criterion", "rows", "accuracy", "kappa", "spearman", "disagree"]
    body = [
        [
            a.criterion,
            str(a.n),
            _figure(a.accuracy),
            _figure(a.kappa),
            _figure(a.spearman),
            str(len(a.disagreements)),
        ]
        for a in report.criteria
    ]
    widths = [max(len(r[k]) for r in [header, *body]) for k in range(len(header))]
    for row in [header, *body]:
        lines.append(
            "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for a in report.criteria:
        if a.confusion:
            lines += ["", f"{a.criterion}: rows are the human label, columns the criterion's"]
            level_names = [f"{v:g}" for v in a.levels]
            width = max(len(x) for x in [*level_names, "label"]) + 1
            lines.append("label".rjust(width) + "".join(x.rjust(width) for x in level_names))
            for name, counts in zip(level_names, a.confusion, strict=True):
                lines.append(name.rjust(width) + "".join(str(c).rjust(width) for c in counts))
        if a.disagreements:
            shown = ", ".join(f"#{i}" for i in a.disagreements[:MAX_SHOWN_DISAGREEMENTS])
            more = len(a.disagreements) - MAX_SHOWN_DISAGREEMENTS
            lines.append(
                f"{a.criterion} disagrees on rows {shown}" + (f" and {more} more" if more > 0 else "")
            )
    if report.errors:
        lines += ["", "errors (those rows are left out):"]
        lines += [f"  {name}: {message}" for name, message in report.errors.items()]
    return "\n".join(lines)
