"""Which upstream, if any, a repository is cached from.

registry:2's ``proxy`` section is one cache with no prefix: every repository is its
upstream's, whatever containerd's ``ns`` says. ``dockyard.mirrors`` gives each upstream
a prefix: ``docker.io/library/alpine`` is cached from the ``docker.io`` mirror, which
calls it ``library/alpine``; every repository under no prefix is an ordinary one.

containerd's ``hosts.toml`` mirror sends the upstream's own name and
``?ns=<upstream host>``: ``library/alpine?ns=docker.io`` is the same repository as
``docker.io/library/alpine``, stored once.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dockyard.config.schema import MirrorSync, Settings
from dockyard.proxy.cache import PullThroughCache
from dockyard.proxy.upstream import UpstreamClient
from dockyard.storage.registry import Registry


@dataclass(frozen=True)
class MirrorRoute:
    cache: PullThroughCache
    repository: str
    """Where the repository is stored here: under the cache's prefix."""
    upstream_name: str
    """What the upstream calls it."""


@dataclass(frozen=True)
class SyncTarget:
    """A sync entry (see :mod:`dockyard.proxy.sync`) with the cache it fills."""

    cache: PullThroughCache
    entry: MirrorSync

    @property
    def name(self) -> str:
        """The repository as stored here: under the cache's prefix."""
        return f"{self.cache.prefix}/{self.entry.repository}" if self.cache.prefix else self.entry.repository


class Mirrors:
    """The pull-through caches by prefix (``""``: the whole registry's), and their sync entries."""

    def __init__(self, caches: list[PullThroughCache], syncs: Mapping[str, Sequence[MirrorSync]] | None = None) -> None:
        self._caches = {cache.prefix: cache for cache in caches}
        self.sync_targets = [SyncTarget(self._caches[prefix], entry) for prefix, entries in (syncs or {}).items() for entry in entries]
        """Every sync entry, by the prefix of its cache."""

    def cache_for(self, repository: str, ns: str | None = None) -> MirrorRoute | None:
        """The cache holding ``repository`` (as a client names it, with containerd's ``ns``), or None: a local repository."""
        whole = self._caches.get("")
        if whole is not None:
            return MirrorRoute(whole, repository, repository)
        for prefix, cache in self._caches.items():
            if repository.startswith(f"{prefix}/"):
                return MirrorRoute(cache, repository, cache.upstream_name(repository))
        by_ns = self._caches.get(ns) if ns else None
        if by_ns is not None:
            return MirrorRoute(by_ns, f"{by_ns.prefix}/{repository}", repository)
        return None

    @property
    def whole_registry_upstream(self) -> str | None:
        """The upstream every repository is cached from (registry:2's ``proxy``), or None with prefixes."""
        whole = self._caches.get("")
        return whole.upstream.remote_url if whole is not None else None

    def source(self, repository: str) -> str | None:
        """Where ``repository`` (as stored) is cached from, as a URL-like name; None for a local one."""
        route = self.cache_for(repository)
        return f"{route.cache.upstream.remote_url}/{route.upstream_name}" if route is not None else None

    @property
    def caches(self) -> list[PullThroughCache]:
        return list(self._caches.values())

    async def close(self) -> None:
        await asyncio.gather(*(cache.close() for cache in self._caches.values()))


def build_mirrors(settings: Settings, registry: Registry) -> Mirrors | None:
    """The caches ``settings`` configure over ``registry``, or None when there are none (their TTLs, for
    the collector: :func:`dockyard.proxy.expiry.ttl_lookup`)."""
    proxy, options = settings.proxy, settings.dockyard.proxy
    if proxy is not None:
        upstream = UpstreamClient(proxy.remoteurl, proxy.username, proxy.password, options.ca_file)
        return Mirrors([PullThroughCache(registry, upstream, proxy.ttl, options.tag_check_interval)], {"": options.sync})
    caches = []
    for mirror in settings.dockyard.mirrors:
        password = mirror.password
        if mirror.password_file:
            password = pathlib.Path(mirror.password_file).read_text().rstrip("\r\n")
        upstream = UpstreamClient(mirror.remoteurl, mirror.username, password, mirror.ca_file)
        caches.append(PullThroughCache(registry, upstream, mirror.ttl, mirror.tag_check_interval, mirror.prefix.removesuffix("/")))
    syncs = {mirror.prefix.removesuffix("/"): mirror.sync for mirror in settings.dockyard.mirrors}
    return Mirrors(caches, syncs) if caches else None
