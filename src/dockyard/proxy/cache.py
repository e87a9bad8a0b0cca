"""The pull-through cache (registry:2's ``proxy`` section): manifests and blobs fetched from the
upstream when first asked for, verified, and stored as if they had been pushed.

Blobs stream through: the first request for an uncached blob starts one fetch (per
repository and digest in this process; across workers and replicas the storage
driver's lock on ``proxy/fetching/<digest>`` makes the others wait and then find it
stored). The fetch runs on its own, whoever asked first may go away, and writes into a
download file while hashing; every client of that blob gets the bytes as they arrive (from
memory while it keeps up, else from the growing file), all but its last byte, which is sent
only once the digest is verified (not once the blob is stored: a client does not wait for the
flush and the links, as it does not with registry:2). A blob
that does not match its digest, or comes short, is never stored, and its clients'
connections are cut before their last byte, so none takes it for whole.

Tags are asked of the upstream (HEAD) at most every ``tag_check_interval`` seconds
(registry:2 asks at every pull); when the upstream cannot be reached, refuses (5xx) or
asks to slow down (429), the cached manifest is served. Manifests by digest never change
and are fetched once. Each cached manifest's and blob's last pull is written in
Dockyard's own area (:mod:`dockyard.storage.paths`), for expiry after ``ttl``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import hashlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson

from dockyard import manifest as manifests
from dockyard.errors import BlobUnknown, DigestMismatch, ManifestUnknown, UpstreamRateLimited, UpstreamUnavailable
from dockyard.logs import audit
from dockyard.proxy.events import BLOB, MANIFEST, UPSTREAM_FAILURES, CacheEvents, Kind, failure_reason
from dockyard.proxy.expiry import read_time, stamp_interval, time_stamp
from dockyard.proxy.upstream import UpstreamClient, pull_scope
from dockyard.reference import Digest, is_digest, parse_digest
from dockyard.storage import paths
from dockyard.storage.driver import FileWriter, PathNotFound
from dockyard.storage.registry import Registry
from dockyard.storage.repository import Repository
from dockyard.storage.uploads import pump

log = logging.getLogger("dockyard.proxy")

MANIFEST_ACCEPT = ", ".join(sorted(manifests.MANIFEST_TYPES))
# Received bytes are written (and hashed, in a thread) in steps this large; readers get them from memory before.
STREAM_STEP = 1 << 20
# Where the download is not a local file (S3), readers see only what the writer committed; each commit
# is a segment, which S3 copies as a multipart part when the blob moves into place: at least its 5 MiB.
COMMITTED_STEP = 8 << 20
# Received steps of a download that may wait for hashing and writing: one per blob however many read it, and a
# cold pull's receiving, which every reader waits for, stalled for hashing with four (uploads keep two).
DOWNLOAD_STEPS_AHEAD = 4
# Far more than Docker Hub's longest tag lists (some thousands of tags); a page is held whole to be checked.
MAX_TAG_LIST_BYTES = 8 << 20
_NEXT_LINK = re.compile(r'<([^>]*)>\s*;[^,]*rel="?next"?')
# A pull time is written at most this often per manifest or blob (and more often for a TTL under ten times this).
PULL_STAMP_SECONDS = 3600.0


class Download:
    """One fetch of a blob, as its readers see it: where its bytes are, how many, and how it ended."""

    def __init__(self, path: str) -> None:
        self.path = path
        """The download file while it grows, then the stored blob."""
        self.size: int | None = None  # the upstream's Content-Length, when it sent one
        self.received = 0
        self.written = 0
        """How many bytes readers may read from ``path``."""
        # The received bytes not yet written, and about a step before them, as (offset, chunk): readers
        # that keep up are sent these without reading the file back (nor waiting for it to be written).
        self._recent: collections.deque[tuple[int, bytes]] = collections.deque()
        self.verified = False
        """Every byte received and matching the digest: readers may have the last one."""
        self.finished = False
        self.failure: Exception | None = None
        self.started = asyncio.Event()  # size known, or failed before
        self._changed = asyncio.Condition()

    async def receive(self, chunk: bytes) -> None:
        self._recent.append((self.received, chunk))
        self.received += len(chunk)
        await self._notify()

    async def advance(self, written: int) -> None:
        self.written = written
        while self._recent and self._recent[0][0] + len(self._recent[0][1]) <= written - STREAM_STEP:
            self._recent.popleft()
        await self._notify()

    async def verify(self) -> None:
        self.verified = True
        await self._notify()

    async def finish(self, path: str) -> None:
        self.path, self.finished = path, True
        self._recent.clear()
        self.started.set()
        await self._notify()

    async def fail(self, failure: Exception) -> None:
        self.failure = failure
        self._recent.clear()
        self.started.set()
        await self._notify()

    async def ended(self) -> None:
        """Wait until the blob is stored; raises the fetch's failure."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.finished or self.failure is not None)
        if self.failure is not None:
            raise self.failure

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _news_after(self, sent: int, end: int | None) -> bool:
        return self.failure is not None or self.finished or self.verified or self._readable(end) > sent

    def _moved_from(self, path: str) -> bool:
        return self.failure is not None or self.path != path

    def _readable(self, end: int | None) -> int:
        """How far a reader of the bytes before ``end`` (``None``: all) may read now. The last byte
        waits for the digest check: a client never gets a whole body, or a whole range, that is wrong."""
        if self.finished:
            return self.written if end is None else min(self.written, end)
        if self.verified:
            return self.received if end is None else min(self.received, end)
        return max(min(self.received, end if end is not None else self.received) - 1, 0)

    def _remembered(self, start: int, stop: int) -> list[bytes | memoryview] | None:
        """The bytes from ``start`` to ``stop`` held in memory (views, not copies), or ``None`` when ``start`` is no longer there."""
        if not self._recent or self._recent[0][0] > start:
            return None
        pieces: list[bytes | memoryview] = []
        for offset, chunk in self._recent:
            if offset + len(chunk) <= start:
                continue
            if offset >= stop:
                break
            pieces.append(memoryview(chunk)[max(start - offset, 0):stop - offset] if offset < start or offset + len(chunk) > stop else chunk)
        return pieces

    async def chunks(self, registry: Registry, start: int = 0, count: int | None = None) -> AsyncIterator[bytes | memoryview]:
        """The blob's bytes from ``start`` (``count`` of them, or to its end) as they arrive;
        raises the fetch's failure where it stopped."""
        sent = start
        end = None if count is None else start + count
        while end is None or sent < end:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._news_after, sent, end))
            if self.failure is not None:
                raise self.failure
            readable, path = self._readable(end), self.path
            if sent >= readable and (self.finished or self.verified):
                return
            remembered = self._remembered(sent, readable)
            if remembered is not None:
                for chunk in remembered:
                    sent += len(chunk)
                    yield chunk
                continue
            try:
                # Behind what memory holds: from the file, as far as it is written.
                async for chunk in registry.driver.read(path, sent, min(readable, self.written) - sent):
                    sent += len(chunk)
                    yield chunk
            except PathNotFound:
                # Being moved into place: read on once the move is done (or failed).
                async with self._changed:
                    await self._changed.wait_for(functools.partial(self._moved_from, path))


