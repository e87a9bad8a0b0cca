"""What a route handler is given: the request, the registry, and the validated path parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from dockyard.api.access import AccessController
from dockyard.auth.access import Identity
from dockyard.proxy.cache import PullThroughCache
from dockyard.storage.registry import Registry
from dockyard.storage.repository import Repository

ACCESS_KEY = web.AppKey("access", AccessController)


@dataclass
class RequestContext:
    request: web.Request
    registry: Registry
    identity: Identity
    name: str = ""
    params: dict[str, str] = field(default_factory=dict)
    pull_through: PullThroughCache | None = None
    """The cache ``name`` is fetched into from its upstream; None for a local repository."""

    @property
    def repository(self) -> Repository:
        return self.registry.repository(self.name)

    def query(self, key: str) -> str | None:
        return self.request.query.get(key)

    def has_body(self) -> bool:
        length = self.request.content_length
        if length is not None:
            return length > 0
        return "chunked" in self.request.headers.get("Transfer-Encoding", "").lower()

    async def body(self) -> AsyncIterator[bytes]:
        # Chunks as received: iter_any() would join whatever queued up, a copy on the loop.
        if not self.request.body_exists:
            return  # aiohttp's shared empty reader ends iter_chunks() only once per process, then spins
        async for chunk, _ in self.request.content.iter_chunks():
            yield chunk

