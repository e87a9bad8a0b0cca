"""Ports and child processes for tests and the benchmark harness: the standard library only,
so that ``bench`` can use it (and :mod:`tests.support.seaweedfs`) without the test extras."""

from __future__ import annotations

import signal
import socket
import subprocess


def free_port() -> int:
    """A port nothing listens on now: bind port 0 on 127.0.0.1 and let it go."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """SIGTERM a server process and wait for it; SIGKILL it if it will not go."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
