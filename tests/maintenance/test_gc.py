"""What a collection keeps and removes, and registry:2 agreeing with the result."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import pytest

from dockyard.errors import BlobUnknown
from dockyard.maintenance import inventory
from dockyard.maintenance.gc import Collector, Options, Report
from dockyard.reference import Digest
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver
from tests.maintenance.conftest import Store
from tests.support.registry2 import Registry2Process, registry2_binary


def _blob(data: bytes) -> Digest:
    return Digest.of(data)


def test_without_delete_untagged_only_unreferenced_blobs_go(store: Store) -> None:
    kept = store.image("app", "v1", b"shared", b"one")
    untagged = store.image("app", "v2", b"shared", b"two")
    store.run(store.registry.repository("app").untag("v2"))
    store.blob("app", b"pushed, never used")
    report = store.collect()
    assert store.has_manifest("app", kept) and store.has_manifest("app", untagged)  # registry:2 keeps untagged revisions
    assert store.has_blob(_blob(b"two")) and store.has_blob(_blob(b"shared"))
    assert not store.has_blob(_blob(b"pushed, never used"))
    assert report.blobs_removed == [_blob(b"pushed, never used")] and report.manifests_removed == []


def test_delete_untagged_keeps_indexes_children_and_referrers_of_kept_manifests(store: Store) -> None:
    amd, arm = store.image("multi", None, b"amd"), store.image("multi", None, b"arm")
    index = store.index("multi", "latest", amd, arm)
    signature = store.image("multi", None, b"index signature", subject=index)
    signature_of_signature = store.image("multi", None, b"countersignature", subject=signature)
    old = store.image("multi", "old", b"old layer")
    orphan = store.image("multi", None, b"orphan signature", subject=old)
    store.run(store.registry.repository("multi").untag("old"))
    dry = store.collect(delete_untagged=True, dry_run=True)
    assert sorted(digest for _, digest in dry.manifests_removed) == sorted([old, orphan], key=str)
    assert store.has_manifest("multi", old)  # a dry run removes nothing

    report = store.collect(delete_untagged=True)
    for digest in (index, amd, arm, signature, signature_of_signature):
        assert store.has_manifest("multi", digest)
    for data in (b"amd", b"arm", b"index signature", b"countersignature"):
        assert store.has_blob(_blob(data))
    assert not store.has_manifest("multi", old) and not store.has_manifest("multi", orphan)
    assert not store.has_blob(_blob(b"old layer")) and not store.has_blob(_blob(b"orphan signature"))
    assert not store.has_blob(old)  # the manifest's own content too
    assert sorted(digest for _, digest in report.manifests_removed) == sorted([old, orphan], key=str)
    assert store.run(store.registry.repository("multi").referrers(index))[0].digest == signature

    # Untag the index: its children and referrers go with it.
    store.run(store.registry.repository("multi").untag("latest"))
    store.collect(delete_untagged=True)
    for digest in (index, amd, arm, signature, signature_of_signature):
        assert not store.has_manifest("multi", digest)
    assert not store.has_blob(_blob(b"amd"))


def test_delete_untagged_drops_the_tag_history_entries_of_what_it_removes(store: Store) -> None:
    old = store.image("app", "latest", b"old layer")
    new = store.image("app", "latest", b"new layer")  # the tag moves on: its history names both
    other = store.image("app", "other", b"other layer")
    report = store.collect(delete_untagged=True)
    assert [digest for _, digest in report.manifests_removed] == [old]
    tags = store.registry.driver.local_file("/docker/registry/v2/repositories/app/_manifests/tags")
    assert [entry.name for entry in (tags / "latest" / "index" / "sha256").iterdir()] == [new.hex]
    assert [entry.name for entry in (tags / "other" / "index" / "sha256").iterdir()] == [other.hex]


def test_repositories_marked_in_several_batches_keep_and_lose_the_same(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.maintenance import gc

    monkeypatch.setattr(gc, "REPOSITORY_BATCH", 2)
    names = [f"team/app{number}" for number in range(5)]
    kept = {name: store.image(name, "v1", b"shared", name.encode()) for name in names}
    dropped = {name: store.image(name, None, f"old {name}".encode()) for name in names}
    report = store.collect(delete_untagged=True)
    assert report.repositories == 5
    assert sorted(report.manifests_removed, key=str) == sorted(dropped.items(), key=str)
    assert all(store.has_manifest(name, digest) for name, digest in kept.items())
    assert store.has_blob(_blob(b"shared")) and not any(store.has_blob(_blob(f"old {name}".encode())) for name in names)


def test_grace_period_keeps_what_was_just_pushed(store: Store) -> None:
    store.image("app", "v1", b"layer")
    store.run(store.registry.repository("app").untag("v1"))
    store.blob("app", b"uploaded, manifest not pushed yet")
    report = store.collect(delete_untagged=True, grace_period=3600.0)
    assert report.blobs_removed == [] and report.manifests_removed == []
    assert store.has_blob(_blob(b"uploaded, manifest not pushed yet"))


def test_a_manifest_pushed_onto_set_aside_content_keeps_it(store: Store) -> None:
    """A push landing between the set-aside and the second mark brings its blobs back."""
    from dockyard.maintenance import gc

    store.image("app", "v1", b"base layer")
    store.run(store.registry.repository("app").untag("v1"))
    store.age_everything(10.0)
    pushed: list[Digest] = []
    original = gc.Collector._set_aside_blobs

    async def set_aside_then_push(self, candidates, fresh_after):
        done = await original(self, candidates, fresh_after)
        # A client re-links the garbage layer and pushes a manifest naming it: the
        # push's own check finds the layer set aside and refuses.
        with pytest.raises(BlobUnknown):
            await store.registry.repository("app").link_layer(_blob(b"base layer"))
        await store.registry.driver.put_content(
            f"/docker/registry/v2/repositories/app/_layers/sha256/{_blob(b'base layer').hex}/link",
            str(_blob(b"base layer")).encode(),
        )
        pushed.append(_blob(b"base layer"))
        return done

    gc.Collector._set_aside_blobs = set_aside_then_push  # type: ignore[method-assign]
    try:
        report = store.collect(later=0.0, delete_untagged=True)
    finally:
        gc.Collector._set_aside_blobs = original  # type: ignore[method-assign]
    assert pushed and store.has_blob(_blob(b"base layer"))
    assert report.put_back >= 1


def test_retention_keeps_the_newest_tags_and_matching_ones(store: Store) -> None:
    import os
    import time

    from dockyard.config import Retention

    for number in range(5):
        store.image("team/app", f"build-{number}", f"layer {number}".encode())
        link = store.registry.driver.local_file(f"/docker/registry/v2/repositories/team/app/_manifests/tags/build-{number}/current/link")
        os.utime(link, (time.time() - 100 + number, time.time() - 100 + number))
    store.image("team/app", "release", b"release layer")
    os.utime(store.registry.driver.local_file("/docker/registry/v2/repositories/team/app/_manifests/tags/release/current/link"), (1, 1))
    policy = Retention(repositories="team/*", keep_last=2, keep_tags=["rel*"], untagged_older_than=0.0)
    dry = store.collect(retention=[policy], dry_run=True)
    assert sorted(tag for _, tag in dry.tags_removed) == ["build-0", "build-1", "build-2"]
    assert store.run(store.registry.repository("team/app").tags()) == ["build-0", "build-1", "build-2", "build-3", "build-4", "release"]
    store.collect(retention=[policy])
    assert store.run(store.registry.repository("team/app").tags()) == ["build-3", "build-4", "release"]
    assert not store.has_blob(_blob(b"layer 0")) and store.has_blob(_blob(b"layer 4"))


@pytest.mark.skipif(registry2_binary() is None, reason="docker-registry is not installed")
def test_registry2_serves_the_result_and_finds_nothing_more(store: Store, tmp_path) -> None:
    kept = store.image("app", "v1", b"shared", b"kept")
    store.image("app", "v2", b"shared", b"dropped")
    store.run(store.registry.repository("app").untag("v2"))
    store.blob("app", b"stray upload")
    root = tmp_path / "root"
    cli = [sys.executable, "-m", "dockyard", "gc", "--root", str(root), "--grace-period", "0s"]
    result = subprocess.run([*cli, "--delete-untagged"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "removed 0 tags, 1 manifests and 4 blobs" in result.stdout

    registry2 = Registry2Process(root)
    for flags in (("--dry-run",), ("--dry-run", "--delete-untagged")):
        check = registry2.garbage_collect(*flags)
        assert check.returncode == 0, check.stderr
        assert "0 blobs and 0 manifests eligible for deletion" in check.stdout + check.stderr, check.stdout[-2000:]
    with registry2:
        import httpx

        manifest = httpx.get(f"{registry2.url}/v2/app/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert manifest.status_code == 200 and Digest.of(manifest.content) == kept
        assert httpx.get(f"{registry2.url}/v2/app/blobs/{_blob(b'kept')}").content == b"kept"
        assert httpx.get(f"{registry2.url}/v2/app/blobs/{_blob(b'dropped')}").status_code == 404


def test_a_push_intent_keeps_its_manifest_until_it_is_left_long_enough(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14: a collection keeps what a push intent names, with its blobs, like a tagged
    manifest (linked yet or not); an intent a push could not remove (or a crashed one left)
    goes once older than an hour and the grace period, and then its manifest goes too."""
    repository = store.registry.repository("app")
    driver = store.registry.driver
    linked = store.image("app", None, b"linked layer")
    stored = store.image("app", None, b"stored layer")
    store.run(repository.delete_manifest(stored))  # its content and layer stay: a push before its links
    garbage = store.image("app", None, b"garbage layer")
    assert store.run(inventory.push_intents(driver)) == []  # pushes that ended removed theirs
    original_delete = driver.delete

    async def delete_all_but_intents(path: str) -> None:
        if not path.startswith(paths.PUSH_INTENTS):
            await original_delete(path)

    async def collect_while_pushing() -> Report:
        async with repository.pushing(linked), repository.pushing(stored):
            report = await Collector(store.registry, Options(delete_untagged=True, grace_period=0.0), clock=lambda: time.time() + 1).run()
            monkeypatch.setattr(driver, "delete", delete_all_but_intents)
        return report

    report = store.run(collect_while_pushing())
    monkeypatch.undo()
    assert report.manifests_removed == [("app", garbage)] and not store.has_blob(_blob(b"garbage layer"))
    assert store.has_manifest("app", linked) and store.has_blob(_blob(b"linked layer"))
    assert store.has_blob(stored) and store.has_blob(_blob(b"stored layer"))
    young = store.collect(later=1800.0, delete_untagged=True)
    within_grace = store.collect(later=7200.0, delete_untagged=True, grace_period=3 * 3600.0)
    assert young.manifests_removed == within_grace.manifests_removed == []
    assert len(store.run(inventory.push_intents(driver))) == 2

    store.collect(later=7200.0, delete_untagged=True)
    assert store.run(inventory.push_intents(driver)) == []
    after = store.collect(later=7200.0, delete_untagged=True)
    assert after.manifests_removed == [("app", linked)]
    assert not store.has_blob(_blob(b"linked layer")) and not store.has_blob(stored) and not store.has_blob(_blob(b"stored layer"))


