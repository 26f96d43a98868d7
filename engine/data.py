"""Datasets: JSONL files of prompts with their columns, read with errors that name file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_LINE_BYTES = 64 * 2**20
"""The longest JSONL line read (64 MiB): one line holds one row, and a longer one is a mistake (a whole
file without newlines, a binary file) that would otherwise be read into memory whole."""


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file and line."""


def _text_lines(
    path: str | Path, error: type[Exception], hint: str, max_line_bytes: int
) -> Iterator[tuple[int, str]]:
    """(line number, text) for each non-blank line, read at most ``max_line_bytes`` at a time."""
    p = Path(path)
    try:
        fh = p.open("rb")  # decoded line by line, so a bad byte is reported on its own line
    except FileNotFoundError:
        raise error(f"{p} does not exist.{hint}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read it ({exc.strerror or exc}).") from None
    with fh:
        number = 0
        while raw := fh.readline(max_line_bytes + 2):  # + room for the line's own \r\n
            number += 1
            if len(raw.rstrip(b"\r\n")) > max_line_bytes:
                raise error(
                    f"{p}:{number}: the line is longer than {max_line_bytes:,} bytes. Each line must be "
                    "one JSON object (one row); shorten the row or split the text into several rows."
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise error(f"{p}:{number}: not UTF-8 text. Save the file as UTF-8.") from None
            if line.strip():
                yield number, line


def json_lines(
    path: str | Path, error: type[Exception] = DataError, hint: str = "", max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file. A missing or unreadable file, a
    line that is not JSON or not an object, or one longer than ``max_line_bytes``, raises ``error`` naming
    the file and line (``hint`` is added to the message for a missing file: where the path came from)."""
    p = Path(path)
    for number, line in _text_lines(p, error, hint, max_line_bytes):
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


def prompt_chars(prompt: Any) -> int:
    """A prompt's length in characters (a message list: its contents'), without building its text."""
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list):
        total = 0
        for message in prompt:
            content = message.get("content", "") if isinstance(message, dict) else message
            if isinstance(content, list):  # typed parts: [{"type": "text", "text": ...}]
                total += sum(
                    len(str(p.get("text", ""))) if isinstance(p, dict) else len(str(p)) for p in content
                )
            else:
                total += len(content) if isinstance(content, str) else len(str(content))
        return total
    return len(str(prompt))


def line_of_row(path: str | Path, index: int) -> int | None:
    """The line number of the ``index``-th row (0-based) of a JSONL file read by `read_jsonl`: rows are
    its non-blank lines, so a row index and a line number differ where the file has blank lines."""
    for row, (number, _line) in enumerate(_text_lines(path, DataError, "", MAX_LINE_BYTES)):
        if row == index:
            return number
    return None
