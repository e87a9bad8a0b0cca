"""A quota's record reconciled while pushes and deletes go on: the count from the layout, with
what changed meanwhile applied on top (the API's side is in tests/api/test_quotas.py)."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.quotas import QuotaRule, Quotas
from dockyard.storage.registry import Registry


async def linked_blob(registry: Registry, name: str, data: bytes) -> Digest:
    """Store and link a blob as an upload's finish does: reserved first."""
    digest = Digest.of(data)
    repository = registry.repository(name)
    await registry.driver.put_content(paths.blob_data(digest), data)
    async with repository.admitting({digest: len(data)}):
        await repository.link_layer(digest)
    return digest


async def test_a_reconcile_keeps_the_changes_made_while_it_counts(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(FilesystemDriver(tmp_path), quotas=[QuotaRule("team/*", 10_000)])
    kept = b"kept" * 100
    await linked_blob(registry, "team/a", kept)
    dropped = await linked_blob(registry, "team/a", b"dropped" * 100)
    counted, resume = asyncio.Event(), asyncio.Event()
    count = Quotas._count

    async def count_then_wait(self: Quotas, rule: QuotaRule):  # the layout is read before the changes below
        found = await count(self, rule)
        counted.set()
        await resume.wait()
        return found

    monkeypatch.setattr(Quotas, "_count", count_then_wait)
    reconciling = asyncio.ensure_future(registry.quotas.reconcile())
    await counted.wait()
    pushed = b"pushed" * 100
    await linked_blob(registry, "team/b", pushed)
    await registry.repository("team/a").unlink_layer(dropped)
    resume.set()
    [use] = await reconciling
    assert (use.used_bytes, use.blobs) == (len(kept) + len(pushed), 2)
    assert [use.used_bytes for use in await registry.quotas.uses()] == [len(kept) + len(pushed)]
