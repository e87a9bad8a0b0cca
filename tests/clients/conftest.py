"""Shared fixtures for the real-client tests: a running Dockyard, isolated client settings.

Every client talks to ``dockyard serve`` on 127.0.0.1 over plain HTTP, and keeps
its state (auth file, policy, temporary files, storage) in pytest's temporary
folders. A missing client binary skips its tests locally and fails them in CI
(when the ``CI`` environment variable is set), so CI cannot go green by accident.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
from collections.abc import Callable, Iterator, Sequence

import httpx
import pytest

from tests.support.server import DockyardProcess
from tests.support.tools import require_tool, unavailable  # noqa: F401  (re-exported for the client tests)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ALL_MANIFESTS = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

COMMAND_TIMEOUT = 600


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a client command; on failure, the assertion shows its command line and output."""
    argv = [str(part) for part in command]
    result = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check:
        assert result.returncode == 0, (
            f"command failed ({result.returncode}): {' '.join(argv)}\n"
            f"--- stdout ---\n{result.stdout[-5000:]}\n--- stderr ---\n{result.stderr[-5000:]}"
        )
    return result


@pytest.fixture(scope="session")
def dockyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardProcess]:
    """One ``dockyard serve`` for the session; each test uses its own repository names."""
    process = DockyardProcess(tmp_path_factory.mktemp("dockyard") / "root")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def api(dockyard: DockyardProcess) -> Iterator[httpx.Client]:
    """Plain HTTP access to the running registry, to check what the clients did."""
    with httpx.Client(base_url=dockyard.url, timeout=60) as client:
        yield client


def fetch_manifest(api: httpx.Client, name: str, reference: str, accept: str = ALL_MANIFESTS) -> httpx.Response:
    """GET a manifest; asserts it is there and that its digest header matches its bytes."""
    response = api.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": accept})
    assert response.status_code == 200, (response.status_code, response.text[:500])
    assert response.headers["Docker-Content-Digest"] == sha256(response.content)
    return response


@pytest.fixture(scope="session")
def client_home(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Settings shared by the containers/image clients, all in a temporary folder."""
    home = tmp_path_factory.mktemp("clienthome")
    (home / "auth.json").write_text(json.dumps({"auths": {}}))
    (home / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (home / "tmp").mkdir()
    (home / "xdg").mkdir(mode=0o700)
    (home / "docker-config").mkdir()
    (home / "docker-config" / "config.json").write_text(json.dumps({"auths": {}}))
    return home


@pytest.fixture(scope="session")
def client_env(client_home: pathlib.Path) -> dict[str, str]:
    """The environment for every client process: auth files and temporary folders in ``client_home``."""
    return {
        **os.environ,
        "REGISTRY_AUTH_FILE": str(client_home / "auth.json"),
        "TMPDIR": str(client_home / "tmp"),
        "XDG_RUNTIME_DIR": str(client_home / "xdg"),
        "DOCKER_CONFIG": str(client_home / "docker-config"),
    }


Skopeo = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def skopeo(client_home: pathlib.Path, client_env: dict[str, str]) -> Skopeo:
    """Run ``skopeo`` with a temporary policy and temporary folder (plain HTTP is per command)."""
    executable = require_tool("skopeo")["skopeo"]

    def skopeo(*args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [executable, "--policy", client_home / "policy.json", "--tmpdir", client_home / "tmp", *args]
        return run(command, env=client_env, check=check)

    return skopeo


def layout_index(layout: pathlib.Path) -> dict:
    """An OCI image layout's ``index.json``."""
    return json.loads((layout / "index.json").read_text())


def layout_blob(layout: pathlib.Path, digest: str) -> bytes:
    algorithm, encoded = digest.split(":", 1)
    return (layout / "blobs" / algorithm / encoded).read_bytes()


def layout_entry(layout: pathlib.Path, tag: str) -> dict:
    """The descriptor ``tag`` names in an OCI image layout."""
    for entry in layout_index(layout)["manifests"]:
        if (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
            return entry
    raise AssertionError(f"no {tag!r} in {layout}/index.json: {layout_index(layout)}")
