"""Delivery: one task per endpoint in every worker process of every replica; the one holding
the endpoint's lease in storage sends its events, oldest first, one at a time.

- *Order*: an endpoint's next event is sent only once the one before it was taken (any 2xx or
  3xx, as registry:2) or dropped; each endpoint has its own task, so a slow or dead one never
  holds up another, nor a request (requests only write the outbox).
- *Retries*: a failed send is tried again after ``backoff``; after ``threshold`` failures in a
  row the wait doubles at each failure up to ``dockyard.events.max_backoff``, each wait drawn
  between half and all of that (jitter, so replicas and endpoints do not retry in step).
- *One sender*: the lease (``<owner> <expiry>``) is taken under the storage's lock when it is
  missing or expired, renewed when half of it is gone, and given back on a clean stop; after
  a crash another replica takes over once it expires. A delivery whose deletion the crash cut
  short is sent again: at least once, the event's id telling the receiver it is a repeat.
- *Bounds*: past ``max_backlog`` waiting events, or ``max_age`` after an event happened, the
  oldest are dropped (counted, and logged once per outage: until the endpoint takes an event again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import aiohttp

from dockyard.config import EventDelivery
from dockyard.events.endpoints import Endpoint
from dockyard.events.outbox import recorded_at
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFound, StorageDriver

log = logging.getLogger("dockyard.events")

RECENT = 30  # deliveries and failures kept per endpoint for the web page
_SHORTEST_RETRY = 0.05  # with backoff 0: never a busy loop
LEASE_MARGIN = 1.0  # seconds of a lease beyond twice the endpoint's timeout


class DeliveryObserver:
    """What delivery tells of its work; the metrics (:mod:`dockyard.ops.metrics`) count it."""

    def sent(self, endpoint: str) -> None:
        pass

    def failed(self, endpoint: str) -> None:
        pass

    def dropped(self, endpoint: str, reason: str, count: int) -> None:
        pass

    def backlog(self, endpoint: str, waiting: int, oldest_age: float) -> None:
        pass


@dataclass(frozen=True)
class Attempt:
    """One send, as the web page lists it."""

    time: float
    event_id: str
    action: str
    repository: str
    outcome: str  # delivered, failed, dropped
    detail: str = ""
    tries: int = 1  # failures of one event in a row, with the same detail, are one line


def remember(recent: deque[Attempt], attempt: Attempt) -> None:
    """Add ``attempt`` to the list the web page shows; a retry failing as the one before is that
    line again, counted, so that one endpoint down does not push every delivery out of the list."""
    last = recent[-1] if recent else None
    if last is not None and attempt.outcome == "failed" and (last.event_id, last.outcome, last.detail) == (
        attempt.event_id, attempt.outcome, attempt.detail,
    ):
        recent[-1] = replace(attempt, tries=last.tries + 1)
    else:
        recent.append(attempt)


def retry_delay(endpoint: Endpoint, failures: int, longest: float) -> float:
    """How long to wait after ``failures`` failures in a row: jittered exponential backoff."""
    delay = min(longest, endpoint.backoff * 2.0 ** max(0, failures - endpoint.threshold))
    return max(_SHORTEST_RETRY, delay * random.uniform(0.5, 1.0))


def owner_name() -> str:
    """This process's name in leases: host, process and a random part (a restarted process is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, driver: StorageDriver, endpoint: Endpoint, owner: str, duration: float) -> None:
        self.driver = driver
        self.path = paths.events_lease(endpoint.folder)
        # A lock is held on a file no one replaces: a rewrite (a rename) would leave a lock holder with the old file.
        self.claim = paths.events_claim(endpoint.folder)
        self.owner = owner
        self.duration = duration
        self.until = 0.0

    @staticmethod
    def _parse(content: bytes) -> tuple[str, float]:
        owner, _, expiry = content.decode(errors="replace").partition(" ")
        try:
            return owner, float(expiry)
        except ValueError:
            return owner, 0.0

    async def _read(self) -> tuple[str, float]:
        try:
            return self._parse(await self.driver.get_content(self.path))
        except PathNotFound:
            return "", 0.0

    async def hold(self) -> bool:
        """Whether this process holds the lease now, taking or renewing it when it may."""
        owner, expiry = await self._read()
        now = time.time()
        if owner == self.owner and expiry - now > self.duration / 2:
            self.until = expiry
            return True
        if owner not in ("", self.owner) and expiry > now:
            self.until = 0.0
            return False
        try:
            await self.driver.stat(self.claim)
        except PathNotFound:
            await self.driver.put_content(self.claim, b"")  # the lock below needs the file
        async with self.driver.lock(self.claim):
            owner, expiry = await self._read()
            now = time.time()
            if owner != self.owner and expiry > now:
                self.until = 0.0
                return False
            self.until = now + self.duration
            await self.driver.put_content(self.path, f"{self.owner} {self.until!r}".encode())
        return True

    async def release(self) -> None:
        if self.until <= time.time():
            return
        async with self.driver.lock(self.claim):
            owner, _ = await self._read()
            if owner == self.owner:
                await self.driver.put_content(self.path, b"- 0")
        self.until = 0.0


