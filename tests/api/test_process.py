"""What needs a real ``dockyard serve`` process: restarts, ``--no-delete``, ``--workers 2``, a killed
parent, connection timeouts."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.processes import children, running
from tests.support.registry_client import push_image, sha256
from tests.support.server import DockyardProcess


def fresh(server: DockyardProcess) -> httpx.Client:
    """A client whose every request goes over a new connection."""
    return httpx.Client(base_url=server.url, headers={"Connection": "close"}, timeout=30)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert [entry["code"] for entry in response.json()["errors"]] == [code]


def test_upload_resumed_after_restart(start_server):
    server = start_server()
    data = bytes(range(256)) * 4096 + b"the end"  # 1 MiB and a bit
    half = len(data) // 2
    with fresh(server) as client:
        response = client.post("/v2/resume/me/blobs/uploads/")
        assert response.status_code == 202
        location = response.headers["Location"]
        response = client.patch(location, content=data[:half], headers={"Content-Range": f"0-{half - 1}"})
        assert response.status_code == 202
        assert response.headers["Range"] == f"0-{half - 1}"

    server.restart()

    with fresh(server) as client:
        response = client.get(location)
        assert response.status_code == 204
        assert response.headers["Range"] == f"0-{half - 1}"
        assert response.headers["Location"] == location
        response = client.patch(location, content=data[half:], headers={"Content-Range": f"{half}-{len(data) - 1}"})
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{len(data) - 1}"
        digest = sha256(data)
        response = client.put(location, params={"digest": digest})
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == digest
        response = client.get(f"/v2/resume/me/blobs/{digest}")
        assert response.status_code == 200
        assert response.content == data


def test_content_survives_restart(start_server):
    server = start_server()
    with fresh(server) as client:
        digest, content = push_image(client, "keep", "v1")
    server.restart()
    with fresh(server) as client:
        response = client.get("/v2/keep/manifests/v1")
        assert response.status_code == 200
        assert response.content == content
        assert response.headers["Docker-Content-Digest"] == digest
        assert client.get("/v2/_catalog").json() == {"repositories": ["keep"]}
        assert client.get("/v2/keep/tags/list").json() == {"name": "keep", "tags": ["v1"]}


def test_no_delete(start_server):
    server = start_server("--no-delete")
    with fresh(server) as client:
        digest, content = push_image(client, "library/app", "v1", b"layer" * 100)
        layer = sha256(b"layer" * 100)
        for path in (
            f"/v2/library/app/blobs/{layer}",
            f"/v2/library/app/manifests/{digest}",
            "/v2/library/app/manifests/v1",
        ):
            response = client.delete(path)
            assert_error(response, 405, "UNSUPPORTED")
        response = client.get(f"/v2/library/app/blobs/{layer}")
        assert response.status_code == 200
        assert response.content == b"layer" * 100
        response = client.get("/v2/library/app/manifests/v1")
        assert response.status_code == 200
        assert response.content == content
        response = client.get(f"/v2/library/app/manifests/{digest}")
        assert response.status_code == 200
        # Cancelling an upload is not a delete of stored content: still allowed.
        response = client.post("/v2/library/app/blobs/uploads/")
        response = client.delete(response.headers["Location"])
        assert response.status_code == 204


def test_delete_enabled_by_default(start_server):
    server = start_server()
    with fresh(server) as client:
        digest, _ = push_image(client, "library/app", "v1")
        response = client.delete("/v2/library/app/manifests/v1")
        assert response.status_code == 202
        response = client.delete(f"/v2/library/app/manifests/{digest}")
        assert response.status_code == 202
        assert_error(client.get(f"/v2/library/app/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")


def test_chunked_upload_across_two_workers(start_server):
    server = start_server("--workers", "2")
    pieces = [bytes([n]) * (10_000 + n * 37) for n in range(24)]
    data = b"".join(pieces)
    with fresh(server) as client:
        response = client.post("/v2/workers/blobs/uploads/")
        assert response.status_code == 202
        location = response.headers["Location"]
        offset = 0
        for piece in pieces:
            response = client.patch(
                location, content=piece, headers={"Content-Range": f"{offset}-{offset + len(piece) - 1}"}
            )
            assert response.status_code == 202, response.text
            offset += len(piece)
            assert response.headers["Range"] == f"0-{offset - 1}"
            response = client.get(location)
            assert response.status_code == 204
            assert response.headers["Range"] == f"0-{offset - 1}"
        digest = sha256(data)
        response = client.put(location, params={"digest": digest})
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == digest
        for _ in range(4):
            response = client.get(f"/v2/workers/blobs/{digest}")
            assert response.status_code == 200
            assert response.content == data
            response = client.get(f"/v2/workers/blobs/{digest}", headers={"Range": "bytes=-5"})
            assert response.status_code == 206
            assert response.content == data[-5:]


def test_streaming_uploads_across_two_workers(start_server):
    server = start_server("--workers", "2")
    data = b"streamed content " * 50_000

    def body():
        for offset in range(0, len(data), 65536):
            yield data[offset:offset + 65536]

    with fresh(server) as client:
        location = client.post("/v2/workers/blobs/uploads/").headers["Location"]
        response = client.patch(location, content=body())
        assert response.status_code == 202, response.text
        assert response.request.headers.get("Transfer-Encoding") == "chunked"
        assert response.headers["Range"] == f"0-{len(data) - 1}"
        response = client.put(location, params={"digest": sha256(data + b"!")}, content=b"!")
        assert response.status_code == 201, response.text
        response = client.get(f"/v2/workers/blobs/{sha256(data + b'!')}")
        assert response.content == data + b"!"


def test_serve_starts_one_worker_per_usable_core_by_default(tmp_path):
    server = DockyardProcess(tmp_path / "root", default_workers=True).start()
    try:
        assert server.process is not None
        cores = len(os.sched_getaffinity(0))
        assert f"{cores} worker(s)" in server.log.read_text()
        # One worker serves in the parent itself; several are its forked children.
        assert len(children(server.process.pid)) == (cores if cores > 1 else 0)
        with fresh(server) as client:
            assert all(client.get("/v2/").status_code == 200 for _ in range(4))
    finally:
        server.stop()


def test_workers_exit_when_the_parent_is_killed(start_server):
    server = start_server("--workers", "2")
    assert server.process is not None
    workers = children(server.process.pid)
    assert len(workers) == 2
    port = server.port
    server.process.kill()
    server.process.wait()
    try:
        deadline = time.monotonic() + 60  # only so that a failure does not hang the run
        while any(running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in workers if running(pid)] == []
    finally:
        for pid in workers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
    server.start()  # on the same port: nothing may still listen there
    assert server.port == port
    with fresh(server) as client:
        assert client.get("/v2/").status_code == 200


def closed_by_server(connection: socket.socket, deadline: float) -> bytes | None:
    """All the server sends until it closes ``connection``; None if it is still open at ``deadline``."""
    received = b""
    while time.monotonic() < deadline:
        connection.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = connection.recv(65536)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data
    return None


def test_headers_dribbled_past_the_header_timeout_are_cut(start_server):
    server = start_server("--header-timeout", "1", "--idle-timeout", "300")
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nX-Slow: ")
        deadline = time.monotonic() + 30  # only so that a failure does not hang the run
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                connection.sendall(b"a")  # a byte now and then: progress, but the headers never end
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = closed_by_server(connection, time.monotonic() + 0.2) is not None
        assert closed


def test_idle_keep_alive_connection_is_closed(start_server):
    server = start_server("--idle-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n")
        received = closed_by_server(connection, time.monotonic() + 30)  # the deadline only avoids a hang
        assert received is not None, "the idle connection was kept open"
        assert received.startswith(b"HTTP/1.1 200 ")
        assert b"Connection: close" not in received  # kept alive after the response, then closed as idle


def test_slow_upload_outlives_the_timeouts(start_server):
    server = start_server("--header-timeout", "0.3", "--idle-timeout", "0.3")
    pieces = [bytes([n]) * 1000 for n in range(12)]
    data = b"".join(pieces)

    def slowly():
        for piece in pieces:
            time.sleep(0.1)  # twelve pieces: the body takes several times either timeout
            yield piece

    with httpx.Client(base_url=server.url, timeout=30) as client:
        location = client.post("/v2/slow/blobs/uploads/").headers["Location"]
        response = client.patch(location, content=slowly())
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{len(data) - 1}"
        response = client.put(location, params={"digest": sha256(data)})
        assert response.status_code == 201, response.text
        assert client.get(f"/v2/slow/blobs/{sha256(data)}").content == data


# Serves with two workers whose app records how many objects the collector had frozen when it was built.
_RECORD_FROZEN = """
import gc, sys
from aiohttp import web
from dockyard import server
from dockyard.config import load

