"""A Redis server of a test's own, durable (append-only file, fsync on every write), that
the test may kill and start again: the machine's Redis is never restarted."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.services import _required_by_ci


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """redis-server on 127.0.0.1:`port`, its data in `folder`; `kill` and `start` at will.
    `arguments`: more of its options (a password, users)."""

    def __init__(
        self, binary: str, folder: Path, port: int, arguments: tuple[str, ...] = ()
    ) -> None:
        self.binary, self.folder, self.port = binary, folder, port
        self.arguments = arguments
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The address in the settings' form (Feast's connection string)."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.folder),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--logfile", str(self.folder / "redis.log"),
                *self.arguments,
            ],
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start: {(self.folder / 'redis.log').read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last save; only what the append-only file holds."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None


@contextmanager
def own_redis(folder: Path, arguments: tuple[str, ...] = ()) -> Iterator[RedisServer]:
    """A durable Redis of the test's own, with more `arguments` to redis-server; skipped
    (failed under CI=true) without redis-server."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if _required_by_ci():
            pytest.fail(f"{message}; CI=true requires it")
        pytest.skip(message)
    folder.mkdir(parents=True, exist_ok=True)
    server = RedisServer(binary, folder, free_port(), arguments)
    server.start()
    try:
        yield server
    finally:
        server.kill()
