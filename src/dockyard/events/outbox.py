"""The outbox: each event written to storage, once per endpoint that wants it, before the
request that caused it is answered; delivery (:mod:`dockyard.events.delivery`) reads it back.

An event's file name is ``<time in ns, 20 digits>-<id>``: names sort by when the events
happened (in one process strictly in the order they were recorded), so each endpoint's
order is kept; the id (a UUID, the event's ``id`` field) lets receivers drop a repeat.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence

from dockyard.events.endpoints import Endpoint
from dockyard.events.model import Event
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver

log = logging.getLogger("dockyard.events")

_TIME_DIGITS = 20


def event_name(recorded_ns: int, event_id: str) -> str:
    return f"{recorded_ns:0{_TIME_DIGITS}d}-{event_id}"


def recorded_at(name: str) -> float | None:
    """When the event named ``name`` was recorded (Unix seconds); ``None`` for a stray name."""
    stamp = name[:_TIME_DIGITS]
    return int(stamp) / 1e9 if stamp.isdigit() and name[_TIME_DIGITS:_TIME_DIGITS + 1] == "-" else None


class Outbox:
    def __init__(self, driver: StorageDriver, endpoints: Sequence[Endpoint], include_references: bool) -> None:
        self.driver = driver
        self.endpoints = tuple(endpoints)
        self.include_references = include_references
        self._last_ns = 0
        self._recorded: list[Callable[[Endpoint], None]] = []

    def on_recorded(self, callback: Callable[[Endpoint], None]) -> None:
        """Call ``callback`` with each endpoint an event was written for (this process's deliveries wake up)."""
        self._recorded.append(callback)

    def wants(self, action: str, media_type: str = "") -> bool:
        """Whether any endpoint takes such an event: if not, nothing need be built or written."""
        return any(endpoint.wants(action, media_type) for endpoint in self.endpoints)

    async def record(self, event: Event) -> None:
        """Write ``event`` for each endpoint that wants it; done when every copy is in storage."""
        chosen = [endpoint for endpoint in self.endpoints if endpoint.wants(event.action, event.target.media_type)]
        if not chosen:
            return
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        name = event_name(self._last_ns, event.id)
        body = json.dumps(event.to_json(), separators=(",", ":")).encode()
        await asyncio.gather(*(self.driver.put_content(paths.event_pending(endpoint.folder, name), body) for endpoint in chosen))
        for endpoint in chosen:
            for callback in self._recorded:
                callback(endpoint)

    async def record_logged(self, event: Event) -> None:
        """:meth:`record`, a failure logged rather than raised: the change it describes is made, and stays."""
        try:
            await self.record(event)
        except Exception:
            log.exception("could not record the %s event of %s: it will not be sent", event.action, event.target.repository)