settings = load(None, {}, {"root": sys.argv[1], "addr": "127.0.0.1:0", "insecure_http": True, "workers": 2}).settings

def make_app():
    with open(sys.argv[2], "a") as record:
        record.write(f"{gc.get_freeze_count()}\\n")
    return web.Application()

server.run(settings, make_app, lambda port, debug_port: None)
"""


def test_workers_start_with_the_parents_objects_frozen(tmp_path):
    # A collection writes to every object it examines: unfrozen, a worker's first full
    # collection would copy nearly all the heap it shares with the parent and its siblings.
    record = tmp_path / "frozen"
    process = subprocess.Popen([sys.executable, "-c", _RECORD_FROZEN, str(tmp_path / "root"), str(record)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(record.read_text().split() if record.exists() else []) < 2:
            assert process.poll() is None, "the server exited"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    counts = [int(count) for count in record.read_text().split()]
    assert len(counts) == 2 and min(counts) > 0, counts


# A large block allocated and freed twice, as S3's parts are; prints the KiB the second kept.
_KEPT_AFTER_FREE = """
from dockyard.server import tune_malloc

def anonymous_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))

tune_malloc({})
block = bytearray(10 << 20)
del block
before = anonymous_kib()
block = bytearray(10 << 20)
del block
print(anonymous_kib() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not os.path.exists("/proc/self/status"), reason="glibc's malloc, on Linux")
def test_large_blocks_go_back_to_the_system_when_freed():
    # Without a fixed threshold glibc serves the second block from its heap and keeps it.
    run = subprocess.run([sys.executable, "-c", _KEPT_AFTER_FREE], capture_output=True, text=True, timeout=60, check=True)
    assert int(run.stdout) < 1024


