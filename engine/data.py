"""Datasets: JSONL files of prompts with their columns, read with errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file and line."""


def read_jsonl(path: str | Path, require_prompt: bool = True) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"Dataset {p} does not exist. Check the path in the run config ([data] train / eval)."
        )
    rows: list[dict[str, Any]] = []
    with p.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{p}:{number}: not valid JSON ({exc.msg} at column {exc.colno}). "
                    'Each line must be one JSON object, for example {"prompt": "2+2=", "answer": "4"}.'
                ) from None
            if not isinstance(row, dict):
                raise DataError(f"{p}:{number}: expected a JSON object, got {type(row).__name__}.")
            if require_prompt:
                prompt = row.get("prompt")
                if not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt)):
                    raise DataError(
                        f"{p}:{number}: missing 'prompt' (a string, or a list of chat messages). "
                        f"The line has keys: {', '.join(row) or 'none'}."
                    )
            rows.append(row)
    if not rows:
        raise DataError(f"Dataset {p} has no rows. Add JSON lines with a 'prompt' field.")
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
