"""Storage quotas: per rule, the blobs linked by the repositories its glob matches, each counted once.

Each rule's usage is one record in storage (``dockyard/quotas/<id>/usage``, see
:mod:`dockyard.storage.paths`): every blob it counts, the blob's size and the repositories
linking it. The record is read and rewritten under the rule's lock (the driver's lock on
``dockyard/quotas/<id>/lock``: ``flock`` on a filesystem, a conditionally written lock object
on S3; Redis's lock as well where the driver locks within one process only), so every worker
and replica sharing the storage keeps one count, and a restart finds it as it was.

A push reserves its blobs before it stores them (:meth:`Quotas.admitting`): of two pushes racing
for the last bytes, the one that takes the lock second finds them taken and is refused. A push
that fails gives its reservation back; a delete releases what its repository no longer links.

A missing record (a new rule, or storage written before quotas) is counted from the layout,
under the lock, at its first use. ``dockyard du`` and garbage collection reconcile every record
(:meth:`Quotas.reconcile`): counted again from the layout, then the changes pushes and deletes
made while it was counted (journalled in the record meanwhile) are applied on top.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from dockyard import config
from dockyard.errors import QuotaExceeded
from dockyard.maintenance import inventory
from dockyard.reference import Digest
from dockyard.sizes import human_size
from dockyard.storage import paths
from dockyard.storage.cache import StorageCache
from dockyard.storage.driver import PathNotFound, StorageDriver

JOURNAL_LIFETIME = 24 * 3600.0
"""A reconcile still counting after this long has died: its journal is dropped."""

LinkCheck = Callable[[Digest], Awaitable[bool]]
"""Whether the repository links the blob now (a released blob it still links stays counted)."""

_LINKED, _UNLINKED = "link", "unlink"
_Change = tuple[str, str, str, int]
"""(``link`` or ``unlink``, repository, digest, size)"""


@dataclass(frozen=True)
class QuotaRule:
    repositories: str
    """a glob over repository names"""
    max_bytes: int

    @property
    def id(self) -> str:
        """Names the rule's record: the same glob keeps its count when its limit changes."""
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


