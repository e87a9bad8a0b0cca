"""A real HTTP receiver of events on 127.0.0.1, and ``dockyard serve`` configured to send to it."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.support.server import DockyardProcess

ENDPOINT = "hooks"


class Receiver:
    """Takes POSTs at ``/events`` in its own thread: each body and its headers kept, answered with
    ``status``; while ``gate`` is closed, a request waits (an endpoint that does not answer)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._gate = asyncio.Event()
        self._gate.set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        await self._gate.wait()
        if self.status < 300:
            with self._lock:
                self.requests.append((dict(request.headers), body))
        return web.Response(status=self.status)

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/events", self._take)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> Receiver:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.url = f"http://127.0.0.1:{port}/events"
        return self

    def stop(self) -> None:
        self.open()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def hold(self) -> None:
        """Requests wait unanswered until :meth:`open`."""
        self._loop.call_soon_threadsafe(self._gate.clear)

    def open(self) -> None:
        self._loop.call_soon_threadsafe(self._gate.set)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every registry:2 event taken (with its repeats), in the order they came; of a CloudEvents batch, their data."""
        with self._lock:
            bodies = [json.loads(body) for _, body in self.requests]
        return [event for body in bodies for event in (body["events"] if isinstance(body, dict) else [item["data"] for item in body])]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60) -> list[dict[str, Any]]:
        """The events once ``done`` says they are all there (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events
            if done(events):
                return events
            time.sleep(0.05)
        taken = [(event["action"], event["request"].get("host"), event["target"].get("digest"), event["target"].get("tag")) for event in self.events]
        raise AssertionError(f"events still missing after {timeout}s: {len(taken)} taken: {taken[-30:]}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    taking = Receiver().start()
    try:
        yield taking
    finally:
        taking.stop()


@pytest.fixture
def fresh_receiver(receiver: Receiver) -> Receiver:
    """The module's receiver with nothing taken yet, answering at once with 200."""
    receiver.status = 200
    receiver.open()
    receiver.clear()
    return receiver


def events_config(
    folder: pathlib.Path, root: pathlib.Path, url: str, *, hooks: str = "", endpoints: str = "", notifications: str = "", dockyard: str = "",
    s3: dict[str, object] | None = None,
) -> pathlib.Path:
    """A registry:2 config file sending events to ``url`` (endpoint ``hooks``, with the lines
    ``hooks`` more), with short retries and lease, for ``dockyard serve --config``; ``endpoints``
    are more endpoints, ``notifications`` more of that section, ``dockyard`` more ``dockyard:`` keys;
    with ``s3`` (registry:2's ``storage.s3`` keys) the storage is that bucket instead of ``root``."""
    driver = f"  s3: {json.dumps(s3)}\n" if s3 is not None else f"  filesystem:\n    rootdirectory: {json.dumps(str(root))}\n"
    config = folder / f"{root.name}-events.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n{driver}  delete:\n    enabled: true\n"
        "http:\n  addr: 127.0.0.1:0\n"
        f"notifications:\n{notifications}  endpoints:\n"
        f"    - name: {ENDPOINT}\n      url: {url}\n      timeout: 2s\n      threshold: 2\n      backoff: 100ms\n{hooks}"
        f"{endpoints}"
        "dockyard:\n  insecure_http: true\n"
        "  events:\n    lease: 2s\n    poll_interval: 100ms\n    max_backoff: 500ms\n"
        f"{dockyard}"
    )
    return config


def pending(root: pathlib.Path) -> list[pathlib.Path]:
    """The events waiting in the outbox, of every endpoint."""
    return sorted((root / "docker/registry/v2/dockyard/events").glob("*/pending/*"))


def serve(root: pathlib.Path, config: pathlib.Path) -> DockyardProcess:
    return DockyardProcess(root, "--config", str(config)).start()


def waiting(server: DockyardProcess) -> list[int]:
    """The events waiting for each endpoint, as the web page says (any storage)."""
    page = httpx.get(f"{server.url}/ui/events").text
    return [int(count.replace(",", "")) for count in re.findall(r'<span class="stat-value waiting">([\d,]+)</span>', page)]
