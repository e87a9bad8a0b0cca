"""registry:2's default config.yml and seed 000's variable start Dockyard as they start registry:2.

Both servers get the same file (registry:2's image default) and the same variables
(seed 000's ``REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY``, plus ``REGISTRY_HTTP_ADDR``
for a free port on 127.0.0.1); the test then asks both the same questions and expects
the same answers: plain HTTP, pushes work, deletes are refused (off by default).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.registry2 import DEFAULT_CONFIG, free_port


def _environment(root: pathlib.Path, port: int) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_") and key != "AWS_CA_BUNDLE"}
    return {**base, "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(root), "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"}


def _start(command: list[str], root: pathlib.Path, log: pathlib.Path) -> Iterator[str]:
    port = free_port()
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=_environment(root, port), stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                httpx.get(f"{url}/v2/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def config_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "config.yml"
    path.write_text(DEFAULT_CONFIG)
    return path


@pytest.fixture
def registry2(registry2_available: str, config_file: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[str]:
    yield from _start([registry2_available, "serve", str(config_file)], tmp_path / "registry2-root", tmp_path / "registry2.log")


@pytest.fixture
def dockyard(config_file: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[str]:
    command = [sys.executable, "-m", "dockyard", "serve", "--config", str(config_file)]
    yield from _start(command, tmp_path / "dockyard-root", tmp_path / "dockyard.log")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _behaviour(url: str) -> dict[str, object]:
    """The answers that matter to a client of a default registry:2."""
    with httpx.Client(base_url=url, timeout=30) as client:
        layer, config = b"layer bytes", b'{"architecture":"amd64","os":"linux"}'
        pushed = []
        for data in (layer, config):
            # POST then PUT: registry:2 2.8 does not take a whole blob on the POST.
            location = client.post("/v2/seed/app/blobs/uploads/").headers["Location"]
            separator = "&" if "?" in location else "?"  # registry:2 keeps its state in the query
            pushed.append(client.put(f"{location}{separator}digest={_digest(data)}", content=data).status_code)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": _digest(layer)}],
        }).encode()
        put = client.put("/v2/seed/app/manifests/v1", content=manifest,
                         headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
        deleted = client.delete(f"/v2/seed/app/manifests/{_digest(manifest)}")
        return {
            "scheme": url.split(":")[0],
            "ping": client.get("/v2/").status_code,
            "blob pushes": pushed,
            "manifest push": (put.status_code, put.headers.get("Docker-Content-Digest")),
            # With the Accept header every current client sends (without it registry:2
            # rewrites the manifest to schema 1, which Dockyard does not do).
            "manifest pull": client.get(
                "/v2/seed/app/manifests/v1", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
            ).content == manifest,
            "delete": (deleted.status_code, deleted.json()["errors"][0]["code"]),
            "tags": client.get("/v2/seed/app/tags/list").json(),
            "catalog": client.get("/v2/_catalog").json(),
        }


def test_default_config_and_seed_variable_behave_alike(registry2: str, dockyard: str, tmp_path: pathlib.Path) -> None:
    expected = _behaviour(registry2)
    assert expected["delete"] == (405, "UNSUPPORTED")  # the reference: deletes are off by default
    assert _behaviour(dockyard) == expected
    # Both wrote to the root the seed's variable named, not the file's /var/lib/registry.
    for name in ("registry2-root", "dockyard-root"):
        assert (tmp_path / name / "docker/registry/v2/repositories/seed/app/_manifests/tags/v1/current/link").is_file()
