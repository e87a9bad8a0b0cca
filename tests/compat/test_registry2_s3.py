"""Dockyard and registry:2 on one S3 bucket (SeaweedFS), and Dockyard's redirects to it.

Both registries serve the same bucket with the same layout: registry:2 pulls what
Dockyard pushed and the reverse, byte for byte. Dockyard serves with redirects on
(registry:2's default for S3), so its pulls go to presigned SeaweedFS URLs.
"""

from __future__ import annotations

import pathlib
import random
from collections.abc import Iterator

import httpx
import pytest

from tests.compat.conftest import Skopeo
from tests.support.images import Image, Layout
from tests.support.registry2 import Registry2Process
from tests.support.registry_client import push_blob
from tests.support.seaweedfs import SeaweedFS
from tests.support.server import DockyardProcess

# Above the default chunksize (10 MiB): the push goes up as a multipart upload.
BIG_LAYER = 11 << 20


@pytest.fixture(scope="module")
def bucket(seaweedfs: SeaweedFS) -> str:
    return seaweedfs.create_bucket("registry2-interop")


@pytest.fixture(scope="module")
def dockyard_on_s3(tmp_path_factory, seaweedfs: SeaweedFS, bucket: str) -> Iterator[DockyardProcess]:
    base = tmp_path_factory.mktemp("dockyard-s3")
    config = seaweedfs.write_dockyard_config(base / "config.yml", bucket, redirect=True)
    server = DockyardProcess(base / "root", "--config", str(config)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def registry2_on_s3(tmp_path_factory, registry2_available, seaweedfs: SeaweedFS, bucket: str) -> Iterator[Registry2Process]:
    server = Registry2Process(tmp_path_factory.mktemp("registry2-s3") / "root", s3=seaweedfs.storage_config(bucket))
    with server:
        yield server


def pulled_blobs(skopeo: Skopeo, source: str, layout: pathlib.Path) -> dict[str, bytes]:
    skopeo.pull(source, layout, "latest")
    return {path.name: path.read_bytes() for path in (layout / "blobs" / "sha256").iterdir()}


def source_blobs(layout: pathlib.Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (layout / "blobs" / "sha256").iterdir()}


@pytest.mark.parametrize("direction", ["dockyard-to-registry2", "registry2-to-dockyard"])
def test_one_bucket_serves_both_registries(
    tmp_path: pathlib.Path, skopeo: Skopeo, dockyard_on_s3: DockyardProcess, registry2_on_s3: Registry2Process, direction: str,
) -> None:
    pusher, puller = (dockyard_on_s3, registry2_on_s3) if direction == "dockyard-to-registry2" else (registry2_on_s3, dockyard_on_s3)
    layout = tmp_path / "source"
    image = Layout(layout)
    descriptor = image.image(Image(layers=[{"hello": direction.encode()}, {"big.bin": random.Random(direction).randbytes(BIG_LAYER)}]))
    image.tag(descriptor, "latest")
    digest = skopeo.push(layout, "latest", f"{pusher.host}/s3/{direction}:v1", digest_file=tmp_path / "digest")
    assert digest == descriptor["digest"]

    pulled = pulled_blobs(skopeo, f"{puller.host}/s3/{direction}:v1", tmp_path / "pulled")
    assert pulled == source_blobs(layout)
    assert max(len(blob) for blob in pulled.values()) > BIG_LAYER
    tags = httpx.get(f"{puller.url}/v2/s3/{direction}/tags/list").json()
    assert tags == {"name": f"s3/{direction}", "tags": ["v1"]}
    catalog = httpx.get(f"{puller.url}/v2/_catalog").json()["repositories"]
    assert f"s3/{direction}" in catalog


def test_blob_get_redirects_to_a_presigned_url_that_works(
    tmp_path: pathlib.Path, seaweedfs: SeaweedFS, bucket: str, dockyard_on_s3: DockyardProcess,
) -> None:
    data = b"redirected blob " * 4096
    with httpx.Client(base_url=dockyard_on_s3.url) as client:
        digest = push_blob(client, "s3/redirect", data)
    url = f"{dockyard_on_s3.url}/v2/s3/redirect/blobs/{digest}"
    for method in ("GET", "HEAD"):
        response = httpx.request(method, url)
        assert response.status_code == 307, response.text
        location = response.headers["Location"]
        assert location.startswith(f"{seaweedfs.endpoint}/{bucket}/docker/registry/v2/blobs/sha256/{digest[7:9]}/{digest[7:]}/data?")
        assert "X-Amz-Signature=" in location
        assert response.headers["Docker-Content-Digest"] == digest
    followed = httpx.get(url, follow_redirects=True)
    assert followed.status_code == 200
    assert followed.content == data
    # Without the signature, SeaweedFS refuses: the URL is what grants access.
    assert httpx.get(location.split("?")[0]).status_code == 403

    # storage.redirect.disable: true serves the bytes itself.
    config = seaweedfs.write_dockyard_config(tmp_path / "config.yml", bucket, redirect=False)
    server = DockyardProcess(tmp_path / "root", "--config", str(config)).start()
    try:
        response = httpx.get(f"{server.url}/v2/s3/redirect/blobs/{digest}")
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["Docker-Content-Digest"] == digest
    finally:
        server.stop()
