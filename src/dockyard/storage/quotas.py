"""Storage quotas: per rule, the blobs linked by the repositories its glob matches, each counted once.

Each rule's count is kept in storage (see :mod:`dockyard.storage.paths`) as one small marker per
counted blob (``quotas/<id>/blobs/<alg>/<hex>``: its size and the repositories linking it) and
one total (``quotas/<id>/total``: the bytes and blobs counted, and the reconciles counting). They
are read and written under the rule's lock (the driver's lock on ``quotas/<id>/lock``: ``flock``
on a filesystem, a conditionally written lock object on S3; Redis's lock as well where the
driver locks within one process only), so every worker and replica sharing the storage keeps
one count, and a restart finds it as it was. A push reads and writes the total and its own
blobs' markers only, however many blobs the rule counts.

A push reserves its blobs before it stores them (:meth:`Quotas.admitting`): of two pushes racing
for the last bytes, the one that takes the lock second finds them taken and is refused. A push
that fails gives its reservation back; a delete releases what its repository no longer links.
A reservation writes the total before the markers, a release the markers before the total: a
process dying between the two leaves the total over (never under) what the markers count, until
the next reconcile.

A missing total (a new rule, storage written before quotas, or the single record of the first
quotas) is counted from the layout, under the lock, at its first use. ``dockyard du`` and
garbage collection reconcile every rule (:meth:`Quotas.reconcile`): counted again from the
layout without the lock, while the total names the blobs pushes and deletes change meanwhile;
then, under the lock, the markers of the others are rewritten where the count differs, and the
total is the sum of both.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dockyard import config
from dockyard.concurrency import gather_bounded
from dockyard.errors import DigestInvalid, QuotaExceeded
from dockyard.maintenance import inventory
from dockyard.reference import Digest, parse_digest
from dockyard.sizes import human_size
from dockyard.storage import paths
from dockyard.storage.cache import StorageCache
from dockyard.storage.driver import PathNotFound, StorageDriver

JOURNAL_LIFETIME = 24 * 3600.0
"""A reconcile still counting after this long has died: what it was told is dropped."""

LinkCheck = Callable[[Digest], Awaitable[bool]]
"""Whether the repository links the blob now (a released blob it still links stays counted)."""

@dataclass(frozen=True)
class QuotaRule:
    repositories: str
    """a glob over repository names"""
    max_bytes: int

    @property
    def id(self) -> str:
        """Names the rule's folder: the same glob keeps its count when its limit changes."""
        return hashlib.sha256(self.repositories.encode()).hexdigest()[:32]

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.repositories)

    @classmethod
    def all_of(cls, quotas: Sequence[config.Quota]) -> tuple[QuotaRule, ...]:
        """The rules of the ``dockyard.quotas`` settings."""
        return tuple(cls(quota.repositories, quota.max_bytes) for quota in quotas)


@dataclass(frozen=True)
class QuotaUse:
    rule: QuotaRule
    used_bytes: int
    blobs: int


@dataclass(frozen=True)
class _Marker:
    """A counted blob: its size and the repositories (of those the rule matches) linking it."""

    size: int
    repositories: frozenset[str]

    @classmethod
    def parse(cls, content: bytes) -> _Marker:
        document = json.loads(content)
        return cls(int(document["size"]), frozenset(document["repositories"]))

    def to_bytes(self) -> bytes:
        return json.dumps({"size": self.size, "repositories": sorted(self.repositories)}, separators=(",", ":")).encode()


_UNCOUNTED = _Marker(0, frozenset())


@dataclass
class _Total:
    """A rule's sums over its markers, and the reconciles counting meanwhile: token → (start
    time, the blobs whose markers pushes and deletes changed since)."""

    used: int
    blobs: int
    reconciles: dict[str, tuple[float, set[Digest]]] = field(default_factory=dict)

    @classmethod
    def of(cls, markers: Iterable[_Marker], reconciles: dict[str, tuple[float, set[Digest]]]) -> _Total:
        sizes = [marker.size for marker in markers]
        return cls(sum(sizes), len(sizes), reconciles)

    @classmethod
    def parse(cls, content: bytes) -> _Total:
        document = json.loads(content)
        return cls(int(document["used"]), int(document["blobs"]), {
            token: (float(reconcile["started"]), {parse_digest(digest) for digest in reconcile["changed"]})
            for token, reconcile in document["reconciles"].items()
        })

    def to_bytes(self) -> bytes:
        now = time.time()
        return json.dumps({
            "used": self.used, "blobs": self.blobs,
            "reconciles": {
                token: {"started": started, "changed": sorted(map(str, changed))}
                for token, (started, changed) in self.reconciles.items() if now - started < JOURNAL_LIFETIME
            },
        }, separators=(",", ":")).encode()

    def change(self, digests: Iterable[Digest], used: int, blobs: int) -> None:
        """Add ``used`` bytes and ``blobs`` (either may be negative), telling each reconcile which
        markers changed."""
        self.used += used
        self.blobs += blobs
        for _, changed in self.reconciles.values():
            changed.update(digests)