@dataclass
class Fetched:
    """What the upstream sent for one caller's work (a sync run), told through :data:`FETCHED`."""

    manifests: int = 0
    blobs: int = 0
    blob_bytes: int = 0


# Set around work whose fetches are counted: the fetches it starts (and their tasks) add to it.
FETCHED: contextvars.ContextVar[Fetched | None] = contextvars.ContextVar("fetched", default=None)


@dataclass(frozen=True)
class TagPage:
    tags: list[str]
    next_query: dict[str, str] | None
    """The pagination parameters of the next page (from the upstream's ``Link``), if there is one."""


class PullThroughCache:
    """One upstream's cache; its repositories are named here ``<prefix>/<upstream's name>`` (no prefix: as there)."""

    def __init__(self, registry: Registry, upstream: UpstreamClient, ttl: float, tag_check_interval: float, prefix: str = "") -> None:
        self.registry = registry
        self.upstream = upstream
        self.prefix = prefix
        self.ttl = ttl
        """How long a cached image stays without pulls (0: for ever); expiry reads the pull times."""
        self._stamp_interval = stamp_interval(ttl, PULL_STAMP_SECONDS)
        self.tag_check_interval = tag_check_interval
        self._downloads: dict[tuple[str, Digest], Download] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stamped: dict[str, float] = {}  # pull-time path -> when this process last wrote it (monotonic)
        self.events = CacheEvents()
        """Told of hits, misses and the upstream's bytes and failures (the metrics replace it)."""

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.upstream.close()

    def upstream_name(self, name: str) -> str:
        """What the upstream calls the repository ``name`` of this cache."""
        return name.removeprefix(f"{self.prefix}/") if self.prefix else name

    # Manifests

    async def manifest(self, name: str, reference: str) -> Digest:
        """Make the manifest ``reference`` (a tag or a digest) of ``name`` readable in storage: cached, or fetched now.

        The pull time is written, then the manifest is looked for again, as a push writes its
        links before it checks (see :mod:`dockyard.maintenance.gc`): a collection expiring it
        either reads this pull time and puts it back, or set it aside before that look, which
        then fetches it again.
        """
        repository = self.registry.repository(name)
        if is_digest(reference):
            digest = parse_digest(reference)
            if await repository.has_manifest(digest):
                self.events.hit(MANIFEST)
            else:
                self.events.miss(MANIFEST)
                await self._fetch_manifest(repository, reference, digest)
        else:
            digest = await self._check_tag(repository, reference)
        await self._stamp_pull(paths.proxy_manifest_pulled(name, digest))
        if not await repository.has_manifest(digest):
            await self._fetch_manifest(repository, str(digest), digest)
        return digest

    async def _check_tag(self, repository: Repository, tag: str) -> Digest:
        name = repository.name
        try:
            cached: Digest | None = await repository.resolve_tag(tag)
        except ManifestUnknown:
            cached = None
        checked = await read_time(self.registry.driver, paths.proxy_tag_checked(name, tag))
        if cached is not None and checked is not None and time.time() - checked < self.tag_check_interval:
            self.events.hit(MANIFEST)
            return cached
        remote = self.upstream_name(name)
        try:
            with self._exchange(MANIFEST):
                async with self.upstream.request("HEAD", f"/v2/{remote}/manifests/{tag}", pull_scope(remote), {"Accept": MANIFEST_ACCEPT}) as answer:
                    status, named = answer.status, answer.headers.get("Docker-Content-Digest")
                if status != 200 and status != 404:
                    raise UpstreamUnavailable(f"the upstream answered {status} to HEAD of {name}:{tag}", "status")
        except (UpstreamUnavailable, UpstreamRateLimited) as failure:
            if cached is None:
                self.events.miss(MANIFEST)
                raise
            log.warning("serving %s:%s from the cache: %s", name, tag, failure)
            self.events.hit(MANIFEST)
            return cached
        if status == 404:
            self.events.miss(MANIFEST)
            raise ManifestUnknown(f"unknown tag {tag!r}", detail={"tag": tag})
        digest = parse_digest(named) if named and is_digest(named) else None
        if digest is not None and await repository.has_manifest(digest):
            self.events.hit(MANIFEST)
        else:
            self.events.miss(MANIFEST)
            digest = await self._fetch_manifest(repository, tag, digest)
        if digest != cached:
            await repository.tag(tag, digest)
        await self.registry.driver.put_content(paths.proxy_tag_checked(name, tag), time_stamp())
        return digest

    async def _fetch_manifest(self, repository: Repository, reference: str, expected: Digest | None) -> Digest:
        """GET a manifest from the upstream, check it is ``expected`` (when known), and store it."""
        name, remote = repository.name, self.upstream_name(repository.name)
        path = f"/v2/{remote}/manifests/{reference}"
        with self._exchange(MANIFEST, name, reference):
            async with self.upstream.request("GET", path, pull_scope(remote), {"Accept": MANIFEST_ACCEPT}) as answer:
                if answer.status == 404:
                    raise ManifestUnknown(detail={"name": name, "reference": reference})
                if answer.status != 200:
                    raise UpstreamUnavailable(f"the upstream answered {answer.status} to GET {path}", "status")
                content = await _read_at_most(self.upstream.body(answer), manifests.MAX_MANIFEST_BYTES, path)
                content_type = answer.headers.get("Content-Type")
            self.events.upstream_bytes(MANIFEST, len(content))
            actual = Digest.of(content, expected.algorithm if expected else "sha256")
            if expected is not None and actual != expected:
                raise DigestMismatch("the upstream's manifest does not match its digest", detail={"expected": str(expected), "actual": str(actual)})
            await repository.store_manifest(content, manifests.parse(content, content_type), actual)
        self._audit_fetch(MANIFEST, name, reference, digest=actual, size=len(content))
        if (fetched := FETCHED.get()) is not None:
            fetched.manifests += 1
        return actual

    # Tags

    async def tags(self, name: str, query: Mapping[str, str]) -> TagPage | None:
        """The upstream's page of ``name``'s tags for the pagination ``query`` (``n``, ``last``), or
        ``None`` when it knows no such repository; :class:`UpstreamUnavailable` when it cannot say."""
        remote = self.upstream_name(name)
        path = f"/v2/{remote}/tags/list"
        asked = f"{path}?{urlencode(query)}" if query else path
        async with self.upstream.request("GET", asked, pull_scope(remote)) as answer:
            if answer.status == 404:
                return None
            if answer.status != 200:
                raise UpstreamUnavailable(f"the upstream answered {answer.status} to GET {path}")
            content = await _read_at_most(self.upstream.body(answer), MAX_TAG_LIST_BYTES, path)
            link = answer.headers.get("Link")
        try:
            tags = orjson.loads(content).get("tags") or []
        except (orjson.JSONDecodeError, AttributeError):
            tags = None
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise UpstreamUnavailable(f"the upstream's answer to GET {path} is not a tag list")
        return TagPage(tags, _next_query(link))

    # Blobs

    async def blob_size(self, name: str, digest: Digest) -> int | None:
        """What the upstream says of a blob not cached here (HEAD): its size, or :class:`BlobUnknown`."""
        remote = self.upstream_name(name)
        path = f"/v2/{remote}/blobs/{digest}"
        with self._exchange(BLOB):
            async with self.upstream.request("HEAD", path, pull_scope(remote)) as answer:
                if answer.status == 404:
                    raise BlobUnknown(detail={"digest": str(digest)})
                if answer.status != 200:
                    raise UpstreamUnavailable(f"the upstream answered {answer.status} to HEAD {path}", "status")
                return answer.content_length

    async def blob(self, name: str, digest: Digest) -> Download:
        """The fetch of a blob not cached in ``name``: joined if one runs, else started; once the upstream has answered."""
        self.events.miss(BLOB)
        key = (name, digest)
        download = self._downloads.get(key)
        if download is None:
            download = self._downloads[key] = Download(paths.proxy_download(uuid.uuid4().hex))
            self._start(self._fetch_blob(name, digest, download), lambda: self._downloads.pop(key, None))
        await download.started.wait()
        if download.failure is not None:
            raise download.failure
        return download

    def _start(self, work: Coroutine[Any, Any, None], done: Callable[[], object]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def ended(_: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            done()

        task.add_done_callback(ended)

    async def _fetch_blob(self, name: str, digest: Digest, download: Download) -> None:
        driver = self.registry.driver
        lock = paths.proxy_fetch_lock(digest)
        try:
            try:
                await driver.stat(lock)
            except PathNotFound:
                await driver.put_content(lock, b"")
            async with driver.lock(lock):
                if await self.registry.blobs.exists(digest):  # stored by another worker, or for another repository
                    download.size = await self.blob_size(name, digest)  # the upstream must hold it in this one
                    await self._stored(name, digest, download)
                else:
                    await self._download(name, digest, download)
        except Exception as failure:
            if not isinstance(failure, (BlobUnknown, UpstreamUnavailable, UpstreamRateLimited)):
                log.warning("fetching %s of %s from the upstream failed: %s", digest, name, failure, exc_info=True)
            await download.fail(failure)

    async def _download(self, name: str, digest: Digest, download: Download) -> None:
        driver = self.registry.driver
        remote = self.upstream_name(name)
        path = f"/v2/{remote}/blobs/{digest}"
        with self._exchange(BLOB, name, str(digest)):
            async with self.upstream.request("GET", path, pull_scope(remote)) as answer:
                if answer.status == 404:
                    raise BlobUnknown(detail={"digest": str(digest)})
                if answer.status != 200:
                    raise UpstreamUnavailable(f"the upstream answered {answer.status} to GET {path}", "status")
                download.size = answer.content_length
                writer = await driver.writer(download.path, commit_awaited=False)  # clients have their bytes once verified
                writer.expect(download.size)
                download.started.set()
                try:
                    hasher = hashlib.new(digest.algorithm)
                    committed = driver.local_file(download.path) is None
                    await _stream_into(
                        self.upstream.body(answer), writer, hasher, download, COMMITTED_STEP if committed else STREAM_STEP, committed,
                        functools.partial(self.events.upstream_bytes, BLOB),
                    )
                    if download.size is not None and writer.size != download.size:
                        raise UpstreamUnavailable(f"the upstream sent {writer.size} of {download.size} bytes of {digest}", "broken")
                    actual = Digest(digest.algorithm, hasher.hexdigest())
                    if actual != digest:
                        raise DigestMismatch("the upstream's blob does not match its digest", detail={"expected": str(digest), "actual": str(actual)})
                    await download.verify()  # before the flush: the client's bytes are right, whether or not they are kept
                    await writer.commit()
                except BaseException:
                    await writer.cancel()
                    with contextlib.suppress(PathNotFound):
                        await driver.delete(download.path)
                    raise
                finally:
                    await writer.close()
        await self.registry.blobs.ingest(download.path, digest)
        self._audit_fetch(BLOB, name, str(digest), digest=digest, size=writer.size)
        if (fetched := FETCHED.get()) is not None:
            fetched.blobs += 1
            fetched.blob_bytes += writer.size
        await self._stored(name, digest, download)

    async def _stored(self, name: str, digest: Digest, download: Download) -> None:
        repository = self.registry.repository(name)
        size = await self.registry.blobs.size(digest)
        async with repository.admitting({digest: size}, enforce=False):  # counted, never refused: a pull
            await repository.link_layer(digest)
        download.written = size
        await download.finish(paths.blob_data(digest))
        await self.record_blob_pull(digest)

    async def cached_blob(self, digest: Digest, sending: bool) -> None:
        """A client asks for a blob stored here: a hit when its bytes go out (not a HEAD), and a pull time."""
        if sending:
            self.events.hit(BLOB)
        await self.record_blob_pull(digest)

    # The upstream's failures and fetches, told

    @contextlib.contextmanager
    def _exchange(self, kind: Kind, name: str | None = None, reference: str | None = None) -> Iterator[None]:
        """Tells of a failure of the upstream in the block; with ``name``, the block is a fetch, audited when it fails."""
        try:
            yield
        except UPSTREAM_FAILURES as failure:
            reason = failure_reason(failure)
            self.events.upstream_error(kind, reason)
            if name is not None:
                self._audit_fetch(kind, name, reference, failed=reason)
            raise

    def _audit_fetch(self, kind: Kind, name: str, reference: str | None, **fields: object) -> None:
        audit("proxy_fetch", None, upstream=self.upstream.remote_url, kind=kind, repository=name, reference=reference, **fields)

    # Pull times

    async def record_blob_pull(self, digest: Digest) -> None:
        await self._stamp_pull(paths.proxy_blob_pulled(digest))

    async def _stamp_pull(self, path: str) -> None:
        now = time.monotonic()
        last = self._stamped.get(path)
        if last is not None and now - last < self._stamp_interval:
            return
        self._stamped[path] = now
        await self.registry.driver.put_content(path, time_stamp())


def _next_query(link: str | None) -> dict[str, str] | None:
    """The ``n`` and ``last`` of a ``Link: <...>; rel="next"`` header: the rest of its URL is the upstream's."""
    match = _NEXT_LINK.search(link or "")
    if match is None:
        return None
    query = parse_qs(urlsplit(match.group(1)).query)
    kept: dict[str, str] = {key: query[key][0] for key in ("n", "last") if key in query}
    return kept or None


async def _read_at_most(body: AsyncIterator[bytes], limit: int, what: str) -> bytes:
    content = bytearray()
    async for chunk in body:
        content += chunk
        if len(content) > limit:
            raise UpstreamUnavailable(f"the upstream's answer to {what} is larger than {limit} bytes", "too_large")
    return bytes(content)


async def _stream_into(
    body: AsyncIterator[bytes], writer: FileWriter, hasher: hashlib._Hash, download: Download, step: int, commit: bool,
    received: Callable[[int], None],
) -> None:
    """Write and hash ``body`` in steps of ``step`` bytes, in threads, while the next step is received
    (and sent to readers from memory); after each step readers may read it from the file (committed
    first where ``commit``). ``received`` is told of every chunk's size. Nothing of a failed fetch is kept."""

    async def observed() -> AsyncIterator[bytes]:
        async for chunk in body:
            received(len(chunk))
            await download.receive(chunk)
            yield chunk

    async def stepped() -> None:
        if commit:
            await writer.commit()
        await download.advance(writer.size)

    await pump(observed(), writer, hasher, step, stepped, keep_partial=False, steps_ahead=DOWNLOAD_STEPS_AHEAD)
