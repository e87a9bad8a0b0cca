"""Start Debian's ``redis-server`` on 127.0.0.1 with a free port and a temporary folder, nothing saved."""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import time

from tests.support.processes import free_port, terminate


def redis_binary() -> str | None:
    return shutil.which("redis-server")


class RedisProcess:
    """A running ``redis-server``; :attr:`addr` is its ``127.0.0.1:PORT``."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisProcess:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(self.directory)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server does not answer on {self.addr}")

    def stop(self) -> None:
        terminate(self.process)
        self.process = None
