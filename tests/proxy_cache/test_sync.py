"""Sync of chosen tags into the pull-through cache (``sync`` of ``dockyard.mirrors``): by the server on
its interval and by ``dockyard mirror sync``, from one upstream Dockyard that asks for Bearer tokens
and pages its tag lists two at a time; counted on the upstream's access log."""

from __future__ import annotations

import html
import json
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from dockyard.proxy.sync import SyncResult
from dockyard.reference import parse_digest
from dockyard.storage import paths
from tests.ops.conftest import debug_url
from tests.ops.test_metrics import samples, value
from tests.proxy_cache.test_pull_through import USER, stored, upstream_gets
from tests.support.auth import USERS, write_htpasswd
from tests.support.clients import Skopeo, layout_entry
from tests.support.registry_client import push_image, push_index, sha256
from tests.support.server import DockyardProcess

pytestmark = pytest.mark.slow

REPOSITORY = "team/app"
SYNCED = ["3.18", "3.19", "latest"]  # what ["3.*", "latest"] matches of the upstream's tags
NOT_SYNCED = ["2.0", "edge"]
SYNC_INTERVAL = 2  # seconds: the server's runs come this often
StartServer = Callable[..., DockyardProcess]


@dataclass(frozen=True)
class Upstream:
    server: DockyardProcess
    digests: dict[str, str]  # tag -> manifest digest
    layers: dict[str, bytes]  # tag -> the layer of its image (3.18: an index, its children's layers under 3.18/<n>)

    def blob_gets(self, layer: bytes) -> int:
        return upstream_gets(self.server, f"/v2/{REPOSITORY}/blobs/{sha256(layer)}")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """team/app with three tags to sync (3.18 an index of two images) and two not to."""
    folder = tmp_path_factory.mktemp("upstream")
    config = folder / "upstream.yml"
    config.write_text(json.dumps({"version": "0.1", "tags": {"maxtags": 2}, "dockyard": {"workers": 1}}))
    server = DockyardProcess(folder / "root", "--config", str(config), "--token-auth", "--htpasswd", str(write_htpasswd(folder / "htpasswd"))).start()
    try:
        token = httpx.get(
            f"{server.url}/auth/token", params={"service": "dockyard", "scope": f"repository:{REPOSITORY}:pull,push"}, auth=(USER, USERS[USER]),
        ).json()["token"]
        layers = {tag: f"layer of {tag}\n".encode() * 2048 for tag in [*SYNCED, *NOT_SYNCED, "3.18/amd64", "3.18/arm64"]}
        digests = {}
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            children = []
            for arch in ("amd64", "arm64"):
                digest, manifest = push_image(client, REPOSITORY, None, layers[f"3.18/{arch}"], seed=arch)
                children.append({"mediaType": json.loads(manifest)["mediaType"], "digest": digest, "size": len(manifest),
                                 "platform": {"os": "linux", "architecture": arch}})
            digests["3.18"], _ = push_index(client, REPOSITORY, children, "3.18")
            for tag in ["3.19", "latest", *NOT_SYNCED]:
                digests[tag], _ = push_image(client, REPOSITORY, tag, layers[tag], seed=tag)
        del layers["3.18"]  # an index has no layer of its own
        yield Upstream(server, digests, layers)
    finally:
        server.stop()


def mirror_config(folder: pathlib.Path, remote_url: str, interval: int = 3600, **mirror: object) -> pathlib.Path:
    """A config caching ``remote_url`` under docker.io, syncing team/app's tags 3.* and latest every ``interval`` seconds."""
    config = folder / "mirror.yml"
    config.write_text(json.dumps({
        "version": "0.1",
        "storage": {"filesystem": {"rootdirectory": str(folder / "mirror")}},
        "dockyard": {"mirrors": [{
            "prefix": "docker.io", "remoteurl": remote_url, "username": USER, "password": USERS[USER],
            "sync": [{"repository": REPOSITORY, "tags": ["3.*", "latest"], "interval": f"{interval}s"}], **mirror,
        }]},
    }))
    return config


