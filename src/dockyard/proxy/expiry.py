"""Expiry of the pull-through cache: how long each cached repository's images stay without pulls.

The garbage collector expires them (:mod:`dockyard.maintenance.gc`): it reads the pull
times the cache writes in storage, so every replica and a restart see the same ones; no
schedule is kept in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dockyard.config import Settings
from dockyard.storage.driver import PathNotFound, StorageDriver

TtlLookup = Callable[[str], float | None]
"""A repository's TTL in seconds: its cached images not pulled for this long go; ``None``: they never do."""

# A collection that expires images runs at least this often (registry:2 expires each on its own timer).
EXPIRY_CHECK_SECONDS = 3600.0


def never_expires(repository: str) -> float | None:
    return None


def _ttls(settings: Settings) -> dict[str, float]:
    """Each cache's TTL by the prefix of the repositories it holds (``""``: registry:2's ``proxy``, every
    repository); caches kept for ever (a TTL of 0) are left out."""
    if settings.proxy is not None:
        ttls = {"": settings.proxy.ttl}
    else:
        ttls = {mirror.prefix.removesuffix("/"): mirror.ttl for mirror in settings.dockyard.mirrors}
    return {prefix: ttl for prefix, ttl in ttls.items() if ttl > 0}


def ttl_lookup(settings: Settings | None) -> TtlLookup:
    """The TTL of each repository (as stored), from registry:2's ``proxy.ttl`` or each of
    ``dockyard.mirrors``' ``ttl``; local repositories, and caches with a TTL of 0, never expire."""
    ttls = _ttls(settings) if settings is not None else {}
    if not ttls:
        return never_expires

    def ttl_for(repository: str) -> float | None:
        if "" in ttls:
            return ttls[""]
        return next((ttl for prefix, ttl in ttls.items() if repository.startswith(f"{prefix}/")), None)

    return ttl_for


def expiry_interval(settings: Settings) -> float | None:
    """How often the server collects to expire cached images when no ``dockyard.gc.interval`` is set; ``None``: never."""
    ttls = _ttls(settings)
    return min(*ttls.values(), EXPIRY_CHECK_SECONDS) if ttls else None


def stamp_interval(ttl: float, longest: float) -> float:
    """How often a pull time need be rewritten: at most ``longest``, and well within the TTL, so that
    a pull of an image whose recorded pull is older than its TTL always writes (the collector's
    second look relies on it)."""
    return min(longest, ttl / 10) if ttl > 0 else longest


def time_stamp() -> bytes:
    return repr(time.time()).encode()


async def read_time(driver: StorageDriver, path: str) -> float | None:
    """A time :func:`time_stamp` wrote; ``None`` when missing or unreadable."""
    try:
        return float((await driver.get_content(path)).decode())
    except (PathNotFound, ValueError, UnicodeDecodeError):
        return None