def test_collects_on_s3_the_same_way(s3_settings) -> None:
    """The collector only speaks the driver interface: on S3 it keeps and removes the same."""
    from dockyard.storage.registry import Registry
    from dockyard.storage.s3 import S3Driver

    store = Store(Registry(S3Driver(s3_settings)))
    try:
        amd, arm = store.image("multi", None, b"amd"), store.image("multi", None, b"arm")
        index = store.index("multi", "latest", amd, arm)
        old = store.image("multi", "old", b"old layer")
        store.run(store.registry.repository("multi").untag("old"))
        report = store.collect(later=2.0, delete_untagged=True)  # S3 times are whole seconds
        assert [digest for _, digest in report.manifests_removed] == [old]
        assert all(store.has_manifest("multi", digest) for digest in (index, amd, arm))
        assert not store.has_blob(_blob(b"old layer")) and store.has_blob(_blob(b"amd"))
    finally:
        store.run(store.registry.close())
        store.loop.close()




def test_on_s3_the_blob_store_is_read_in_one_listing(s3_settings) -> None:
    """More blobs cost a collection no more listings or HEADs: the blob store comes from one flat
    listing with sizes and times, not a listing per blob folder and a HEAD per blob."""
    from collections import Counter

    from dockyard.storage.registry import Registry
    from dockyard.storage.s3 import S3Driver

    driver = S3Driver(s3_settings)
    store = Store(Registry(driver))
    calls: Counter[str] = Counter()

    def requests_of(**options: float) -> int:
        calls.clear()
        store.collect(later=2.0, **options)
        return calls["ListObjectsV2"] + calls["HeadObject"]

    try:
        store.run(driver._s3()).meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
        store.image("app", "v1", b"a layer")
        store.image("app", "old", b"an old layer")
        store.run(store.registry.repository("app").untag("old"))
        requests_of()  # the first one makes the collectors' lock file
        few = requests_of()
        store.image("app", "v2", *(f"layer {number}".encode() for number in range(20)))
        assert requests_of() == few
        removed = store.collect(later=2.0, delete_untagged=True)
        assert _blob(b"an old layer") in removed.blobs_removed and store.has_blob(_blob(b"layer 19"))
    finally:
        store.run(store.registry.close())
        store.loop.close()