class _Record:
    """A rule's count: each blob (by digest) with its size and the repositories linking it, and
    the journals of the reconciles counting meanwhile (token → start time, changes since)."""

    def __init__(self, blobs: dict[str, tuple[int, set[str]]], journals: dict[str, tuple[float, list[_Change]]] | None = None) -> None:
        self.blobs = blobs
        self.journals = journals or {}

    @classmethod
    def parse(cls, content: bytes) -> _Record:
        document = json.loads(content)
        return cls(
            {digest: (entry["size"], set(entry["repositories"])) for digest, entry in document["blobs"].items()},
            {token: (journal["started"], [tuple(change) for change in journal["changes"]]) for token, journal in document["journals"].items()},
        )

    def to_bytes(self) -> bytes:
        now = time.time()
        return json.dumps({
            "blobs": {digest: {"size": size, "repositories": sorted(names)} for digest, (size, names) in self.blobs.items()},
            "journals": {
                token: {"started": started, "changes": changes}
                for token, (started, changes) in self.journals.items() if now - started < JOURNAL_LIFETIME
            },
        }, separators=(",", ":")).encode()

    @property
    def used(self) -> int:
        return sum(size for size, _ in self.blobs.values())

    def holds(self, name: str, digest: str) -> bool:
        return name in self.blobs.get(digest, (0, set()))[1]

    def change(self, change: _Change) -> None:
        """Apply ``change``, and journal it for each reconcile counting meanwhile."""
        self.apply(change)
        for _, changes in self.journals.values():
            changes.append(change)

    def apply(self, change: _Change) -> None:
        kind, name, digest, size = change
        if kind == _LINKED:
            self.blobs.setdefault(digest, (size, set()))[1].add(name)
            return
        size, names = self.blobs.get(digest, (0, set()))
        names.discard(name)
        if not names:
            self.blobs.pop(digest, None)


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
                await self._record(rule)

    async def uses(self) -> list[QuotaUse]:
        """Each rule's use as its record says (a record is replaced whole: read without the lock)."""
        found = []
        for rule in self.rules:
            record = await self._stored(rule)
            if record is None:
                async with self._locked(rule):
                    record = await self._record(rule)
            found.append(QuotaUse(rule, record.used, len(record.blobs)))
        return found

    async def reconcile(self) -> list[QuotaUse]:
        """Count every rule again from the layout and rewrite its record; each rule's use, as counted."""
        return [await self.reconcile_rule(rule) for rule in self.rules]

    async def reconcile_rule(self, rule: QuotaRule) -> QuotaUse:
        """Count ``rule`` without holding its lock (pushes go on), journalling their changes meanwhile."""
        token = uuid.uuid4().hex
        async with self._locked(rule):
            record = await self._stored(rule)
            if record is None:  # counted now, under the lock
                record = await self._record(rule)
                return QuotaUse(rule, record.used, len(record.blobs))
            record.journals[token] = (time.time(), [])
            await self._save(rule, record)
        try:
            counted = await self._count(rule)
        except BaseException:
            async with self._locked(rule):
                record = await self._record(rule)
                if record.journals.pop(token, None) is not None:
                    await self._save(rule, record)
            raise
        async with self._locked(rule):
            record = await self._record(rule)
            _, changes = record.journals.pop(token, (0.0, []))
            for change in changes:
                counted.apply(change)
            counted.journals = record.journals
            await self._save(rule, counted)
        return QuotaUse(rule, counted.used, len(counted.blobs))

    async def _reserve(self, rule: QuotaRule, name: str, blobs: Mapping[Digest, int], enforce: bool) -> list[Digest]:
        async with self._locked(rule):
            record = await self._record(rule)
            new = [digest for digest in blobs if not record.holds(name, str(digest))]
            growth = sum(blobs[digest] for digest in new if str(digest) not in record.blobs)
            used = record.used
            if enforce and growth and used + growth > rule.max_bytes:
                raise QuotaExceeded(
                    f"storage quota {rule.repositories!r} exceeded: {human_size(used)} / {human_size(rule.max_bytes)} used "
                    f"({used} / {rule.max_bytes} bytes), the push needs {growth} bytes more",
                    detail={"repositories": rule.repositories, "used": used, "limit": rule.max_bytes, "needed": growth},
                )
            for digest in new:
                record.change((_LINKED, name, str(digest), blobs[digest]))
            if new:
                await self._save(rule, record)
            return new

    async def _release(self, rule: QuotaRule, name: str, digests: Collection[Digest], linked: LinkCheck) -> None:
        async with self._locked(rule):
            record = await self._record(rule)
            gone = [digest for digest in digests if record.holds(name, str(digest)) and not await linked(digest)]
            for digest in gone:
                record.change((_UNLINKED, name, str(digest), 0))
            if gone:
                await self._save(rule, record)

    @contextlib.asynccontextmanager
    async def _locked(self, rule: QuotaRule) -> AsyncIterator[None]:
        lock = paths.quota_lock(rule.id)
        await self.driver.create(lock, b"")
        # Redis's lock (if there is one) where the driver's holds within one process only.
        shared = contextlib.nullcontext() if self.driver.locks_across_machines else self.cache.lock(f"quota:{rule.id}")
        async with shared, self.driver.lock(lock):
            yield

    async def _stored(self, rule: QuotaRule) -> _Record | None:
        try:
            return _Record.parse(await self.driver.get_content(paths.quota_usage(rule.id)))
        except (PathNotFound, ValueError, KeyError, TypeError):  # none, or unreadable: counted again
            return None

    async def _record(self, rule: QuotaRule) -> _Record:
        """The rule's record, counted from the layout and saved if there is none (call with the lock held)."""
        record = await self._stored(rule)
        if record is None:
            record = await self._count(rule)
            await self._save(rule, record)
        return record

    async def _save(self, rule: QuotaRule, record: _Record) -> None:
        await self.driver.put_content(paths.quota_usage(rule.id), record.to_bytes())

    async def _count(self, rule: QuotaRule) -> _Record:
        """What the layout says: the blobs with data that the matched repositories link (layers and manifests)."""
        names = [name for name in await inventory.repository_names(self.driver) if rule.matches(name)]
        holders: dict[Digest, set[str]] = {}
        for found in await inventory.read_repositories(self.driver, names):
            for digest in found.layers | found.revisions:
                holders.setdefault(digest, set()).add(found.name)
        return _Record({str(blob.digest): (blob.size, holders[blob.digest]) for blob in await inventory.blob_infos(self.driver, holders)})