class Quotas:
    def __init__(self, driver: StorageDriver, cache: StorageCache, rules: Sequence[QuotaRule] = ()) -> None:
        self.driver = driver
        self.cache = cache
        self.rules = tuple(rules)

    def matching(self, name: str) -> list[QuotaRule]:
        return [rule for rule in self.rules if rule.matches(name)]

    @contextlib.asynccontextmanager
    async def admitting(
        self, name: str, blobs: Mapping[Digest, int], linked: LinkCheck, enforce: bool = True,
    ) -> AsyncIterator[None]:
        """Reserve ``blobs`` (digest → size) for ``name`` under every rule matching it while the block
        links them; :class:`QuotaExceeded` first if one of them would go over its limit (unless not
        ``enforce``: a pull-through cache's blobs are counted, never refused). If the block fails,
        what was reserved is given back, except what ``name`` links after all."""
        reserved: list[tuple[QuotaRule, list[Digest]]] = []
        try:
            for rule in self.matching(name):
                reserved.append((rule, await self._reserve(rule, name, blobs, enforce)))
            yield
        except BaseException:
            for rule, digests in reserved:
                await self._release(rule, name, digests, linked)
            raise

    async def release(self, name: str, digests: Collection[Digest], linked: LinkCheck) -> None:
        """Stop counting for ``name`` those of ``digests`` it no longer links (after a delete)."""
        for rule in self.matching(name):
            await self._release(rule, name, digests, linked)

    async def prepare(self) -> None:
        """Make each rule's lock file, and count each rule never counted: before serving, so that
        no push waits for a count and no two processes make one lock file at once."""
        for rule in self.rules:
            async with self._locked(rule):
                await self._total(rule)

    async def uses(self) -> list[QuotaUse]:
        """Each rule's use as its total says (replaced whole: read without the lock)."""
        found = []
        for rule in self.rules:
            total = await self._stored_total(rule)
            if total is None:
                async with self._locked(rule):
                    total = await self._total(rule)
            found.append(QuotaUse(rule, total.used, total.blobs))
        return found

    async def reconcile(self) -> list[QuotaUse]:
        """Count every rule again from the layout and rewrite what differs; each rule's use, as counted."""
        return [await self.reconcile_rule(rule) for rule in self.rules]

    async def reconcile_rule(self, rule: QuotaRule) -> QuotaUse:
        """Count ``rule`` without holding its lock (pushes go on), the total naming the blobs they change meanwhile."""
        token = uuid.uuid4().hex
        async with self._locked(rule):
            total = await self._stored_total(rule)
            if total is None:  # counted now, under the lock
                total = await self._recount(rule)
                return QuotaUse(rule, total.used, total.blobs)
            total.reconciles[token] = (time.time(), set())
            await self._save_total(rule, total)
        try:
            counted = await self._count(rule)
            stored = await self._markers(rule, await inventory.digests_under(self.driver, paths.quota_blobs(rule.id)))
        except BaseException:
            async with self._locked(rule):
                total = await self._total(rule)
                if total.reconciles.pop(token, None) is not None:
                    await self._save_total(rule, total)
            raise
        async with self._locked(rule):
            total = await self._total(rule)
            _, changed = total.reconciles.pop(token, (0.0, set()))
            # A marker changed since the count began stays as it is now; the others become what was
            # counted (stored ones read after the token was saved: as they are now, unless changed).
            recounted = {digest: marker for digest, marker in counted.items() if digest not in changed}
            await self._save_markers(
                rule, {digest: marker for digest, marker in recounted.items() if stored.get(digest) != marker},
                removed=[digest for digest in stored if digest not in counted and digest not in changed],
            )
            total = _Total.of([*recounted.values(), *(await self._markers(rule, changed)).values()], total.reconciles)
            await self._save_total(rule, total)
        return QuotaUse(rule, total.used, total.blobs)

    async def _reserve(self, rule: QuotaRule, name: str, blobs: Mapping[Digest, int], enforce: bool) -> list[Digest]:
        async with self._locked(rule):
            total = await self._total(rule)
            markers = await self._markers(rule, blobs)
            new = [digest for digest in blobs if name not in markers.get(digest, _UNCOUNTED).repositories]
            added = [digest for digest in new if digest not in markers]
            growth = sum(blobs[digest] for digest in added)
            used = total.used
            if enforce and growth and used + growth > rule.max_bytes:
                raise QuotaExceeded(
                    f"storage quota {rule.repositories!r} exceeded: {human_size(used)} / {human_size(rule.max_bytes)} used "
                    f"({used} / {rule.max_bytes} bytes), the push needs {growth} bytes more",
                    detail={"repositories": rule.repositories, "used": used, "limit": rule.max_bytes, "needed": growth},
                )
            if new:
                total.change(new, growth, len(added))
                await self._save_total(rule, total)  # first: dying before the markers leaves an over-count
                await self._save_markers(rule, {
                    digest: _Marker(marker.size, marker.repositories | {name})
                    for digest in new for marker in [markers.get(digest, _Marker(blobs[digest], frozenset()))]
                })
            return new

    async def _release(self, rule: QuotaRule, name: str, digests: Collection[Digest], linked: LinkCheck) -> None:
        async with self._locked(rule):
            total = await self._total(rule)
            markers = await self._markers(rule, digests)
            gone = [
                digest for digest, marker in markers.items() if name in marker.repositories and not await linked(digest)
            ]
            if not gone:
                return
            left = {digest: _Marker(markers[digest].size, markers[digest].repositories - {name}) for digest in gone}
            emptied = [digest for digest, marker in left.items() if not marker.repositories]
            # The markers first: dying before the total leaves an over-count.
            await self._save_markers(rule, {digest: left[digest] for digest in gone if digest not in emptied}, removed=emptied)
            total.change(gone, -sum(left[digest].size for digest in emptied), -len(emptied))
            await self._save_total(rule, total)

    @contextlib.asynccontextmanager
    async def _locked(self, rule: QuotaRule) -> AsyncIterator[None]:
        lock = paths.quota_lock(rule.id)
        await self.driver.create(lock, b"")
        # Redis's lock (if there is one) where the driver's holds within one process only.
        shared = contextlib.nullcontext() if self.driver.locks_across_machines else self.cache.lock(f"quota:{rule.id}")
        async with shared, self.driver.lock(lock):
            yield

    async def _stored_total(self, rule: QuotaRule) -> _Total | None:
        try:
            return _Total.parse(await self.driver.get_content(paths.quota_total(rule.id)))
        except (PathNotFound, ValueError, KeyError, TypeError, DigestInvalid):  # none, or unreadable: counted again
            return None

    async def _total(self, rule: QuotaRule) -> _Total:
        """The rule's total, counted from the layout if there is none (call with the lock held)."""
        return await self._stored_total(rule) or await self._recount(rule)

    async def _save_total(self, rule: QuotaRule, total: _Total) -> None:
        await self.driver.put_content(paths.quota_total(rule.id), total.to_bytes())

    async def _markers(self, rule: QuotaRule, digests: Iterable[Digest]) -> dict[Digest, _Marker]:
        """The markers of those of ``digests`` the rule counts (an unreadable one as none: counted again)."""

        async def read(digest: Digest) -> _Marker | None:
            try:
                return _Marker.parse(await self.driver.get_content(paths.quota_blob(rule.id, digest)))
            except (PathNotFound, ValueError, KeyError, TypeError):
                return None

        wanted = list(dict.fromkeys(digests))
        found = await gather_bounded(wanted, read, inventory.SMALL_READS_AT_ONCE)
        return {digest: marker for digest, marker in zip(wanted, found, strict=True) if marker is not None}

    async def _save_markers(self, rule: QuotaRule, written: Mapping[Digest, _Marker], removed: Iterable[Digest] = ()) -> None:
        async def write(digest: Digest) -> None:
            await self.driver.put_content(paths.quota_blob(rule.id, digest), written[digest].to_bytes())

        async def remove(digest: Digest) -> None:
            with contextlib.suppress(PathNotFound):
                await self.driver.delete(paths.quota_blob(rule.id, digest))

        await gather_bounded(written, write, inventory.SMALL_READS_AT_ONCE)
        await gather_bounded(removed, remove, inventory.SMALL_READS_AT_ONCE)

    async def _recount(self, rule: QuotaRule) -> _Total:
        """Count the rule from the layout and store markers and total anew (call with the lock held)."""
        counted = await self._count(rule)
        stale = [digest for digest in await inventory.digests_under(self.driver, paths.quota_blobs(rule.id)) if digest not in counted]
        await self._save_markers(rule, counted, removed=stale)
        total = _Total.of(counted.values(), {})
        await self._save_total(rule, total)  # last: a count that died before it is made again
        with contextlib.suppress(PathNotFound):  # the first quotas' single record, now replaced
            await self.driver.delete(paths.quota_record_before_markers(rule.id))
        return total

    async def _count(self, rule: QuotaRule) -> dict[Digest, _Marker]:
        """What the layout says: the blobs with data that the matched repositories link (layers and manifests)."""
        names = [name for name in await inventory.repository_names(self.driver) if rule.matches(name)]
        holders: dict[Digest, set[str]] = {}
        for found in await inventory.read_repositories(self.driver, names):
            for digest in found.layers | found.revisions:
                holders.setdefault(digest, set()).add(found.name)
        return {
            blob.digest: _Marker(blob.size, frozenset(holders[blob.digest]))
            for blob in await inventory.blob_infos(self.driver, holders)
        }