def result(root: pathlib.Path) -> dict | None:
    """The last sync run's outcome, as the mirror wrote it."""
    path = stored(root, paths.proxy_sync_result(f"docker.io/{REPOSITORY}"))
    return json.loads(path.read_text()) if path.exists() else None


def next_result(root: pathlib.Path, after: float) -> dict:
    """The outcome of the first run that started after ``after`` (waiting for it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = result(root)
        if found is not None and found["started"] > after:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no sync run after {after}: last {result(root)}")


def tagged(root: pathlib.Path, tag: str) -> bool:
    return stored(root, paths.tag_current_link(f"docker.io/{REPOSITORY}", tag)).exists()


def synced_row(mirror: DockyardProcess) -> list[str]:
    """The web page's row of the sync entry: its cells' text."""
    page = httpx.get(f"{mirror.url}/", timeout=30)
    assert page.status_code == 200, page.text
    (row,) = re.findall(r'<table class="list stack" id="syncs">.*?<tbody>\s*<tr[^>]*>(.*?)</tr>', page.text, re.S)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in cells[:3]] + [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", cells[4])).split()),
    ]


def test_the_server_syncs_matching_tags_keeps_them_when_the_upstream_is_down_and_serves_them(
    upstream: Upstream, skopeo: Skopeo, start_server: StartServer, tmp_path: pathlib.Path,
) -> None:
    config = mirror_config(tmp_path, upstream.server.url, SYNC_INTERVAL)
    mirror = start_server("--config", str(config), "--debug-addr", "127.0.0.1:0", "--metrics", root="mirror")
    before = {tag: upstream.blob_gets(layer) for tag, layer in upstream.layers.items()}

    first = next_result(mirror.root, 0)
    assert first["error"] == "" and first["tags"] == len(SYNCED), first
    fetched = {tag: upstream.blob_gets(layer) - before[tag] for tag, layer in upstream.layers.items()}
    assert fetched == {tag: 0 if tag in NOT_SYNCED else 1 for tag in upstream.layers}
    assert [tag for tag in [*SYNCED, *NOT_SYNCED] if tagged(mirror.root, tag)] == SYNCED
    for tag in NOT_SYNCED:
        assert upstream_gets(upstream.server, f"/v2/{REPOSITORY}/manifests/{tag}") == 0
    for digest in (upstream.digests["3.18"], upstream.digests["3.19"]):
        assert stored(mirror.root, paths.proxy_manifest_pulled(f"docker.io/{REPOSITORY}", parse_digest(digest))).exists()

    # The next run finds every blob cached: none is fetched again.
    second = next_result(mirror.root, first["started"])
    assert second["error"] == "" and (second["blobs"], second["manifests"]) == (0, 0), second
    assert {tag: upstream.blob_gets(layer) - before[tag] for tag, layer in upstream.layers.items()} == fetched
    assert synced_row(mirror) == ["docker.io/team/app", "3.* latest", "2s", "ok 3 tags current, 0 manifests and 0 blobs (0 bytes) fetched"]

    upstream.server.stop()
    try:
        failed = next_result(mirror.root, second["started"])
        assert "cannot be reached" in failed["error"], failed
        assert synced_row(mirror)[-1] == f"failed {SyncResult(**failed).summary()}"
        found = samples(f"{debug_url(mirror)}/metrics")
        assert value(found, "dockyard_proxy_sync_errors_total", repository=f"docker.io/{REPOSITORY}") >= 1
        # Four images' layers and configs, by the first run only.
        assert value(found, "dockyard_proxy_sync_blobs_total", repository=f"docker.io/{REPOSITORY}") == first["blobs"] == 8
        assert value(found, "dockyard_proxy_sync_manifests_total", repository=f"docker.io/{REPOSITORY}") == first["manifests"] == 5
        assert value(found, "dockyard_proxy_sync_last_success_timestamp_seconds", repository=f"docker.io/{REPOSITORY}") == second["finished"]
        # What was synced is served without the upstream, by real clients.
        for tag in ("3.19", "3.18"):
            copied = tmp_path / f"copied-{tag}"
            source = f"docker://{mirror.host}/docker.io/{REPOSITORY}:{tag}"
            skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", source, f"oci:{copied}:{tag}")
            assert layout_entry(copied, tag)["digest"] == upstream.digests[tag]
        assert tagged(mirror.root, "latest")
    finally:
        upstream.server.start()


def run_sync(config: pathlib.Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "mirror", "sync", "--config", str(config), *options],
                          capture_output=True, text=True, timeout=120)


def test_the_command_syncs_now_and_a_second_run_fetches_nothing(upstream: Upstream, tmp_path: pathlib.Path) -> None:
    config = mirror_config(tmp_path, upstream.server.url)
    before = {tag: upstream.blob_gets(layer) for tag, layer in upstream.layers.items()}
    first = run_sync(config, "--prefix", "docker.io", "--repository", REPOSITORY)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[:-1] == [f"docker.io/{REPOSITORY}:{tag} {upstream.digests[tag]}" for tag in SYNCED]
    assert lines[-1].startswith(f"docker.io/{REPOSITORY}: 3 tags current, 5 manifests and 8 blobs (")
    assert {tag: upstream.blob_gets(layer) - before[tag] for tag, layer in upstream.layers.items()} == {
        tag: 0 if tag in NOT_SYNCED else 1 for tag in upstream.layers
    }

    again = run_sync(config)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == f"docker.io/{REPOSITORY}: 3 tags current, 0 manifests and 0 blobs (0 bytes) fetched"
    assert {tag: upstream.blob_gets(layer) - before[tag] for tag, layer in upstream.layers.items()} == {
        tag: 0 if tag in NOT_SYNCED else 1 for tag in upstream.layers
    }


def test_the_command_syncs_into_a_proxy_section_cache(upstream: Upstream, tmp_path: pathlib.Path) -> None:
    config = tmp_path / "proxy.yml"
    config.write_text(json.dumps({
        "version": "0.1",
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "mirror")}},
        "proxy": {"remoteurl": upstream.server.url, "username": USER, "password": USERS[USER]},
        "dockyard": {"proxy": {"sync": [{"repository": REPOSITORY, "tags": ["3.19"]}]}},
    }))
    ran = run_sync(config)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[0] == f"{REPOSITORY}:3.19 {upstream.digests['3.19']}"
    assert stored(tmp_path / "mirror", paths.tag_current_link(REPOSITORY, "3.19")).read_text() == upstream.digests["3.19"]
    assert not stored(tmp_path / "mirror", paths.tag_current_link(REPOSITORY, "latest")).exists()
    refused = run_sync(config, "--prefix", "docker.io")
    assert (refused.returncode, refused.stderr.splitlines()) == (1, ["Error: no mirror of dockyard.mirrors has the prefix 'docker.io'"])


@pytest.mark.parametrize(
    ("mirror", "options", "line"),
    [
        ({"sync": []}, [], "Error: no sync entry in dockyard.mirrors' sync or dockyard.proxy.sync"),
        ({}, ["--prefix", "ghcr.io"], "Error: no mirror of dockyard.mirrors has the prefix 'ghcr.io'"),
        ({}, ["--repository", "team/other"], "Error: no sync entry with the repository 'team/other' in dockyard.mirrors' sync or dockyard.proxy.sync"),
        ({"sync": [{"repository": REPOSITORY, "tags": []}]}, [], "Error: dockyard.mirrors.0.sync.0.tags: expected tag globs, such as latest or '3.*'"),
        ({"remoteurl": "http://127.0.0.1:9"}, [], "Error: 1 of 1 syncs failed"),
    ],
)
def test_the_commands_errors_are_one_line(mirror: dict, options: list[str], line: str, tmp_path: pathlib.Path) -> None:
    config = mirror_config(tmp_path, "http://127.0.0.1:9", **mirror)
    ran = run_sync(config, *options)
    assert ran.returncode == 1, ran.stdout
    assert ran.stderr.splitlines() == [line]
