"""What the registry's aiohttp application and its requests carry, for the HTTP layer and
for what runs beside it (scheduled maintenance, the debug server, metrics)."""

from __future__ import annotations

from aiohttp import web

from dockyard.proxy.cache import PullThroughCache
from dockyard.storage.registry import Registry

REGISTRY_KEY = web.AppKey("registry", Registry)
# Set when the registry is a pull-through cache of an upstream (registry:2's proxy section).
PULL_THROUGH_KEY = web.AppKey("pull_through", PullThroughCache)

# The name of the registry route a request matched (``manifest``, ``blob``...), for metrics.
ROUTE_KEY = web.RequestKey("dockyard_route", str)
