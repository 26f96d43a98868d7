"""What reward code cannot do to the engine: leave processes behind, hang the engine on a pipe, smuggle
an unusable value into training, break another criterion, see or leak secrets, eat the machine's memory.

Every test runs real worker processes on real files written in tmp_path.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import engine_cmd, engine_env
from conftest_rewards import FakeOpenAI

from engine.rewards import RewardBatch, load_rubric
from engine.rewards.worker_protocol import Result, load_reply

posix_only = pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="memory limits are enforced on Linux"
)


def write_rubric(folder: Path, code: str, criteria: str) -> Path:
    (folder / "rewards.py").write_text(textwrap.dedent(code))
    path = folder / "rubric.toml"
    path.write_text('name = "containment"\n' + textwrap.dedent(criteria))
    return path


def batch(n: int = 2, text: str = "c") -> RewardBatch:
    return RewardBatch(["p"] * n, [text] * n)


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, dead but not yet reaped by its parent, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def stray_pids(tmp_path):
    """Pids the user code's children write to tmp_path/pids; any still alive after the test is killed."""
    pid_file = tmp_path / "pids"
    yield pid_file
    if pid_file.exists():
        for line in pid_file.read_text().split():
            pid = int(line)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def read_pids(pid_file: Path, count: int = 1) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        pid_file.exists() and len(pid_file.read_text().split()) >= count
    ):
        time.sleep(0.02)
    return [int(line) for line in pid_file.read_text().split()]


FORKS = """
import os, time

PIDS = {pids!r}


def spawn_child():
    pid = os.fork()
    if pid == 0:  # the child: record itself, then outlive the call
        with open(PIDS, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        time.sleep(600)
        os._exit(0)
    return pid


def leaves_child(completions, **kwargs):
    spawn_child()
    return [1.0] * len(completions)


def hangs_with_child(completions, **kwargs):
    spawn_child()
    with open(PIDS, "a") as f:
        f.write(f"{{os.getpid()}}\\n")  # the worker itself
    time.sleep(600)
"""


# ---- 1. processes the user's code starts ----------------------------------------------------------------


@posix_only
@pytest.mark.timeout(120)
def test_a_timeout_kills_the_child_that_holds_the_workers_pipes(tmp_path, stray_pids):
    path = write_rubric(
        tmp_path,
        FORKS.format(pids=str(stray_pids)),
        """
        [[criteria]]
        name = "hangs"
        kind = "python"
        source = "rewards.py:hangs_with_child"
        timeout_s = 1
        """,
    )
    with load_rubric(path) as rubric:
        scored = rubric.score(batch())
        child, _worker = read_pids(stray_pids, 2)
        # The worker's own watchdog ended the call, not the engine's outer deadline after a pipe wait.
        assert scored.errors["hangs"][0].startswith("timed out after 1 s (timeout_s) at rewards.py"), (
            scored.errors
        )
        assert wait_dead(child), "the hung call's child outlived the timeout"
        again = rubric.score(batch())
        assert again.errors["hangs"][0].startswith("timed out after 1 s")


@posix_only
@pytest.mark.timeout(120)
def test_close_kills_children_the_code_left_running_and_does_not_wait_for_them(tmp_path, stray_pids):
    path = write_rubric(
        tmp_path,
        FORKS.format(pids=str(stray_pids)),
        """
        [[criteria]]
        name = "forks"
        kind = "python"
        source = "rewards.py:leaves_child"
        """,
    )
    rubric = load_rubric(path)
    assert rubric.score(batch()).scores["forks"] == [1.0, 1.0]
    [child] = read_pids(stray_pids)
    assert alive(child)  # between batches the child is the user's business
    closing = threading.Thread(target=rubric.close, daemon=True)
    closing.start()
    closing.join(60)
    assert not closing.is_alive(), "close() blocked on a pipe the child holds"
    assert wait_dead(child), "the child outlived the rubric"


