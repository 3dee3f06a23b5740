"""pytest fixtures: a real redis-server on a free loopback port per test module, flushed
before each test, and helpers that wait with a bound."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / os.environ.get("CARGO_TARGET_DIR", "target")  # an absolute one stays as is


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self) -> None:
        exe = shutil.which(os.environ.get("MQ_TEST_SERVER", "redis-server"))
        if exe is None:
            pytest.fail("redis-server not found (scripts/ensure-redis.sh installs it)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mq-pytest-")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/"
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        wait_for(lambda: self._ping(), 10, "redis-server answers PING")

    def _ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls ``cond`` every 20 ms until it holds; fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for: {what}")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.fixture()
def r(server: Server) -> redis.Redis:
    """The module's server, flushed."""
    server.client.flushall()
    return server.client


def binary(name: str) -> Path:
    """A workspace binary built by ``cargo build --workspace --bins`` (debug)."""
    path = TARGET / "debug" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --workspace --bins` first")
    return path