class EndpointDelivery:
    def __init__(
        self, driver: StorageDriver, endpoint: Endpoint, options: EventDelivery, owner: str,
        session: aiohttp.ClientSession, observer: DeliveryObserver,
    ) -> None:
        self.driver = driver
        self.endpoint = endpoint
        self.options = options
        self.session = session
        self.observer = observer
        # Renewed before a send once half of it is gone: that half must outlast the send (and a storage
        # round trip), or another replica would send the same event meanwhile.
        self.lease = Lease(driver, endpoint, owner, max(options.lease, 2 * endpoint.timeout + LEASE_MARGIN))
        self.wake = asyncio.Event()
        self.recent: deque[Attempt] = deque(maxlen=RECENT)
        self._recent_loaded = False
        self._recent_unsaved = False
        self._dropping = False  # since the endpoint last took an event: the drops of one outage are logged once

    async def run(self) -> None:
        try:
            while True:
                try:
                    if await self.lease.hold():
                        await self._deliver_waiting()
                    else:
                        self._recent_loaded = False  # another process delivers: its list, when this one takes over
                        self.observer.backlog(self.endpoint.name, 0, 0.0)  # the holder reports it
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("delivering events to endpoint %s", self.endpoint.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.options.poll_interval)
                self.wake.clear()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.lease.release())

    async def _waiting(self) -> list[str]:
        """The waiting events' names, oldest first, once the bounds dropped what is past them."""
        folder = paths.events_pending(self.endpoint.folder)
        try:
            names = sorted(name for name in await self.driver.list(folder) if recorded_at(name) is not None)
        except PathNotFound:
            names = []
        now = time.time()
        too_old = [name for name in names if now - (recorded_at(name) or now) > self.options.max_age]
        kept = names[len(too_old):]
        too_many = kept[:max(0, len(kept) - self.options.max_backlog)]
        for reason, dropped in (("age", too_old), ("backlog", too_many)):
            if dropped:
                await self._drop(reason, dropped)
        if (too_old or too_many) and not self._dropping:
            self._dropping = True
            log.warning(
                "endpoint %s: backlog past its bounds (%d events, max_backlog %d, max_age %ss): dropping the oldest events "
                "until it takes events again",
                self.endpoint.name, len(names), self.options.max_backlog, self.options.max_age,
            )
        waiting = kept[len(too_many):]
        oldest = recorded_at(waiting[0]) if waiting else None
        self.observer.backlog(self.endpoint.name, len(waiting), now - oldest if oldest is not None else 0.0)
        return waiting

    async def _drop(self, reason: str, names: Sequence[str]) -> None:
        folder = self.endpoint.folder
        for name in names:
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(paths.event_pending(folder, name))
        self.observer.dropped(self.endpoint.name, reason, len(names))
        self._remember(Attempt(time.time(), names[-1].partition("-")[2], "", "", "dropped", f"{len(names)} events past max_{reason}"))

    async def _deliver_waiting(self) -> None:
        await self._load_recent()
        try:
            for name in await self._waiting():
                if not await self._deliver(name):
                    return
        finally:
            await self._save_recent()

    async def _deliver(self, name: str) -> bool:
        """Send one event until it is taken; ``False`` when this process should stop (lease lost)."""
        path = paths.event_pending(self.endpoint.folder, name)
        failures = 0
        while True:
            if not await self.lease.hold():
                return False
            try:
                event = json.loads(await self.driver.get_content(path))
            except PathNotFound:
                return True  # dropped past the bounds meanwhile, or another replica's
            problem = await self._send(event)
            target = event.get("target", {})
            if problem is None:
                await self.driver.delete(path)
                self.observer.sent(self.endpoint.name)
                self._remember(Attempt(time.time(), event["id"], event["action"], target.get("repository", ""), "delivered"))
                if self._dropping:
                    self._dropping = False
                    log.info("endpoint %s: takes events again", self.endpoint.name)
                return True
            failures += 1
            self.observer.failed(self.endpoint.name)
            self._remember(Attempt(time.time(), event["id"], event["action"], target.get("repository", ""), "failed", problem))
            if failures == 1 or failures == self.endpoint.threshold:
                log.warning("endpoint %s: sending event %s failed (%s); retrying with backoff", self.endpoint.name, event["id"], problem)
            await self._save_recent()
            await asyncio.sleep(retry_delay(self.endpoint, failures, self.options.max_backoff))
            await self._waiting()  # the bounds hold while the endpoint is down

    async def _send(self, event: dict[str, object]) -> str | None:
        """``None`` when the endpoint took the event, else what went wrong."""
        body, headers = self.endpoint.request(event)
        try:
            async with self.session.post(
                self.endpoint.url, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout or None),
            ) as response:
                await response.read()
                if 200 <= response.status < 400:
                    return None
                return f"status {response.status}"
        except TimeoutError:
            return f"no answer within {self.endpoint.timeout}s"
        except aiohttp.ClientError as error:
            return f"{type(error).__name__}: {error}"

    async def _load_recent(self) -> None:
        """What the holder before this one saw, once (the page shows one list whoever delivers)."""
        if self._recent_loaded:
            return
        self._recent_loaded = True
        self.recent.extendleft(reversed(await read_recent(self.driver, self.endpoint)))

    def _remember(self, attempt: Attempt) -> None:
        remember(self.recent, attempt)
        self._recent_unsaved = True

    async def _save_recent(self) -> None:
        if not self._recent_unsaved:
            return
        self._recent_unsaved = False
        content = json.dumps([asdict(attempt) for attempt in self.recent]).encode()
        await self.driver.put_content(paths.events_recent(self.endpoint.folder), content)


