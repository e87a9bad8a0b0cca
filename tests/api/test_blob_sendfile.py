"""Blob bodies sent with ``os.sendfile`` (dockyard.api.sendfile): whole, ranges, HEAD, TLS fallback, disconnects.

A real ``dockyard serve`` process (uvloop, where ``loop.sendfile`` does not exist) serves
a blob larger than a socket buffer, so the sender meets a full socket and waits; the
in-process tests shrink the slices so that one body takes many thread calls.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from dockyard.api import sendfile
from tests.support.registry_client import push_blob
from tests.support.server import DockyardProcess

from .conftest import byteranges

DATA = os.urandom(8 << 20)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
REPOSITORY = "library/big"


def _push(server: DockyardProcess) -> None:
    with httpx.Client(base_url=server.url, verify=server.verify, timeout=60) as client:
        started = client.post(f"/v2/{REPOSITORY}/blobs/uploads/")
        assert started.status_code == 202, started.text
        done = client.put(started.headers["Location"], params={"digest": DIGEST}, content=DATA)
        assert done.status_code == 201, done.text


@pytest.fixture(scope="module", params=[False, True], ids=["http", "tls"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardProcess]:
    process = DockyardProcess(tmp_path_factory.mktemp("sendfile") / "root", tls=request.param).start()
    try:
        _push(process)
        yield process
    finally:
        process.stop()


def _get(server: DockyardProcess, method: str = "GET", headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=server.url, verify=server.verify, timeout=60) as client:
        return client.request(method, f"/v2/{REPOSITORY}/blobs/{DIGEST}", headers=headers)


def test_whole_blob(server: DockyardProcess) -> None:
    response = _get(server)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.headers["Docker-Content-Digest"] == DIGEST
    assert response.content == DATA


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-0", 0, 0),
    ("bytes=1000000-5000000", 1000000, 5000000),
    ("bytes=-12345", len(DATA) - 12345, len(DATA) - 1),
    ("bytes=7000000-", 7000000, len(DATA) - 1),
])
def test_range(server: DockyardProcess, header: str, start: int, end: int) -> None:
    response = _get(server, headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert response.content == DATA[start:end + 1]


def test_multiple_ranges(server: DockyardProcess) -> None:
    ranges = [(0, 0), (1000000, 5000000), (5000001, 5000001), (len(DATA) - 12345, len(DATA) - 1)]
    response = _get(server, headers={"Range": "bytes=" + ",".join(f"{start}-{end}" for start, end in ranges)})
    assert response.status_code == 206
    assert response.headers["Content-Length"] == str(len(response.content))
    parts = byteranges(response.headers["Content-Type"], response.content)
    assert parts == [(f"bytes {start}-{end}/{len(DATA)}", DATA[start:end + 1]) for start, end in ranges]


def test_as_many_ranges_as_containers_storage_asks_for(server: DockyardProcess) -> None:
    """A zstd:chunked partial pull asks for up to 1024 ranges in one header: about 16 KiB here,
    over aiohttp's default limit of 8190 bytes for a header."""
    ranges = [(start, start + 99) for start in range(1_000_000, 1_000_000 + 1024 * 1000, 1000)]
    header = "bytes=" + ",".join(f"{start}-{end}" for start, end in ranges)
    assert len(header) > 8190
    response = _get(server, headers={"Range": header})
    assert response.status_code == 206
    parts = byteranges(response.headers["Content-Type"], response.content)
    assert parts == [(f"bytes {start}-{end}/{len(DATA)}", DATA[start:end + 1]) for start, end in ranges]


def test_head_sends_no_body(server: DockyardProcess) -> None:
    response = _get(server, "HEAD")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.content == b""


def _open(pid: int, kind: str) -> int:
    return len(os.listdir(f"/proc/{pid}/{kind}"))


