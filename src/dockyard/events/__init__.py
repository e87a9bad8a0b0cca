"""Events: registry:2's ``notifications``, delivered from a durable outbox in storage.

A change (a push, a mount, a delete) is written to storage first; then its event is written
to the outbox (:mod:`.outbox`), once per endpoint that wants it, before the response goes out;
delivery (:mod:`.delivery`) sends the outbox's events to their endpoints in order, whichever
replica holds each endpoint's lease, with retries and bounds. A ``kill -9`` loses nothing
written: the next holder sends what is left (at least once; each event's id tells repeats).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web

from dockyard.address import Address
from dockyard.config import EventDelivery, Settings
from dockyard.events.delivery import DeliveryObserver, EndpointDelivery, owner_name
from dockyard.events.endpoints import Endpoint, configured_endpoints
from dockyard.events.model import DELETE, Event, RequestRecord, Source, Target
from dockyard.events.outbox import Outbox
from dockyard.maintenance.gc import Report
from dockyard.storage.driver import StorageDriver

GC_ACTOR = "gc"

__all__ = ["EVENTS_KEY", "Event", "Notifier", "RequestRecord", "Source", "Target", "notifier_from", "request_record"]

# One id per request, as registry:2's request.id: a push that moves tags shares it.
_REQUEST_ID_KEY = web.RequestKey("dockyard_event_request_id", str)


def request_record(request: web.BaseRequest | None) -> RequestRecord:
    """registry:2's ``request`` of a client's request; of none (a command), only a new id."""
    if request is None:
        return RequestRecord(id=str(uuid.uuid4()))
    if _REQUEST_ID_KEY not in request:
        request[_REQUEST_ID_KEY] = str(uuid.uuid4())
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    addr = ""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return RequestRecord(request[_REQUEST_ID_KEY], addr, request.host, request.method, request.headers.get("User-Agent", ""))


class Notifier:
    """This process's outbox and deliveries."""

    def __init__(
        self, driver: StorageDriver, endpoints: Sequence[Endpoint], options: EventDelivery, source: Source, include_references: bool = False,
    ) -> None:
        self.driver = driver
        self.endpoints = tuple(endpoints)
        self.options = options
        self.source = source
        self.outbox = Outbox(driver, endpoints, include_references)
        self.observer = DeliveryObserver()
        self.deliveries: dict[str, EndpointDelivery] = {}
        self.outbox.on_recorded(self._wake)

    def _wake(self, endpoint: Endpoint) -> None:
        if (delivery := self.deliveries.get(endpoint.name)) is not None:
            delivery.wake.set()

    async def record(self, action: str, target: Target, request: RequestRecord, actor: str) -> None:
        """Write the event of what was just done; a failure is logged (the change stands)."""
        await self.outbox.record_logged(Event(action, target, request, actor, self.source))

    async def deleted(self, name: str, request: web.BaseRequest | None, actor: str, digest: str = "", tag: str = "") -> None:
        """A manifest deleted (``digest``), a tag (``tag``), or with neither, the whole repository: registry:2
        has no such event, so it is a ``delete`` whose target names the repository alone, which receivers
        that look for a digest or a tag skip."""
        if self.outbox.wants(DELETE):
            await self.record(DELETE, Target(name, digest=digest, tag=tag), request_record(request), actor)

    async def collected(self, report: Report) -> None:
        """The events of what a garbage collection (and the retention policies it applies) removed:
        ``delete`` actions, from the actor ``gc``, with no client's request (only its id, one per collection)."""
        request = request_record(None)
        targets = [
            *(Target(name, tag=tag) for name, tag in report.tags_removed),
            *(Target(name, digest=str(digest)) for name, digest in report.manifests_removed),
            *(Target("", digest=str(digest)) for digest in report.blobs_removed),  # blobs belong to no repository
        ]
        for target in targets:
            await self.record("delete", target, request, GC_ACTOR)

    async def deliver(self, app: web.Application | None = None) -> AsyncIterator[None]:
        """Deliver while the application runs (an ``app.cleanup_ctx`` entry)."""
        owner = owner_name()
        async with aiohttp.ClientSession() as session:
            for endpoint in self.endpoints:
                self.deliveries[endpoint.name] = EndpointDelivery(self.driver, endpoint, self.options, owner, session, self.observer)
            tasks = [asyncio.ensure_future(delivery.run()) for delivery in self.deliveries.values()]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.deliveries.clear()


EVENTS_KEY = web.AppKey("events", Notifier)


def notifier_from(settings: Settings, driver: StorageDriver) -> Notifier | None:
    """The notifier of the configured endpoints; ``None`` when every one is disabled (or there are none)."""
    endpoints = configured_endpoints(settings)
    if not endpoints:
        return None
    # registry:2's source address: this host's name and the configured port.
    port = Address.parse(settings.http.addr).port if not settings.http.addr.startswith("/") else None
    host = socket.gethostname()
    return Notifier(
        driver, endpoints, settings.dockyard.events, Source(f"{host}:{port}" if port is not None else host),
        settings.notifications.events.includereferences,
    )
