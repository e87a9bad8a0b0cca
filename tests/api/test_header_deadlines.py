"""The header deadline's bookkeeping in each request (its effect is in test_process.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from dockyard import server


class Handler:
    """aiohttp's protocol, as far as the deadline uses it."""

    def __init__(self) -> None:
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def force_close(self) -> None:
        self.closed = True


async def test_requests_on_a_connection_make_no_timer_each(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    real_call_later = loop.call_later

    def counting_call_later(delay: float, *args: Any) -> asyncio.TimerHandle:
        timers.append(delay)
        return real_call_later(delay, *args)

    monkeypatch.setattr(loop, "call_later", counting_call_later)
    deadlines = server._HeaderDeadlines(30.0)
    handler = Handler()
    connection = deadlines.watch(handler)  # type: ignore[arg-type]
    transport = object()
    connection.connection_made(transport)  # type: ignore[arg-type]
    for _ in range(100):
        connection.data_received(b"GET /v2/ HTTP/1.1\r\n\r\n")
        assert connection.deadline is not None
        assert deadlines.request_started(SimpleNamespace(transport=transport)) is connection  # type: ignore[arg-type]
        assert connection.deadline is None
        connection.request_ended()
    connection.connection_lost(None)
    assert len(timers) <= 1 and not handler.closed


async def test_a_connection_past_its_deadline_is_closed_by_a_sweep() -> None:
    deadlines = server._HeaderDeadlines(0.01)
    slow, quick = Handler(), Handler()
    slow_connection, quick_connection = deadlines.watch(slow), deadlines.watch(quick)  # type: ignore[arg-type]
    slow_connection.connection_made(object())  # type: ignore[arg-type]
    quick_transport = object()
    quick_connection.connection_made(quick_transport)  # type: ignore[arg-type]
    slow_connection.data_received(b"GET /v2/ HTTP/1.1\r\nX-Slow: ")
    quick_connection.data_received(b"GET /v2/ HTTP/1.1\r\n\r\n")
    deadlines.request_started(SimpleNamespace(transport=quick_transport))  # type: ignore[arg-type]
    for _ in range(500):  # only so that a failure does not hang the run
        if slow.closed:
            break
        await asyncio.sleep(0.01)
    assert slow.closed and not quick.closed
