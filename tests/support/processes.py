"""Ports and child processes for tests and the benchmark harness: the standard library only,
so that ``bench`` can use it (and :mod:`tests.support.seaweedfs`) without the test extras."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator


def free_port() -> int:
    """A port nothing listens on now: bind port 0 on 127.0.0.1 and let it go."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def loopback_listener(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener on 127.0.0.1 whose thread hands each accepted connection to ``handle`` (which
    closes it), for peers that are not Dockyard; yields its port, and stops with the block."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            handle(connection)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()


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


def _status(pid: int) -> tuple[str, int] | None:
    """The state letter and parent pid of a process (Linux's /proc), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rpartition(")")[2].split()  # the name in parentheses may hold spaces
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])


def children(pid: int) -> list[int]:
    """The pids of the processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (status := _status(int(entry))) is not None and status[1] == pid:
            found.append(int(entry))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is alive: neither gone nor a zombie waiting for a parent to reap it."""
    status = _status(pid)
    return status is not None and status[0] not in ("Z", "X")
