"""The acceptance test of issue 9: pushes in a loop from several clients against a running
Dockyard while the collector runs again and again; every acknowledged image pulls intact."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import httpx
import pytest

from dockyard.maintenance.gc import Collector, Options
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.registry import Registry
from tests.maintenance.pushing import Pushed, push_image
from tests.support.images import OCI_MANIFEST

CLIENTS = 4
REPOSITORIES = ("team/app", "team/base", "solo")
TAGS_PER_CLIENT = 3
SHARED_LAYERS = [f"shared layer {n}\n".encode() * (200 + n) for n in range(6)]
MIN_COLLECTIONS = 20
GRACE_SECONDS = 1.0  # short for speed; a refused push is retried, an acknowledged one must survive


@dataclass
class Tally:
    acknowledged: int = 0
    refused: int = 0
    deleted: int = 0
    tags: dict[tuple[str, str], Pushed] = field(default_factory=dict)
    garbage: list[bytes] = field(default_factory=list)


async def _client(url: str, number: int, rounds: int, tally: Tally) -> None:
    rng = random.Random(number)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for round_number in range(rounds):
            repository = rng.choice(REPOSITORIES)
            tag = f"c{number}-t{rng.randrange(TAGS_PER_CLIENT)}"
            # Layers of deleted images are garbage the collector is after: reusing them
            # (HEAD says the blob is there, so it is not uploaded again) races with it.
            layers = SHARED_LAYERS + tally.garbage[-6:]
            pushed = await push_image(client, repository, tag, f"client {number} round {round_number}".encode(), rng, layers)
            if pushed is None:
                # Refused: the client is told and pushes again; the tag names what it named before.
                tally.refused += 1
                await _assert_tag_names(client, repository, tag, tally.tags.get((repository, tag)))
                continue
            tally.acknowledged += 1
            tally.tags[(repository, tag)] = pushed
            if rng.random() < 0.25:  # garbage: delete one of this client's images
                key = rng.choice(sorted(key for key in tally.tags if key[1].startswith(f"c{number}-")))
                victim = tally.tags.pop(key)
                tally.garbage.extend(data for data in victim.blobs.values() if data.startswith(b"client "))
                deleted = await client.delete(f"/v2/{victim.repository}/manifests/{victim.digest}")
                assert deleted.status_code == 202, deleted.text
                tally.deleted += 1
            await asyncio.sleep(rng.random() * 0.05)


async def _assert_tag_names(client: httpx.AsyncClient, repository: str, tag: str, pushed: Pushed | None) -> None:
    response = await client.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    if pushed is None:  # never acknowledged, or its image deleted since
        assert response.status_code == 404, (repository, tag, response.text)
    else:
        assert (response.status_code, response.content) == (200, pushed.manifest), (repository, tag, response.text)


async def _collect_until(done: asyncio.Event, registry: Registry, reports: list) -> None:
    while not done.is_set() or len(reports) < MIN_COLLECTIONS:
        options = Options(delete_untagged=len(reports) % 2 == 0, grace_period=GRACE_SECONDS)
        reports.append(await Collector(registry, options).run())
        await asyncio.sleep(0.05)


async def _broken(url: str, tally: Tally) -> list[str]:
    broken = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for (repository, tag), pushed in sorted(tally.tags.items()):
            response = await client.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            if response.status_code != 200 or response.content != pushed.manifest:
                broken.append(f"{repository}:{tag} manifest {response.status_code}")
                continue
            for digest, data in pushed.blobs.items():
                blob = await client.get(f"/v2/{repository}/blobs/{digest}", follow_redirects=True)
                if blob.status_code != 200 or blob.content != data:
                    broken.append(f"{repository}:{tag} blob {digest} {blob.status_code}")
    return broken


@pytest.mark.slow
def test_pushes_survive_collections_running_alongside(start_server, tmp_path) -> None:
    server = start_server()
    registry = Registry(FilesystemDriver(tmp_path / "root"))
    tally, reports = Tally(), []

    async def scenario() -> list[str]:
        done = asyncio.Event()
        collector = asyncio.ensure_future(_collect_until(done, registry, reports))
        await asyncio.gather(*(_client(server.url, number, 40, tally) for number in range(CLIENTS)))
        # Let the last pushes age past the grace period under a few more collections.
        await asyncio.sleep(GRACE_SECONDS * 2)
        done.set()
        await collector
        try:
            return await _broken(server.url, tally)
        finally:
            await registry.close()

    started = time.monotonic()
    broken = asyncio.run(scenario())
    removed_blobs = sum(len(report.blobs_removed) for report in reports)
    removed_manifests = sum(len(report.manifests_removed) for report in reports)
    print(
        f"{len(reports)} collections in {time.monotonic() - started:.1f}s; {tally.acknowledged} pushes acknowledged, "
        f"{tally.refused} refused, {tally.deleted} deleted; {removed_blobs} blobs and {removed_manifests} manifests "
        f"collected, {sum(report.put_back for report in reports)} put back; {len(tally.tags)} tagged images checked"
    )
    assert broken == []
    assert len(reports) >= MIN_COLLECTIONS
    assert tally.acknowledged > 100 and len(tally.tags) > 10
    # The grace period keeps uploads waiting for their manifest: few pushes are refused.
    assert tally.refused <= tally.acknowledged // 5
    assert removed_blobs > 0 and removed_manifests > 0  # the collector had garbage to take meanwhile
