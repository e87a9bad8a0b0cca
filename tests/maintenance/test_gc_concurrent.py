"""The acceptance test of issue 9: pushes in a loop from several clients against a running
Dockyard while the collector runs again and again; every acknowledged image pulls intact,
and (issue 14) a refused push leaves its tag naming what it named before."""

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


@dataclass(frozen=True)
class Scenario:
    rounds: int
    """pushes per client"""
    grace: float
    untagged_every: int
    """one collection in this many removes untagged manifests"""
    pause: float
    """seconds between collections"""
    gap: float = 0.0
    """at most this many seconds between a push's uploads and its manifest"""


@dataclass
class Tally:
    acknowledged: int = 0
    refused: int = 0
    deleted: int = 0
    tags: dict[tuple[str, str], Pushed] = field(default_factory=dict)
    garbage: list[bytes] = field(default_factory=list)


async def _client(url: str, number: int, scenario: Scenario, tally: Tally) -> None:
    rng = random.Random(number)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for round_number in range(scenario.rounds):
            repository = rng.choice(REPOSITORIES)
            tag = f"c{number}-t{rng.randrange(TAGS_PER_CLIENT)}"
            # Layers of deleted images are garbage the collector is after: reusing them
            # (HEAD says the blob is there, so it is not uploaded again) races with it.
            layers = SHARED_LAYERS + tally.garbage[-6:]
            unique = f"client {number} round {round_number}".encode()
            pushed = await push_image(client, repository, tag, unique, rng, layers, scenario.gap)
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


async def _collect_until(done: asyncio.Event, registry: Registry, reports: list, scenario: Scenario) -> None:
    while not done.is_set() or len(reports) < MIN_COLLECTIONS:
        options = Options(delete_untagged=len(reports) % scenario.untagged_every == 0, grace_period=scenario.grace)
        reports.append(await Collector(registry, options).run())
        await asyncio.sleep(scenario.pause)


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


def _run(server_url: str, registry: Registry, tally: Tally, reports: list, scenario: Scenario) -> list[str]:
    """Clients pushing while collections run; the acknowledged tags that do not pull intact."""

    async def run() -> list[str]:
        done = asyncio.Event()
        collector = asyncio.ensure_future(_collect_until(done, registry, reports, scenario))
        await asyncio.gather(*(_client(server_url, number, scenario, tally) for number in range(CLIENTS)))
        # Let the last pushes age past the grace period under a few more collections.
        await asyncio.sleep(scenario.grace * 2)
        done.set()
        await collector
        try:
            return await _broken(server_url, tally)
        finally:
            await registry.close()

    return asyncio.run(run())


@pytest.mark.slow
def test_pushes_survive_collections_running_alongside(start_server, tmp_path) -> None:
    server = start_server()
    registry = Registry(FilesystemDriver(tmp_path / "root"))
    tally, reports = Tally(), []
    started = time.monotonic()
    broken = _run(server.url, registry, tally, reports, Scenario(rounds=40, grace=GRACE_SECONDS, untagged_every=2, pause=0.05))
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


@pytest.mark.slow
def test_refused_pushes_leave_tags_under_back_to_back_collections_without_grace(start_server, tmp_path) -> None:
    """Issue 14: ``gc --grace-period 0s --delete-untagged`` back to back during pushes refuses
    many of them (their blobs are collected before the manifest comes); each refused push
    leaves its tag as it was, and every acknowledged tag pulls intact at the end."""
    server = start_server()
    registry = Registry(FilesystemDriver(tmp_path / "root"))
    tally, reports = Tally(), []
    # Pushes wait a little before their manifest, so that collections take their blobs meanwhile.
    scenario = Scenario(rounds=30, grace=0.0, untagged_every=1, pause=0.1, gap=0.05)
    broken = _run(server.url, registry, tally, reports, scenario)
    print(f"{len(reports)} collections; {tally.acknowledged} pushes acknowledged, {tally.refused} refused, {tally.deleted} deleted")
    assert broken == []
    assert tally.acknowledged > 5 and tally.refused > 5  # both outcomes were checked
