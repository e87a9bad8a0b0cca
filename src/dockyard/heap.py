"""Handing a worker's free heap back to the system once it has served nothing for a while.

``dockyard.server.TRIM_THRESHOLD`` lets glibc keep up to 32 MiB of freed heap, so that one
request's buffers are reused by the next (a chunked push's PATCHes) instead of being faulted
in again page by page. But it also keeps, in every worker that served one, what the
last burst of uploads freed, and the server's memory is the sum over its workers.
Once a worker has had no request running or starting for a whole period,
``malloc_trim`` hands that heap back. A busy worker keeps it.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable
from typing import Protocol

# How long a worker must have been idle before its free heap goes back.
IDLE_PERIOD = 1.0


class Requests(Protocol):
    @property
    def count(self) -> int:
        """Requests running now."""

    @property
    def started(self) -> int:
        """Requests started since the worker began."""


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None on a C library without it."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return lambda: trim(0)


class IdleTrim:
    """Every ``period`` seconds, :meth:`tick` trims when no request ran or started since
    the tick before, and some did since the last trim: one trim after each busy spell."""

    def __init__(self, requests: Requests, trim: Callable[[], object], period: float = IDLE_PERIOD) -> None:
        self.requests = requests
        self.trim = trim
        self.period = period
        self._seen = requests.started
        self._served_since_trim = False
        self._timer: asyncio.TimerHandle | None = None

    def tick(self) -> None:
        started = self.requests.started
        if started != self._seen:
            self._seen = started
            self._served_since_trim = True
        elif self._served_since_trim and not self.requests.count:
            self.trim()
            self._served_since_trim = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        def tick_and_wait() -> None:
            self.tick()
            self._timer = loop.call_later(self.period, tick_and_wait)

        self._timer = loop.call_later(self.period, tick_and_wait)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
