"""The service run as real processes: a free port, a supervised command, gunicorn's workers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` for the block, its output in ``log``; stop it as a supervisor would."""
    with log.open("ab") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class WebServer:
    """gunicorn started as the Procfile's web line starts it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, workers: int) -> None:
        self.process, self.workers = process, workers
        self.url = f"http://127.0.0.1:{port}"

    def worker_pids(self) -> list[int]:
        """Return the pids of gunicorn's worker processes."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        return pids

    def wait_until_up(self, timeout: float = 60.0) -> None:
        """Wait until every worker has booted and one answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(f"{self.url}/healthz", timeout=5).raise_for_status()
                if len(self.worker_pids()) == self.workers:
                    return
            except requests.RequestException:
                if self.process.poll() is not None:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"gunicorn did not start {self.workers} workers in {timeout:.0f} s")
            time.sleep(0.1)
