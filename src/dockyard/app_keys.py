"""What the registry's aiohttp application and its requests carry, for the HTTP layer and
for what runs beside it (scheduled maintenance, the debug server, metrics)."""

from __future__ import annotations

from aiohttp import web

from dockyard.proxy.mirrors import Mirrors
from dockyard.storage.registry import Registry

REGISTRY_KEY = web.AppKey("registry", Registry)
# Set when repositories are cached from upstreams (registry:2's proxy section, or dockyard.mirrors).
MIRRORS_KEY = web.AppKey("mirrors", Mirrors)

# The name of the registry route a request matched (``manifest``, ``blob``...), for metrics.
ROUTE_KEY = web.RequestKey("dockyard_route", str)
