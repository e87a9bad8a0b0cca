"""A quota's count in storage: what a push reads and writes of it whatever the rule's size, its
first count (and the first quotas' record it replaces), and its reconcile while pushes and deletes
go on (the API's side is in tests/api/test_quotas.py)."""

from __future__ import annotations

import asyncio
import builtins
import pathlib
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.driver import FileInfo, PathNotFound
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.quotas import QuotaRule, Quotas
from dockyard.storage.registry import Registry

TEAM = QuotaRule("team/*", 1 << 40)


class CountingDriver(InMemoryDriver):
    """Counts the objects read, listed and written, and the bytes read and written."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def get_content(self, path: str) -> bytes:
        content = await super().get_content(path)
        self.calls.update({"reads": 1, "bytes read": len(content)})
        return content

    def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        self.calls["reads"] += 1
        return super().read(path, offset, length)

    async def stat(self, path: str) -> FileInfo:
        self.calls["reads"] += 1
        return await super().stat(path)

    async def list(self, path: str) -> builtins.list[str]:
        self.calls["lists"] += 1
        return await super().list(path)

    async def put_content(self, path: str, content: bytes) -> None:
        self.calls.update({"writes": 1, "bytes written": len(content)})
        await super().put_content(path, content)

    async def delete(self, path: str) -> None:
        self.calls["writes"] += 1
        await super().delete(path)


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


async def lay_out(driver: InMemoryDriver, name: str, count: int) -> None:
    """``count`` blobs linked by ``name``, written straight into the layout (as registry:2 would)."""
    for number in range(count):
        data = f"{name} {number}".encode()
        await driver.put_content(paths.blob_data(Digest.of(data)), data)
        await driver.put_content(paths.layer_link(name, Digest.of(data)), str(Digest.of(data)).encode())


async def push_costs(counted: int) -> tuple[Counter[str], Counter[str]]:
    """What a push of three blobs (one counted already), then a delete of one, do in storage under
    a rule counting ``counted`` blobs."""
    driver = CountingDriver()
    await lay_out(driver, "team/big", counted)
    registry = Registry(driver, quotas=[TEAM])
    await registry.quotas.prepare()
    pushed = {Digest.of(data): len(data) for data in (b"first", b"second", b"team/big 0")}
    for data in (b"first", b"second"):
        await driver.put_content(paths.blob_data(Digest.of(data)), data)
    repository = registry.repository("team/app")
    driver.calls.clear()
    async with repository.admitting(pushed):
        for digest in pushed:
            await repository.link_layer(digest)
    push = driver.calls.copy()
    driver.calls.clear()
    await repository.unlink_layer(Digest.of(b"first"))
    delete = driver.calls.copy()
    [use] = await registry.quotas.uses()
    assert (use.used_bytes, use.blobs) == (sum(len(f"team/big {number}") for number in range(counted)) + len(b"second"), counted + 1)
    return push, delete


def objects(calls: Counter[str]) -> dict[str, int]:
    return {kind: calls[kind] for kind in ("reads", "lists", "writes")}


async def test_a_push_reads_and_writes_as_much_whatever_the_rule_counts() -> None:
    (small_push, small_delete), (push, delete) = await push_costs(3), await push_costs(3000)
    assert (objects(small_push), objects(small_delete)) == (objects(push), objects(delete))
    # The lock, the total and three markers; three blobs' data and links; two markers and the total written.
    assert push["lists"] == 0 and push["reads"] <= 8, push
    assert push["bytes read"] + push["bytes written"] < 2000, push
    assert delete["lists"] == 0 and delete["reads"] <= 6, delete
    assert delete["bytes read"] + delete["bytes written"] < 2000, delete


async def test_the_first_quotas_record_is_replaced_by_a_count_from_the_layout() -> None:
    driver = InMemoryDriver()
    await lay_out(driver, "team/a", 3)
    await lay_out(driver, "team/b", 2)
    # What the first quotas kept: one record per rule (here a wrong one, as a crash could leave).
    old = paths.quota_record_before_markers(TEAM.id)
    await driver.put_content(old, b'{"blobs":{},"journals":{}}')
    registry = Registry(driver, quotas=[TEAM])
    await registry.quotas.prepare()
    [use] = await registry.quotas.uses()
    assert (use.used_bytes, use.blobs) == (3 * len(b"team/a 0") + 2 * len(b"team/b 0"), 5)
    with pytest.raises(PathNotFound):
        await driver.get_content(old)


async def test_a_reconcile_rewrites_only_the_markers_that_differ_from_the_layout() -> None:
    driver = CountingDriver()
    await lay_out(driver, "team/a", 300)
    registry = Registry(driver, quotas=[TEAM])
    await registry.quotas.prepare()
    lost = Digest.of(b"team/a 7")
    await driver.delete(paths.quota_blob(TEAM.id, lost))
    await driver.put_content(paths.quota_total(TEAM.id), b'{"used":1,"blobs":1,"reconciles":{}}')
    driver.calls.clear()
    [use] = await registry.quotas.reconcile()
    assert (use.used_bytes, use.blobs) == (sum(len(f"team/a {number}") for number in range(300)), 300)
    # The total as the count begins and as it ends, and the one marker lost.
    assert driver.calls["writes"] == 3
    assert await driver.get_content(paths.quota_blob(TEAM.id, lost)) == b'{"size":8,"repositories":["team/a"]}'


async def test_a_push_dying_between_total_and_markers_over_counts_until_a_reconcile(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = InMemoryDriver()
    await lay_out(driver, "team/a", 2)
    registry = Registry(driver, quotas=[TEAM])
    counted = [use.used_bytes for use in await registry.quotas.uses()]
    data = b"pushed"
    await driver.put_content(paths.blob_data(Digest.of(data)), data)
    put_content = driver.put_content

    async def markers_fail(path: str, content: bytes) -> None:
        if path.startswith(paths.quota_blobs(TEAM.id)):
            raise OSError("the storage went away")
        await put_content(path, content)

    monkeypatch.setattr(driver, "put_content", markers_fail)
    with pytest.raises(OSError):
        async with registry.repository("team/a").admitting({Digest.of(data): len(data)}):
            pytest.fail("admitted without its marker")
    assert [use.used_bytes for use in await registry.quotas.uses()] == [counted[0] + len(data)]
    monkeypatch.undo()
    assert [use.used_bytes for use in await registry.quotas.reconcile()] == counted
    await linked_blob(registry, "team/a", data)
    assert [use.used_bytes for use in await registry.quotas.uses()] == [counted[0] + len(data)]
