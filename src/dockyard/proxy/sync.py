"""Sync: chosen tags of upstream repositories fetched into the pull-through cache ahead of any pull
(``sync`` of each of ``dockyard.mirrors``, and ``dockyard.proxy.sync`` for registry:2's ``proxy``).

A run lists the upstream's tags (page by page, as its ``Link`` headers lead), keeps those matching
the entry's globs, and pulls each as a client would, through the cache's own code: the tag asked of
the upstream (at most every ``tag_check_interval``), the manifest (an index's children too) and
every blob fetched when not cached, verified, one fetch per blob however many clients pull it
meanwhile. Every manifest and blob it covers gets a pull time now: the TTL counts from the last
sync as from the last pull, so a synced image stays while it is synced (and goes a TTL after it
is no longer). A failing upstream ends the run, and what it had stored stays.

The server runs each entry every ``interval`` in one worker of one replica at a time, under
:func:`dockyard.maintenance.schedule.run_when_due`'s lock and stamp in storage; each run's outcome
is written beside that stamp, for the web page and ``dockyard mirror sync``.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import orjson

from dockyard import manifest as manifests
from dockyard.errors import DockyardError, UpstreamUnavailable
from dockyard.logs import audit
from dockyard.maintenance.schedule import Job
from dockyard.proxy.cache import FETCHED, Fetched, PullThroughCache
from dockyard.proxy.mirrors import Mirrors, SyncTarget
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.driver import PathNotFound, StorageDriver
from dockyard.storage.repository import Repository

log = logging.getLogger("dockyard.proxy")

TAG_PAGE_SIZE = 1000
"""Tags asked for per page; an upstream may send fewer, its ``Link`` leading on."""


@dataclass(frozen=True)
class SyncResult:
    started: float
    finished: float
    tags: int
    """matching tags made current (all of them when the run succeeded)"""
    manifests: int
    """fetched from the upstream (not cached before)"""
    blobs: int
    blob_bytes: int
    error: str = ""
    """why the run stopped; empty when it succeeded"""

    def summary(self) -> str:
        fetched = f"{self.manifests} manifests and {self.blobs} blobs ({self.blob_bytes} bytes) fetched"
        return f"failed after {self.tags} tags, {fetched}: {self.error}" if self.error else f"{self.tags} tags current, {fetched}"


def sync_jobs(mirrors: Mirrors | None) -> list[Job]:
    """The server's runs of the sync entries of ``mirrors``: each on its interval, from the start (its last run's time is in storage)."""
    return [
        Job(f"sync of {target.name}", paths.proxy_sync_run(target.name), target.entry.interval, functools.partial(_logged_sync, target), catch_up=True)
        for target in (mirrors.sync_targets if mirrors is not None else [])
    ]


def _ignore(line: str) -> None:
    pass


async def sync(target: SyncTarget, progress: Callable[[str], None] = _ignore) -> SyncResult:
    """One run of ``target``: told to ``progress`` tag by tag, audited, counted and written for the web page."""
    cache, name = target.cache, target.name
    fetched = Fetched()
    token = FETCHED.set(fetched)
    started, done, error = time.time(), 0, ""
    try:
        for tag in await _matching_tags(cache, name, target.entry.tags):
            digest = await cache.manifest(name, tag)
            await _sync_manifest(cache, cache.registry.repository(name), digest)
            done += 1
            progress(f"{name}:{tag} {digest}")
    except (DockyardError, OSError) as failure:  # the upstream's, or the storage's: the next run tries again
        error = _described(failure)
    finally:
        FETCHED.reset(token)
    result = SyncResult(started, time.time(), done, fetched.manifests, fetched.blobs, fetched.blob_bytes, error)
    await cache.registry.driver.put_content(paths.proxy_sync_result(name), orjson.dumps(asdict(result)))
    audit(
        "mirror_sync", None, upstream=cache.upstream.remote_url, repository=name, tags=done, manifests=fetched.manifests,
        blobs=fetched.blobs, bytes=fetched.blob_bytes, failed=error or None,
    )
    if error:
        cache.events.sync_failed(name)
    else:
        cache.events.synced(name, fetched.manifests, fetched.blobs, fetched.blob_bytes, result.finished)
    return result


async def _logged_sync(target: SyncTarget) -> None:
    """A run of the server's, in one log line (``dockyard mirror sync`` prints its own)."""
    result = await sync(target)
    if result.error:
        log.warning("sync of %s from %s %s", target.name, target.cache.upstream.remote_url, result.summary())
    else:
        log.info("sync of %s from %s: %s", target.name, target.cache.upstream.remote_url, result.summary())


async def _matching_tags(cache: PullThroughCache, name: str, globs: list[str]) -> list[str]:
    query: dict[str, str] | None = {"n": str(TAG_PAGE_SIZE)}
    matching: list[str] = []
    while query is not None:
        page = await cache.tags(name, query)
        if page is None:
            raise UpstreamUnavailable(f"the upstream has no repository {cache.upstream_name(name)}", "status")
        matching += [tag for tag in page.tags if any(fnmatch.fnmatchcase(tag, glob) for glob in globs)]
        query = page.next_query
    return matching


async def _sync_manifest(cache: PullThroughCache, repository: Repository, digest: Digest) -> None:
    """The blobs of the cached manifest ``digest`` (of an index: its children, fetched, and theirs)."""
    content = await repository.get_manifest(digest)
    manifest = manifests.parse(content, manifests.stored_media_type(content))
    for child in manifest.children:
        await cache.manifest(repository.name, str(child.digest))
        await _sync_manifest(cache, repository, child.digest)
    for blob in manifest.blobs:
        if blob.is_foreign:
            continue  # clients fetch it from its URLs
        if await repository.has_layer(blob.digest):
            await cache.record_blob_pull(blob.digest)
        else:
            await (await cache.blob(repository.name, blob.digest)).ended()


def _described(failure: Exception) -> str:
    detail = failure.detail if isinstance(failure, DockyardError) else None
    if isinstance(detail, dict) and detail:
        return f"{failure} ({', '.join(f'{key} {value}' for key, value in detail.items())})"
    return str(failure)


async def last_result(driver: StorageDriver, name: str) -> SyncResult | None:
    """The last run's outcome for the repository ``name`` (as stored), ``None`` before the first."""
    try:
        return SyncResult(**orjson.loads(await driver.get_content(paths.proxy_sync_result(name))))
    except (PathNotFound, orjson.JSONDecodeError, TypeError):
        return None