def _paths_given(monkeypatch: pytest.MonkeyPatch, driver: StorageDriver, *methods: str) -> list[str]:
    """The path each call of the driver's ``methods`` (each taking one path) was given, in order."""
    given: list[str] = []

    def recorded(method: Callable[[str], Awaitable[object]]) -> Callable[[str], Awaitable[object]]:
        async def call(path: str) -> object:
            given.append(path)
            return await method(path)

        return call

    for name in methods:
        monkeypatch.setattr(driver, name, recorded(getattr(driver, name)))
    return given


def test_the_sweep_deletes_condemned_blobs_and_links_in_one_driver_call_each(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Condemned blobs, and every repository's condemned revision links, go together (one
    DeleteObjects a thousand on S3), not one delete each (or one call a repository)."""
    store.image("app", "v1", b"a layer")
    garbage = [(name, store.image(name, None, f"old layer {number} of {name}".encode())) for name in ("app", "web") for number in range(3)]
    driver = store.registry.driver
    deletes: list[str] = []
    batches: list[list[str] | None] = []
    delete, delete_files = driver.delete, driver.delete_files

    async def counted_delete(path: str) -> None:
        if not batches or batches[-1] is not None:  # not the default delete_files' own deletes
            deletes.append(path)
        await delete(path)

    async def counted_delete_files(files):
        batches.extend([list(files), None])
        try:
            return await delete_files(files)
        finally:
            batches.pop()

    monkeypatch.setattr(driver, "delete", counted_delete)
    monkeypatch.setattr(driver, "delete_files", counted_delete_files)
    report = store.collect(delete_untagged=True)
    assert sorted(map(str, report.manifests_removed)) == sorted(map(str, garbage))
    assert len(report.blobs_removed) > len(garbage)  # each image's manifest and layer, and configs
    set_aside = (paths.CONDEMNED_BLOBS, paths.CONDEMNED_MANIFESTS)
    assert [path for path in deletes if path.startswith(set_aside)] == []
    sizes = {prefix: [len(batch) for batch in batches if batch and batch[0].startswith(prefix)] for prefix in set_aside}
    assert sizes == {paths.CONDEMNED_BLOBS: [len(report.blobs_removed)], paths.CONDEMNED_MANIFESTS: [len(garbage)]}
    assert store.has_blob(_blob(b"a layer")) and not store.has_blob(_blob(b"old layer 0 of web"))
    # Nothing is left set aside for the next collection to put back.
    assert store.run(inventory.digests_under(driver, paths.condemned_manifests("app"))) == []
    again = store.collect(delete_untagged=True)
    assert (again.manifests_removed, again.blobs_removed, again.put_back) == ([], [], 0)


def test_revision_and_layer_links_are_known_from_listings_not_read_one_by_one(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link's folder names its digest and the listing gives its time: no GET or HEAD a link
    (on S3 a request each), but the look at an untagged revision just before it is set aside."""
    kept = store.image("app", "v1", b"a layer")
    garbage = store.image("app", None, b"an old layer")
    driver = store.registry.driver
    monkeypatch.setattr(driver, "lists_trees_at_once", True)  # as S3's: a tree in one listing
    reads = _paths_given(monkeypatch, driver, "get_content", "stat")
    report = store.collect(delete_untagged=True)
    link_reads = [path for path in reads if path.startswith((paths.revisions("app") + "/", paths.layers("app") + "/"))]
    assert link_reads == [paths.revision_link("app", garbage)]
    assert report.manifests_removed == [("app", garbage)] and store.has_manifest("app", kept)