@posix_only
@pytest.mark.timeout(180)
def test_rubric_test_ends_when_reward_code_leaves_a_child_behind(tmp_path, stray_pids):
    path = write_rubric(
        tmp_path,
        FORKS.format(pids=str(stray_pids)),
        """
        [[criteria]]
        name = "forks"
        kind = "python"
        source = "rewards.py:leaves_child"
        """,
    )
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    result = subprocess.run(
        engine_cmd("rubric", "test", str(path), "--samples", str(samples), "--json"),
        capture_output=True,  # waits for the end of the engine's stdout and stderr, as the studio does
        text=True,
        env=engine_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["scores"]["forks"] == 1.0
    assert all(wait_dead(pid) for pid in read_pids(stray_pids))


@posix_only
@pytest.mark.timeout(180)
def test_a_killed_engine_takes_its_busy_workers_and_their_children_down(tmp_path, stray_pids):
    path = write_rubric(
        tmp_path,
        FORKS.format(pids=str(stray_pids)),
        """
        [[criteria]]
        name = "hangs"
        kind = "python"
        source = "rewards.py:hangs_with_child"
        timeout_s = 600
        """,
    )
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    engine = subprocess.Popen(
        engine_cmd("rubric", "test", str(path), "--samples", str(samples), "--json"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=engine_env(),
    )
    try:
        pids = read_pids(stray_pids, 2)  # the child, then the worker, both mid-call
    finally:
        engine.kill()  # as the studio cancels a `rubric test`: no chance to close anything
        engine.wait()
    assert len(pids) == 2
    assert all(wait_dead(pid) for pid in pids), "a worker or its child outlived its engine"


# ---- 2, 3. values that cannot be rewards ----------------------------------------------------------------


@pytest.mark.timeout(120)
def test_unconvertible_values_say_what_was_returned_and_keep_the_worker(tmp_path):
    path = write_rubric(
        tmp_path,
        """
        import os

        class NoFloat:
            def __float__(self):
                raise RuntimeError("no float for you")

            def __repr__(self):
                return "NoFloat()"

        def odd(completions, **kwargs):
            return [1.0, 10**400, NoFloat(), 2][: len(completions)]

        def pid(completions, **kwargs):
            return [float(os.getpid())] * len(completions)
        """,
        """
        [[criteria]]
        name = "odd"
        kind = "python"
        source = "rewards.py:odd"
        """,
    )
    with load_rubric(path) as rubric:
        worker = rubric.criterion("odd").code.worker
        pid = worker.proc.pid
        for _ in range(2):
            scored = rubric.score(batch(4))
            assert scored.scores["odd"] == [1.0, None, None, 2.0]
            errors = scored.errors["odd"]
            assert errors[1] == (
                "returned 10**400 (int too large to convert to float) for row 1; return a finite float or None"
            )
            assert errors[2] == (
                "returned NoFloat() (its __float__ raised RuntimeError: no float for you) for row 2; "
                "return a finite float or None"
            )
        assert worker.starts == 1 and worker.proc.pid == pid, "the worker was restarted"


@pytest.mark.timeout(120)
def test_the_engine_refuses_inf_that_a_patched_worker_lets_through(tmp_path):
    path = write_rubric(
        tmp_path,
        """
        import math

        def sneaky(completions, **kwargs):
            math.isinf = lambda x: False  # the worker's own check now passes everything
            return [float("inf"), 1.0]
        """,
        """
        [[criteria]]
        name = "sneaky"
        kind = "python"
        source = "rewards.py:sneaky"
        """,
    )
    with load_rubric(path) as rubric:
        scored = rubric.score(batch(2))
    assert scored.scores["sneaky"] == [None, 1.0]
    assert "returned inf for row 0; a reward must be a finite float or None" in scored.errors["sneaky"][0]
    assert scored.totals == [0.0, 1.0]


# ---- 4. python graders do not share an interpreter ------------------------------------------------------


@pytest.mark.timeout(120)
def test_python_graders_in_one_criterion_run_in_separate_workers(tmp_path):
    breaks_re = (
        "import re\\ndef grade(sample, item):\\n    re.search = lambda *a, **k: None\\n    return 1.0\\n"
    )
    uses_re = (
        "import re\\ndef grade(sample, item):\\n"
        "    return 1.0 if re.search(r'\\\\d', sample['output_text']) else 0.0\\n"
    )
    rubric_text = f"""
        [[criteria]]
        name = "both"
        kind = "openai_grader"

        [criteria.grader]
        type = "multi"
        name = "both"
        calculate_output = "a + b"

        [criteria.grader.graders.a]
        type = "python"
        name = "a"
        source = "{breaks_re}"

        [criteria.grader.graders.b]
        type = "python"
        name = "b"
        source = "{uses_re}"
    """
    path = write_rubric(tmp_path, "", rubric_text)
    with load_rubric(path) as rubric:
        scored = rubric.score(batch(2, text="42"))
        assert scored.scores["both"] == [2.0, 2.0], scored.errors
        workers = [code.worker for code in rubric.criterion("both").codes]
        assert len({w.proc.pid for w in workers}) == 2


# ---- 5. secrets -----------------------------------------------------------------------------------------

SEES = """
import os

def sees(completions, **kwargs):
    seen = 1.0 * ("RLS_TEST_API_KEY" in os.environ) + 2.0 * ("RLS_TEST_PLAIN" in os.environ)
    seen += 4.0 * ("RLS_JUDGE_AUTH" in os.environ)
    return [seen] * len(completions)

def leaks(completions, **kwargs):
    raise ValueError("the key is " + os.environ["RLS_TEST_API_KEY"])
"""


@pytest.mark.timeout(120)
def test_workers_see_secret_variables_only_when_their_criterion_lists_them(tmp_path, monkeypatch):
    monkeypatch.setenv("RLS_TEST_API_KEY", "sk-test-0123456789abcdef")
    monkeypatch.setenv("RLS_TEST_PLAIN", "visible")
    monkeypatch.setenv("RLS_JUDGE_AUTH", "judge-auth-abcdefgh")  # secret only because a judge names it
    with FakeOpenAI(api_key="judge-auth-abcdefgh") as server:
        path = write_rubric(
            tmp_path,
            SEES,
            f"""
            [[criteria]]
            name = "judge"
            kind = "judge"
            model = "m"
            base_url = "{server.base_url}"
            api_key_env = "RLS_JUDGE_AUTH"
            weight = 0

            [[criteria]]
            name = "unlisted"
            kind = "python"
            source = "rewards.py:sees"

            [[criteria]]
            name = "listed"
            kind = "python"
            source = "rewards.py:sees"
            env = ["RLS_TEST_API_KEY", "RLS_JUDGE_AUTH"]
            """,
        )
        with load_rubric(path) as rubric:
            scored = rubric.score(batch(1))
    assert scored.scores["unlisted"] == [2.0]
    assert scored.scores["listed"] == [7.0]


class EchoKeyServer:
    """An endpoint that refuses every key and quotes it back, as some servers' 401 bodies do."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                data = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.timeout(120)
def test_secret_values_are_scrubbed_from_errors_answers_and_the_judge_cache(tmp_path, monkeypatch):
    key = "sk-live-SECRET-0123456789"
    monkeypatch.setenv("RLS_TEST_API_KEY", key)
    refusing = EchoKeyServer()
    try:
        with FakeOpenAI(respond=lambda messages: f"My key is {key}. Score: 5", api_key=key) as quoting:
            path = write_rubric(
                tmp_path,
                SEES,
                f"""
                [[criteria]]
                name = "refused"
                kind = "judge"
                model = "m"
                base_url = "{refusing.base_url}"
                api_key_env = "RLS_TEST_API_KEY"

                [[criteria]]
                name = "quoting"
                kind = "judge"
                model = "m"
                base_url = "{quoting.base_url}"
                api_key_env = "RLS_TEST_API_KEY"

                [[criteria]]
                name = "leaks"
                kind = "python"
                source = "rewards.py:leaks"
                env = ["RLS_TEST_API_KEY"]
                """,
            )
            with load_rubric(path) as rubric:
                scored = rubric.score(batch(2))
                cached = list(rubric.criterion("quoting").judge.cache.memory.values())
    finally:
        refusing.close()
    stored = json.dumps([scored.errors, scored.explanations, scored.total_errors, cached])
    assert key not in stored
    assert "HTTP 401" in scored.errors["refused"][0]
    assert "Incorrect API key provided: [secret $RLS_TEST_API_KEY]" in scored.errors["refused"][0]
    assert scored.errors["leaks"][0].startswith("raised ValueError: the key is [secret $RLS_TEST_API_KEY]")
    assert scored.scores["quoting"] == [5.0, 5.0]
    assert scored.explanations["quoting"][0] == "My key is [secret $RLS_TEST_API_KEY]. Score: 5"


# ---- 6. memory ------------------------------------------------------------------------------------------


@linux_only
@pytest.mark.timeout(120)
def test_a_default_memory_limit_stops_a_runaway_allocation_at_once(tmp_path):
    path = write_rubric(
        tmp_path,
        """
        import mmap

        def hog(completions, **kwargs):
            # 8 GiB of private memory, reserved but never touched: only a limit refuses it.
            block = mmap.mmap(-1, 8 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            block.close()
            return [1.0] * len(completions)
        """,
        """
        [[criteria]]
        name = "hog"
        kind = "python"
        source = "rewards.py:hog"

        [[criteria]]
        name = "unlimited"
        kind = "python"
        source = "rewards.py:hog"
        memory_mb = 0
        """,
    )
    with load_rubric(path) as rubric:
        scored = rubric.score(batch(1))
    message = scored.errors["hog"][0]
    assert message.startswith("ran out of memory (memory_mb = 4096): OSError: [Errno 12]"), message
    assert message.endswith("raise memory_mb for this criterion if it needs more (0 = no limit)")
    assert scored.scores["unlimited"] == [1.0]


# ---- 7. the protocol ------------------------------------------------------------------------------------


class _Smuggled:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.getpid, ())


def test_the_engine_reads_only_protocol_replies():
    reply = Result(3, [1.0, None], [None, "no"], {"m": 1.0}, {})
    assert load_reply(pickle.dumps(reply)) == reply
    with pytest.raises(pickle.UnpicklingError, match=r"may not hold (posix|nt)\.getpid"):
        load_reply(pickle.dumps(Result(1, [_Smuggled()], [None])))  # type: ignore[list-item]