# Four threads allocating at once, then glibc's statistics, one "Arena N:" block per arena, on stderr.
_ARENAS = """
import ctypes, os, threading
from dockyard.server import tune_malloc

tune_malloc(os.environ)
together = threading.Barrier(4)

def allocate():
    kept = [bytes(4096) for _ in range(100)]
    together.wait()

threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc arenas")
@pytest.mark.parametrize(("chosen", "arenas"), [(None, 1), ("2", 2)])
def test_threads_share_one_malloc_arena_unless_the_environment_chose(chosen, arenas):
    # Each thread would otherwise get an arena of its own, with pages of its own; MALLOC_ARENA_MAX wins.
    environment = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    if chosen is not None:
        environment["MALLOC_ARENA_MAX"] = chosen
    run = subprocess.run([sys.executable, "-c", _ARENAS], capture_output=True, text=True, timeout=60, check=True, env=environment)
    assert [line for line in run.stderr.splitlines() if line.startswith("Arena ")] == [f"Arena {number}:" for number in range(arenas)]


def _event_loop_page_faults(pid: int) -> int:
    """Minor page faults so far of the process's main thread (the event loop's)."""
    with open(f"/proc/{pid}/task/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the malloc thresholds are glibc's")
def test_chunks_of_an_upload_reuse_the_memory_of_the_chunks_before(start_server):
    """Each PATCH's received buffers are freed when it ends; the next PATCH gets the same pages again,
    not new ones that the event loop faults in page by page."""
    server = start_server()
    assert server.process is not None
    chunk, patches = 16 << 20, 4
    data = os.urandom(chunk * patches)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        location = client.post("/v2/faults/blobs/uploads/").headers["Location"]
        faults = 0
        for number in range(patches):
            before = _event_loop_page_faults(server.process.pid)
            start = number * chunk
            response = client.patch(location, content=data[start:start + chunk], headers={"Content-Range": f"{start}-{start + chunk - 1}"})
            assert response.status_code == 202, response.text
            location = response.headers["Location"]
            if number:  # the first PATCH maps the pages
                faults += _event_loop_page_faults(server.process.pid) - before
        response = client.put(location, params={"digest": sha256(data)})
        assert response.status_code == 201, response.text
    pages = chunk * (patches - 1) // os.sysconf("SC_PAGE_SIZE")
    assert faults < pages // 8, f"{faults} page faults on the event loop for {pages} pages received"


def _heap_kib(pid: int) -> int:
    """Resident KiB of the process's malloc heap (the ``[heap]`` mapping)."""
    with open(f"/proc/{pid}/smaps") as smaps:
        lines = iter(smaps)
        for line in lines:
            if line.rstrip().endswith("[heap]"):
                return next(int(field.split()[1]) for field in lines if field.startswith("Rss:"))
    return 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_an_idle_worker_gives_back_the_heap_an_upload_freed(start_server):
    # Kept for the next request while busy, it would otherwise stay in each worker that served an upload.
    server = start_server()
    assert server.process is not None
    pid = server.process.pid
    data = os.urandom(64 << 20)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        before = _heap_kib(pid)
        location = client.post("/v2/trim/blobs/uploads/").headers["Location"]
        response = client.put(location, params={"digest": sha256(data)}, content=data)
        assert response.status_code == 201, response.text
    grown = _heap_kib(pid)
    deadline = time.monotonic() + 20
    while _heap_kib(pid) > before + 2048 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _heap_kib(pid) <= before + 2048, f"heap {before} KiB before the upload, {grown} KiB after, {_heap_kib(pid)} KiB now"
