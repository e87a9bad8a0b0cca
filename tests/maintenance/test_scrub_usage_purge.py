"""scrub, du and upload purging, through the commands and the storage they leave."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from dockyard.cli import main
from dockyard.maintenance.uploads_purge import purge_uploads
from dockyard.reference import Digest
from dockyard.storage import paths
from tests.maintenance.conftest import Store
from tests.support.server import DockyardProcess


def _invoke(*arguments: str):
    return CliRunner().invoke(main, list(arguments), catch_exceptions=False)


def test_scrub_finds_a_flipped_byte_and_a_dangling_link_and_repairs_without_deleting(store: Store, tmp_path) -> None:
    root = str(tmp_path / "root")
    store.image("app", "v1", b"healthy layer", b"layer to corrupt")
    clean = _invoke("scrub", "--root", root)
    assert clean.exit_code == 0 and "0 problems" in clean.output

    corrupt = Digest.of(b"layer to corrupt")
    data = store.registry.driver.local_file(paths.blob_data(corrupt))
    flipped = bytearray(data.read_bytes())
    flipped[3] ^= 0x01
    data.write_bytes(bytes(flipped))
    store.run(store.registry.driver.put_content(paths.tag_current_link("app", "ghost"), str(Digest.of(b"no such manifest")).encode()))

    found = _invoke("scrub", "--root", root)
    assert found.exit_code == 1
    assert f"corrupt blob: {corrupt}" in found.output
    assert f"dangling tag: app:ghost -> {Digest.of(b'no such manifest')}" in found.output
    assert data.exists()  # reporting changes nothing

    repaired = _invoke("scrub", "--root", root, "--repair")
    assert repaired.exit_code == 1 and "(repaired)" in repaired.output
    quarantined = store.registry.driver.local_file(paths.quarantined_blob(corrupt))
    assert quarantined.read_bytes() == bytes(flipped)  # moved aside, not deleted
    assert not store.has_blob(corrupt) and store.has_blob(Digest.of(b"healthy layer"))
    assert store.run(store.registry.repository("app").tags()) == ["v1"]
    # v1 still needs the quarantined blob: it is missing, by name, and its link stays.
    manifest = store.run(store.registry.repository("app").resolve_tag("v1"))
    assert f"missing blob: app:v1@{manifest} needs {corrupt}\n" in repaired.output
    assert "stale layer link" not in repaired.output.replace("0 stale layer links", "")
    assert store.registry.driver.local_file(paths.layer_link("app", corrupt)).exists()
    again = _invoke("scrub", "--root", root)
    assert again.exit_code == 1 and "1 problems, 0 stale layer links" in again.output


def test_scrub_reports_stale_layer_links_without_failing(store: Store, tmp_path) -> None:
    store.image("app", "v1", b"kept layer")
    gone = Digest.of(b"collected layer")
    store.run(store.registry.driver.put_content(paths.layer_link("app", gone), str(gone).encode()))
    root = str(tmp_path / "root")

    found = _invoke("scrub", "--root", root)
    assert found.exit_code == 0
    assert f"stale layer link: app -> {gone}" in found.output and "0 problems, 1 stale layer links" in found.output
    assert _invoke("scrub", "--root", root, "--repair").exit_code == 0
    assert "0 stale layer links" in _invoke("scrub", "--root", root).output


def test_scrub_names_missing_blobs_of_tagged_and_index_referenced_manifests_and_never_repairs_them(store: Store, tmp_path) -> None:
    root = str(tmp_path / "root")
    tagged = store.image("app", "v1", b"tagged layer")
    child = store.image("app", None, b"child layer")
    store.index("app", "multi", child)
    store.image("app", None, b"untagged layer")
    for layer in (b"tagged layer", b"child layer", b"untagged layer"):
        store.registry.driver.local_file(paths.blob_data(Digest.of(layer))).unlink()

    for arguments in (("scrub", "--root", root), ("scrub", "--root", root, "--repair")):
        result = _invoke(*arguments)
        assert result.exit_code == 1
        assert f"missing blob: app:v1@{tagged} needs {Digest.of(b'tagged layer')}\n" in result.output
        assert f"missing blob: app@{child} needs {Digest.of(b'child layer')}\n" in result.output
        assert f"stale layer link: app -> {Digest.of(b'untagged layer')}" in result.output
        assert "2 problems, 1 stale layer links" in result.output
    # Never repaired away: the images' links stay, only the untagged manifest's stale link went.
    for layer in (b"tagged layer", b"child layer"):
        assert store.registry.driver.local_file(paths.layer_link("app", Digest.of(layer))).exists()
    assert not store.registry.driver.local_file(paths.layer_link("app", Digest.of(b"untagged layer"))).exists()


def test_scrub_reports_leftovers_of_interrupted_writes_without_failing(store: Store, tmp_path) -> None:
    store.image("app", "v1", b"a layer")
    killed = Digest.of(b"a manifest whose write was killed")
    folder = store.registry.driver.local_file(paths.blob_dir(killed))
    folder.mkdir(parents=True)
    temporary = folder / f".data.{'0' * 32}.tmp"
    temporary.write_bytes(b"a manifest whose wri")
    empty = Digest.of(b"a blob whose folder was made, then the disk was full")
    store.registry.driver.local_file(paths.blob_dir(empty)).mkdir(parents=True)

    result = _invoke("scrub", "--root", str(tmp_path / "root"))
    assert result.exit_code == 0
    assert f"temporary file: {paths.blob_entry(killed, temporary.name)}\n" in result.output
    assert f"empty blob folder: {paths.blob_dir(empty)}\n" in result.output
    assert "0 problems, 0 stale layer links, 2 leftovers of interrupted writes" in result.output
    assert temporary.exists()  # gc removes leftovers, after its grace period


def test_du_counts_shared_and_exclusive_bytes(store: Store, tmp_path) -> None:
    store.image("one", "v1", b"shared base", b"only in one")
    store.image("two", "v1", b"shared base", b"only in two, longer")
    result = _invoke("du", "--root", str(tmp_path / "root"), "--json", "one")
    assert result.exit_code == 0
    found = json.loads(result.output)
    (one,) = found["repositories"]
    assert one["repository"] == "one" and one["shared_bytes"] == len(b"shared base")
    assert one["exclusive_bytes"] > len(b"only in one")  # with its config and manifest
    table = _invoke("du", "--root", str(tmp_path / "root"))
    assert table.exit_code == 0 and table.output.splitlines()[1].startswith("one ") and "total" in table.output


def test_upload_purging_removes_only_old_uploads(store: Store) -> None:
    uploads = store.registry.uploads
    old, fresh = store.run(uploads.start("app")), store.run(uploads.start("app"))
    store.run(store.registry.driver.put_content(paths.upload_started_at("app", old), b"2020-01-01T00:00:00Z"))
    dry = store.run(purge_uploads(store.registry.driver, 3600.0, dry_run=True))
    assert dry.purged == [("app", old)] and store.run(uploads.size("app", old)) == 0
    report = store.run(purge_uploads(store.registry.driver, 3600.0, dry_run=False, now=time.time()))
    assert report.purged == [("app", old)]
    assert store.run(store.registry.driver.list(paths.uploads("app"))) == [fresh]


def test_commands_need_a_storage_and_say_so_in_one_line(tmp_path) -> None:
    result = CliRunner().invoke(main, ["gc"])
    assert result.exit_code == 2 and "give --config FILE or --root DIR" in result.output
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 0.1\nstorage: {filesystem: {rootdirectory: 5}}\ndockyard: {gc: {grace_period: soon}}\n")
    result = CliRunner().invoke(main, ["gc", "--config", str(bad)])
    assert result.exit_code == 1 and "dockyard.gc.grace_period" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["gc", "scrub", "du"])
def test_a_root_that_holds_no_registry_is_refused_and_left_alone(command: str, tmp_path) -> None:
    missing = tmp_path / "no-such-root"
    not_a_registry = tmp_path / "home"
    not_a_registry.mkdir()
    (not_a_registry / "notes.txt").write_text("not a registry")
    for root, reason in [(missing, "does not exist"), (not_a_registry, "holds no registry data")]:
        before = sorted(tmp_path.rglob("*"))
        result = _invoke(command, "--root", str(root))
        assert result.exit_code == 2
        assert result.output.splitlines() == [f"Error: storage root {root} {reason}" + (" (no docker/registry/v2)" if root.exists() else "")]
        assert sorted(tmp_path.rglob("*")) == before  # nothing created


def test_a_fresh_servers_root_is_maintained(tmp_path) -> None:
    root = tmp_path / "root"
    DockyardProcess(root).start().stop()
    for command in ("gc", "scrub", "du"):
        result = _invoke(command, "--root", str(root))
        assert result.exit_code == 0, result.output


def test_scrub_repair_writes_the_referrer_links_registry2_never_wrote(store: Store, tmp_path) -> None:
    root = str(tmp_path / "root")
    subject = store.image("app", "v1", b"signed layer")
    signature = store.image("app", None, b"signature", subject=subject)
    repository = store.registry.repository("app")
    listed = store.run(repository.referrers(subject))
    store.run(store.registry.driver.delete(paths.referrers("app", subject)))  # as registry:2 leaves it
    assert store.run(repository.referrers(subject)) == []

    found = _invoke("scrub", "--root", root)
    assert found.exit_code == 1 and f"missing referrer link: app: {signature} refers to {subject}\n" in found.output
    assert store.run(repository.referrers(subject)) == []  # reporting changes nothing
    assert _invoke("scrub", "--root", root, "--repair").exit_code == 1
    assert store.run(repository.referrers(subject)) == listed
    assert _invoke("scrub", "--root", root).exit_code == 0
