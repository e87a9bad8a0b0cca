"""Retention policies (``dockyard.retention`` in the config), applied by the collector.

The first policy whose ``repositories`` glob matches a repository's name applies to
it (``*`` matches across ``/`` too). With ``keep_last: N`` the N most recently pushed
tags stay (pushed = the time of the tag's ``current/link``), and so do tags matching a
``keep_tags`` glob; the others are untagged, except immutable tags
(:mod:`dockyard.storage.immutable`), which always stay. ``untagged_older_than`` removes the
repository's untagged, unreachable manifests last pushed longer ago than that.
Nothing pushed within the collector's grace period is touched.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.config import Retention
from dockyard.maintenance.inventory import RepositoryLinks, mtime
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver
from dockyard.storage.immutable import ImmutableTags


def policy_for(name: str, policies: Sequence[Retention]) -> Retention | None:
    return next((policy for policy in policies if fnmatch.fnmatchcase(name, policy.repositories)), None)


@dataclass(frozen=True)
class ExpiredTag:
    tag: str
    digest: Digest
    pushed: float


async def expired_tags(
    driver: StorageDriver, links: RepositoryLinks, policy: Retention, recent_after: float, immutable: ImmutableTags,
) -> list[ExpiredTag]:
    """The tags ``policy`` removes from ``links``' repository, oldest first (never an immutable one)."""
    if policy.keep_last is None:
        return []
    names = sorted(links.tags)
    times = await asyncio.gather(*(mtime(driver, paths.tag_current_link(links.name, tag)) for tag in names))
    pushed = sorted(
        ((when, tag) for tag, when in zip(names, times, strict=True) if when is not None), reverse=True,
    )
    return sorted(
        (
            ExpiredTag(tag, links.tags[tag], when)
            for when, tag in pushed[policy.keep_last:]
            if when < recent_after and not any(fnmatch.fnmatchcase(tag, pattern) for pattern in policy.keep_tags)
            and not immutable.covers(links.name, tag)
        ),
        key=lambda expired: expired.pushed,
    )
