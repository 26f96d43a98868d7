"""A run's stderr keeps what matters; warnings and library logs go to the run's debug file."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from transformers.utils import logging as hf_logging

from engine.contract.paths import run_dir
from engine.logs import DEBUG_LOG, route_library_noise, stop_routing


@pytest.fixture
def unroute() -> Iterator[None]:
    yield
    stop_routing()


def test_warnings_and_library_logs_go_to_the_debug_file(
    unroute: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routed = route_library_noise(tmp_path / "ws.sqlite", 7)
    assert routed == run_dir(tmp_path / "ws.sqlite", 7) / DEBUG_LOG
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("`old_thing` is deprecated and will be removed in v6", FutureWarning, stacklevel=1)
    hf_logging.get_logger("transformers.trainer").warning("some advisory message")
    logging.getLogger("peft.tuners").info("adapter details")
    logging.getLogger("accelerate").error("a library error that may explain a failure")
    text = routed.read_text(encoding="utf-8")
    for expected in (
        "FutureWarning: `old_thing`",
        "some advisory message",
        "adapter details",
        "a library error",
    ):
        assert expected in text
    err = capsys.readouterr().err
    assert (
        err.count("library warnings and logs:") == 1 and f"[run 7] library warnings and logs: {routed}" in err
    )
    assert "a library error that may explain a failure" in err  # errors stay in the human log too
    for noise in ("old_thing", "advisory", "adapter details"):
        assert noise not in err


def test_stop_routing_puts_everything_back(unroute: None, tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    path = route_library_noise(tmp_path / "ws.sqlite", 1)
    route_library_noise(tmp_path / "ws.sqlite", 1)  # again, as a resume in the same process would
    assert len(root.handlers) == len(handlers) + 2
    stop_routing()
    assert root.handlers == handlers and root.level == level
    hf_logging.get_logger("transformers.trainer").warning("after routing stopped")
    assert "after routing stopped" not in path.read_text(encoding="utf-8")
