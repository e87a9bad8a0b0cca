"""SIGTERM drains: running uploads finish, new connections are refused, the exit is clean."""

from __future__ import annotations

import hashlib
import signal
import socket
import threading
import time

import httpx
import pytest

CHUNK = b"x" * 65536
CHUNKS = 8


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_lets_a_running_upload_finish(start_server, workers: str) -> None:
    server = start_server("--drain-timeout", "60", "--workers", workers)
    data = CHUNK * CHUNKS
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started, signalled = threading.Event(), threading.Event()

    def body():
        yield CHUNK
        started.set()
        signalled.wait(30)
        for _ in range(CHUNKS - 1):
            time.sleep(0.05)
            yield CHUNK

    result: dict[str, object] = {}

    def upload() -> None:
        try:
            result["response"] = httpx.post(
                f"{server.url}/v2/drain/me/blobs/uploads/", params={"digest": digest}, content=body(), timeout=60,
            )
        except Exception as error:  # reported by the assertion below
            result["error"] = error

    thread = threading.Thread(target=upload)
    thread.start()
    assert started.wait(30)
    # The signal must come once the server handles the request: a connection still in the listening
    # socket's queue when that closes is reset (a loaded machine may take its time to accept it).
    uploads = server.root / "docker/registry/v2/repositories/drain/me/_uploads"
    for _ in range(600):
        if any(uploads.glob("*/data")):
            break
        time.sleep(0.05)
    assert any(uploads.glob("*/data"))
    server.process.send_signal(signal.SIGTERM)
    # The listening socket closes once the signal is handled: wait for it, then send the rest.
    for _ in range(200):
        if refused(server.port):
            break
        time.sleep(0.05)
    assert refused(server.port)
    signalled.set()
    thread.join(60)
    assert "error" not in result, result.get("error")
    response = result["response"]
    assert response.status_code == 201, response.text
    assert server.process.wait(timeout=60) == 0
    stored = server.root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
    assert stored.read_bytes() == data


def test_drain_timeout_zero_stops_at_once(start_server) -> None:
    server = start_server("--drain-timeout", "0")
    started = threading.Event()
    release = threading.Event()

    def body():
        yield CHUNK
        started.set()
        release.wait(30)
        yield CHUNK

    result: dict[str, object] = {}

    def upload() -> None:
        try:
            result["response"] = httpx.post(
                f"{server.url}/v2/drain/me/blobs/uploads/", params={"digest": "sha256:" + "0" * 64}, content=body(), timeout=30,
            )
        except httpx.HTTPError as error:
            result["error"] = error

    thread = threading.Thread(target=upload)
    thread.start()
    assert started.wait(30)
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0  # it did not wait for the upload
    release.set()
    thread.join(30)
    assert "error" in result or result["response"].status_code >= 500