async def read_recent(driver: StorageDriver, endpoint: Endpoint) -> list[Attempt]:
    """The endpoint's last deliveries and failures, oldest first, as its deliverer last wrote them."""
    try:
        entries = json.loads(await driver.get_content(paths.events_recent(endpoint.folder)))
        return [Attempt(**entry) for entry in entries][-RECENT:]
    except (PathNotFound, ValueError, TypeError):
        return []


@dataclass(frozen=True)
class EndpointStatus:
    """What the web page shows of an endpoint."""

    name: str
    where: str  # scheme and host of its URL (a path or query may hold a token)
    waiting: int
    deliverer: str  # the lease holder's owner name, "" when none holds it
    recent: list[Attempt]


async def endpoint_status(driver: StorageDriver, endpoint: Endpoint) -> EndpointStatus:
    try:
        waiting = sum(1 for name in await driver.list(paths.events_pending(endpoint.folder)) if recorded_at(name) is not None)
    except PathNotFound:
        waiting = 0
    try:
        owner, expiry = Lease._parse(await driver.get_content(paths.events_lease(endpoint.folder)))
    except PathNotFound:
        owner, expiry = "", 0.0
    parts = urllib.parse.urlsplit(endpoint.url)
    recent = await read_recent(driver, endpoint)
    return EndpointStatus(endpoint.name, f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}", waiting, owner if expiry > time.time() else "", recent[::-1])
