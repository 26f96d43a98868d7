"""Reading JSONL datasets: every malformed line is reported with its file and line number."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data import DataError, read_jsonl
from engine.rewards.samples import SampleError
from engine.rewards.samples import read_jsonl as read_samples


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(data)
    return path


def test_rows_are_read_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path, b'{"prompt": "1+1=", "answer": "2"}\n\n{"prompt": [{"role": "user", "content": "hi"}]}\n'
    )
    assert read_jsonl(path) == [
        {"prompt": "1+1=", "answer": "2"},
        {"prompt": [{"role": "user", "content": "hi"}]},
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"prompt": "a"}\n{"prompt": \n', ":2: not valid JSON"),
        (b'{"prompt": "a"}\n[1, 2]\n', ":2: each line must be one JSON object, not list"),
        (b'{"prompt": "a"}\n{"prompt": "\xff"}\n', ":2: not UTF-8 text"),
        (b'{"prompt": "a"}\n{"answer": "3"}\n', ":2: missing 'prompt'"),
        (b"\n\n", "has no rows"),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(DataError) as exc:
        read_jsonl(path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)


def test_a_missing_dataset_says_where_the_path_came_from(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist\. Check the path in the run config"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_sample_files_report_the_same_way_with_their_own_error(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(SampleError, match=r"rows\.jsonl:2: missing 'completion'"):
        read_samples(path, required=("prompt", "completion"))
    with pytest.raises(SampleError, match=r"rows\.jsonl:1: not UTF-8 text"):
        read_samples(write(tmp_path, b'{"prompt": "\xfe"}\n'))
