"""`training-db run RUN_ID --watch` in a pseudo-terminal: points sent after it started appear."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from ingest.cli.watch import sparkline
from ingest.worker import Worker
from tests.live import report, start_run
from tests.stalled import backdate_runs
from tests.webhooks import fixture, post_pipeline

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


class Terminal:
    """A command in a pseudo-terminal of 120 columns, and everything it has written so far."""

    def __init__(self, args: list[str], database_url: str) -> None:
        env = {**os.environ, "DATABASE_URL": database_url, "TERM": "xterm-256color", "COLUMNS": "120"}
        env.pop("NO_COLOR", None)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(sys.executable, [sys.executable, "-m", "ingest.cli", *args], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.output = ""

    @property
    def text(self) -> str:
        return ANSI.sub("", self.output)

    def read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                self.output += os.read(self.fd, 65536).decode(errors="replace")
            except OSError:
                pass

    def wait_for(self, pattern: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} not shown within {timeout} s; the screen:\n{self.text[-3000:]}"
                )
            self.read(0.1)

    def exit_status(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.read(0.1)
                return os.waitstatus_to_exitcode(status)
        raise AssertionError(f"still running after {timeout} s; the screen:\n{self.text[-3000:]}")

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


@pytest.fixture
def training(client: FlaskClient, worker: Worker) -> str:
    """A running run with two points."""
    start_run(client, worker, "watched-run")
    report(client, "watched-run", 10, {"train/loss": 2.5, "train/reward_mean": 0.1})
    report(client, "watched-run", 20, {"train/loss": 1.5, "train/reward_mean": 0.2})
    worker.run_once()
    return "watched-run"


def test_a_point_sent_after_the_watch_started_appears_and_ctrl_c_stops_it(
    client: FlaskClient, worker: Worker, training: str, database_url: str, terminals: list[Terminal]
) -> None:
    terminal = Terminal(["run", training, "--watch"], database_url)
    terminals.append(terminal)
    terminal.wait_for(r"status running\s+step 20\s+points 2")
    terminal.wait_for(r"train/loss\s+1\.5\s+1\.5\s+2\.5")

    report(client, training, 30, {"train/loss": 0.123456, "train/reward_mean": 0.3})
    worker.run_once()
    terminal.wait_for(r"step 30\s+points 3", timeout=5)
    terminal.wait_for(r"train/loss\s+0\.123456\s+0\.123456\s+2\.5\s+█▅▁", timeout=5)

    os.write(terminal.fd, b"\x03")
    assert terminal.exit_status() == 0
    assert "stopped watching run watched-run" in terminal.text


def test_the_watch_ends_with_the_run(
    client: FlaskClient, worker: Worker, training: str, database_url: str, terminals: list[Terminal]
) -> None:
    terminal = Terminal(["run", training, "--watch", "--keys", "train/reward*"], database_url)
    terminals.append(terminal)
    terminal.wait_for(r"train/reward_mean\s+0\.2")
    assert "train/loss" not in terminal.text
    finished = fixture("pipeline", "run_finished__with_summary").replace(
        b"run-000-0000042", training.encode()
    )
    assert post_pipeline(client, finished).status_code == 202
    worker.run_once()
    assert terminal.exit_status() == 0
    assert "run watched-run ended: completed" in terminal.text


def test_a_run_that_stopped_reporting_is_shown_stalled(
    training: str, database_url: str, terminals: list[Terminal]
) -> None:
    backdate_runs([training], 3600)
    terminal = Terminal(["run", training, "--watch"], database_url)
    terminals.append(terminal)
    terminal.wait_for(r"status running \(stalled\)\s+step 20")


def test_watching_a_run_that_does_not_exist_is_one_line_and_exit_1(
    training: str, database_url: str, terminals: list[Terminal]
) -> None:
    terminal = Terminal(["run", "no-such-run", "--watch"], database_url)
    terminals.append(terminal)
    assert terminal.exit_status() == 1
    assert terminal.text.strip() == "Error: no run no-such-run"


def test_a_sparkline_scales_the_recent_values_and_leaves_gaps() -> None:
    assert sparkline([1, 2, 3, None, float("nan")]) == "▁▅█  "
    assert sparkline([5, 5]) == "▅▅"
    assert sparkline(list(range(100)), width=8)[-1] == "█"
    assert len(sparkline(list(range(100)), width=8)) == 8