def _abandon_download(port: int) -> None:
    """Start a plain-HTTP GET of the blob, read a little, stop reading for a while, then hang up."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(f"GET /v2/{REPOSITORY}/blobs/{DIGEST} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(0.1)  # the server meets a full socket and waits on the event loop


def test_client_hanging_up_leaks_neither_descriptors_nor_threads(start_server) -> None:
    server = start_server()
    _push(server)
    assert server.process is not None
    pid = server.process.pid
    assert _get(server).content == DATA  # the thread pool has started
    descriptors, threads = _open(pid, "fd"), _open(pid, "task")
    for _ in range(20):
        _abandon_download(server.port)
    deadline = time.monotonic() + 30
    while _open(pid, "fd") > descriptors and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open(pid, "fd") == descriptors
    assert _open(pid, "task") <= threads + 2  # the pool may grow a little, never by one per download
    assert _get(server).content == DATA


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sendfile, "SLICE_BYTES", 100_000)


@pytest.mark.parametrize("headers", [{}, {"Range": "bytes=99999-300001"}], ids=["whole", "range"])
async def test_body_sent_in_many_slices(client, small_slices: None, headers: dict[str, str]) -> None:
    digest = await push_blob(client, REPOSITORY, DATA[:1_000_000])
    response = await client.get(f"/v2/{REPOSITORY}/blobs/{digest}", headers=headers)
    body = await response.read()
    if headers:
        assert response.status == 206
        assert body == DATA[99999:300002]
    else:
        assert response.status == 200
        assert body == DATA[:1_000_000]


async def test_parts_sent_in_many_slices(client, small_slices: None) -> None:
    digest = await push_blob(client, REPOSITORY, DATA[:1_000_000])
    response = await client.get(f"/v2/{REPOSITORY}/blobs/{digest}", headers={"Range": "bytes=0-9,99999-300001,999990-"})
    assert response.status == 206
    parts = byteranges(response.headers["Content-Type"], await response.read())
    assert parts == [
        ("bytes 0-9/1000000", DATA[:10]),
        ("bytes 99999-300001/1000000", DATA[99999:300002]),
        ("bytes 999990-999999/1000000", DATA[999990:1_000_000]),
    ]


async def test_file_follows_what_the_transport_still_holds(aiohttp_client, tmp_path: pathlib.Path) -> None:
    """Bytes written before (the headers) may still wait in the transport when the file is sent: they go first."""
    before = os.urandom(64 << 20)  # more than the kernel's socket buffers take at once
    path = tmp_path / "file"
    path.write_bytes(DATA)

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(before) + len(DATA)
        writer = await response.prepare(request)
        assert request.transport is not None
        request.transport.write(before)
        assert request.transport.get_write_buffer_size() > 0  # what this test is about
        assert await sendfile.send_file(request, writer, path, 0, len(DATA))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    response = await client.get("/")
    body = await response.read()
    assert len(body) == len(before) + len(DATA)
    assert body == before + DATA


async def test_the_connection_is_corked_while_the_file_goes_out_and_uncorked_after(
    aiohttp_client, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Full segments while the file goes out (as nginx's tcp_nopush); uncorked after, so that the
    body's tail and the next answer on the connection leave at once."""
    path = tmp_path / "file"
    path.write_bytes(DATA)
    corked_while_sending: list[int] = []
    send_slice = sendfile._send_slice

    def watched(out: int, source: int, offset: int, count: int) -> int:
        with socket.socket(fileno=out) as connection:
            corked_while_sending.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))
            connection.detach()
        return send_slice(out, source, offset, count)

    monkeypatch.setattr(sendfile, "_send_slice", watched)
    after: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(DATA)
        writer = await response.prepare(request)
        assert await sendfile.send_file(request, writer, path, 0, len(DATA))
        connection = request.transport.get_extra_info("socket")  # type: ignore[union-attr]
        after.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    for _ in range(2):  # the second on the same connection
        response = await client.get("/")
        assert await response.read() == DATA
    assert corked_while_sending and set(corked_while_sending) == {1}
    assert after == [0, 0]