def test_where_each_folder_costs_a_listing_layer_links_are_known_from_their_folders_names(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a filesystem a listing of the ``_layers`` tree lists each link's folder: the layers come
    from the folder names, and only the candidates' links are looked at (for their times)."""
    kept = store.image("app", "v1", b"a layer")
    garbage = store.image("app", None, b"an old layer")
    driver = store.registry.driver
    walked = _paths_given(monkeypatch, driver, "list_files")
    stated = _paths_given(monkeypatch, driver, "stat")
    report = store.collect(delete_untagged=True)
    assert [folder for folder in walked if folder.startswith(paths.layers("app"))] == []
    removed = {paths.layer_link("app", digest) for digest in report.blobs_removed}
    looked_at = {path for path in stated if path.startswith(paths.layers("app") + "/")}
    assert looked_at and looked_at <= removed
    assert report.manifests_removed == [("app", garbage)] and store.has_manifest("app", kept)
    assert not store.has_blob(_blob(b"an old layer")) and store.has_blob(_blob(b"a layer"))


def test_tag_histories_are_read_from_one_listing_of_the_tags(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forgetting a manifest lists the repository's tags' tree once, not a listing a tag (on S3 a request each)."""
    once_tagged = store.image("app", "v1", b"an old layer")
    kept = store.image("app", "v1", b"a layer")
    for number in range(5):
        store.image("app", f"other{number}", f"layer {number}".encode())
    driver = store.registry.driver
    listed: list[str] = []
    list_sorted, list_page = driver.list_sorted, driver.list_page

    async def counted_list_sorted(folders):
        listed.extend(folders)
        return await list_sorted(folders)

    async def counted_list_page(folder: str, after: str = "", limit=None):
        listed.append(folder)
        return await list_page(folder, after, limit)

    monkeypatch.setattr(driver, "list_sorted", counted_list_sorted)
    monkeypatch.setattr(driver, "list_page", counted_list_page)
    report = store.collect(delete_untagged=True)
    assert [folder for folder in listed if folder.startswith(paths.tags("app") + "/")] == []
    assert report.manifests_removed == [("app", once_tagged)]
    assert not store.run(driver.list_files(paths.tag_index("app", "v1") + "/sha256/" + once_tagged.hex))
    assert store.run(driver.get_content(paths.tag_index_link("app", "v1", kept))) == str(kept).encode()


def test_gc_removes_the_cache_s_downloads_and_fetch_locks_after_the_grace_period_only(store: Store) -> None:
    """What a pull-through fetch that crashed left (its download, its lock) goes once old; a fetch
    running now keeps both."""
    store.image("app", "v1", b"a layer")
    driver = store.registry.driver

    def write(path: str, content: bytes) -> pathlib.Path:
        local = driver.local_file(path)
        assert local is not None
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(content)
        return local

    crashed = [write(paths.proxy_download("1" * 32), b"half a bl"), write(paths.proxy_fetch_lock(Digest.of(b"crashed")), b"")]
    store.age_everything(7200)
    running = [write(paths.proxy_download("2" * 32), b"arriving"), write(paths.proxy_fetch_lock(Digest.of(b"running")), b"")]

    within_grace = store.collect(grace_period=3 * 3600.0)
    assert all(path.exists() for path in crashed + running)
    report = store.collect(grace_period=3600.0)
    assert [path.exists() for path in crashed + running] == [False, False, True, True]
    assert (within_grace.leftovers_removed, report.leftovers_removed) == (0, 2)
    assert store.has_blob(Digest.of(b"a layer"))


def test_gc_removes_leftovers_of_interrupted_writes_after_the_grace_period_only(store: Store) -> None:
    store.image("app", "v1", b"a layer")
    driver = store.registry.driver
    killed = driver.local_file(paths.blob_dir(Digest.of(b"a manifest whose write was killed")))
    killed.mkdir(parents=True)
    (killed / f".data.{'1' * 32}.tmp").write_bytes(b"a manifest wh")
    empty = driver.local_file(paths.blob_dir(Digest.of(b"a blob whose disk was full")))
    empty.mkdir(parents=True)
    beside = driver.local_file(paths.blob_dir(Digest.of(b"a layer")))
    (beside / f".data.{'2' * 32}.tmp").write_bytes(b"a second writer, killed")
    store.age_everything(7200)
    in_progress = driver.local_file(paths.blob_dir(Digest.of(b"a manifest being written now")))
    in_progress.mkdir(parents=True)
    (in_progress / f".data.{'3' * 32}.tmp").write_bytes(b"half")

    within_grace = store.collect(grace_period=3 * 3600.0)
    assert killed.exists() and empty.exists() and len(list(beside.iterdir())) == 2

    report = store.collect(grace_period=3600.0)
    assert not killed.exists() and not empty.exists()
    assert sorted(path.name for path in beside.iterdir()) == ["data"]  # the blob itself stays
    assert sorted(path.name for path in in_progress.iterdir()) == [f".data.{'3' * 32}.tmp"]  # a write in progress
    assert store.has_blob(Digest.of(b"a layer"))
    assert (within_grace.leftovers_removed, report.leftovers_removed) == (0, 4)  # two files, then two folders left empty
