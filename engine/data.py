"""Datasets: JSONL files of prompts with their columns, read with errors that name file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file and line."""


def json_lines(
    path: str | Path, error: type[Exception] = DataError, hint: str = ""
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file. A missing or unreadable file, a
    line that is not JSON or not an object, raises ``error`` naming the file and line (``hint`` is added
    to the message for a missing file: where the path came from)."""
    p = Path(path)
    try:
        fh = p.open("rb")  # decoded line by line, so a bad byte is reported on its own line
    except FileNotFoundError:
        raise error(f"{p} does not exist.{hint}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read it ({exc.strerror or exc}).") from None
    with fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise error(f"{p}:{number}: not UTF-8 text. Save the file as UTF-8.") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(
                    f"{p}:{number}: not valid JSON ({exc.msg} at column {exc.colno}). Each line must be "
                    'one JSON object, for example {"prompt": "2+2=", "answer": "4"}.'
                ) from None
            if not isinstance(row, dict):
                raise error(f"{p}:{number}: each line must be one JSON object, not {type(row).__name__}.")
            yield number, row


def read_jsonl(path: str | Path, require_prompt: bool = True) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    hint = " Check the path in the run config ([data] train / eval)."
    for number, row in json_lines(path, DataError, hint):
        if require_prompt:
            prompt = row.get("prompt")
            if not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt)):
                raise DataError(
                    f"{path}:{number}: missing 'prompt' (a string, or a list of chat messages). "
                    f"The line has keys: {', '.join(row) or 'none'}."
                )
        rows.append(row)
    if not rows:
        raise DataError(f"Dataset {path} has no rows. Add JSON lines with a 'prompt' field.")
    return rows


def prompt_text(prompt: Any) -> str:
    """A prompt as one string for display and storage (message lists are rendered role: content)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n".join(
            f"{m.get('role', '?')}: {m.get('content', '')}" for m in prompt if isinstance(m, dict)
        )
    return str(prompt)
