"""Fixtures for the registry:2 data-directory compatibility tests.

The same set of images is pushed with skopeo to registry:2 (Debian's
``docker-registry``) and to Dockyard, each over its own temporary root; each
root is then served by the *other* registry. Pushed roots are module-scoped and
read-only; a test that changes data works on a copy.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.images import multi_arch_layout, single_image_layout
from tests.support.registry2 import Registry2Process, registry2_binary
from tests.support.server import DockyardProcess

V2 = ("docker", "registry", "v2")


def require_tool(name: str, found: str | None, package: str) -> str:
    """The tool's path; skip without it locally, fail without it in CI."""
    if found:
        return found
    reason = f"{name} is not installed (Debian package {package}); the registry:2 compatibility tests need it"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI is set", pytrace=False)
    pytest.skip(reason)


def storage(root: pathlib.Path) -> pathlib.Path:
    """``<root>/docker/registry/v2``, where both registries keep everything."""
    return root.joinpath(*V2)


def stored_blob(root: pathlib.Path, digest: str) -> bytes:
    algorithm, hex_digest = digest.split(":")
    return (storage(root) / "blobs" / algorithm / hex_digest[:2] / hex_digest / "data").read_bytes()


class Skopeo:
    """skopeo with a private, empty auth file, plain HTTP to 127.0.0.1 only."""

    def __init__(self, binary: str, auth_file: pathlib.Path) -> None:
        self.binary = binary
        auth_file.write_text(json.dumps({"auths": {}}))
        self.env = {**os.environ, "REGISTRY_AUTH_FILE": str(auth_file)}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, env=self.env, timeout=300, stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"skopeo {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        return result

    def push(self, layout: pathlib.Path, tag: str, destination: str, *flags: str, digest_file: pathlib.Path) -> str:
        """Copy ``layout:tag`` to ``docker://destination``; the digest of the manifest pushed."""
        self.run(
            "copy", "--dest-tls-verify=false", "--digestfile", str(digest_file), *flags,
            f"oci:{layout}:{tag}", f"docker://{destination}",
        )
        return digest_file.read_text().strip()

    def pull(self, source: str, layout: pathlib.Path, tag: str) -> None:
        """Copy ``docker://source`` with every platform, unchanged, into ``layout:tag``."""
        self.run("copy", "--src-tls-verify=false", "--all", "--preserve-digests", f"docker://{source}", f"oci:{layout}:{tag}")


@dataclass(frozen=True)
class Push:
    repository: str
    tag: str
    source: str                      # which source layout
    flags: tuple[str, ...] = ()


# Pushed in this order to each registry. ``moving`` first names the OCI "one"
# image, then "two", so its tag index has two entries and one revision stays
# untagged; compat/other shares every layer (and the config) of "one".
PUSHES = (
    Push("compat/app", "multi", "multi", ("--all",)),
    Push("compat/app", "v2s2", "one", ("--format", "v2s2")),
    Push("compat/app", "oci", "two"),
    Push("compat/app", "oci-alias", "two"),
    Push("compat/app", "moving", "one"),
    Push("compat/app", "moving", "two"),
    Push("compat/other", "shared", "one"),
)

EXPECTED_TAGS = {
    "compat/app": ["moving", "multi", "oci", "oci-alias", "v2s2"],
    "compat/other": ["shared"],
}


@dataclass
class Sources:
    """The OCI layouts pushed, and their manifest descriptors."""

    layouts: dict[str, pathlib.Path]
    descriptors: dict[str, dict]

    def blob(self, source: str, digest: str) -> bytes:
        return (self.layouts[source] / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


@dataclass
class PushedRoot:
    """A registry root after PUSHES, with the registry that wrote it stopped."""

    root: pathlib.Path
    digests: dict[tuple[str, str], str] = field(default_factory=dict)   # (repository, tag) -> now
    history: list[tuple[str, str, str]] = field(default_factory=list)   # (repository, tag, digest) pushed

    def copy_to(self, target: pathlib.Path) -> pathlib.Path:
        shutil.copytree(self.root, target, symlinks=True)
        return target


@pytest.fixture(scope="session")
def registry2_available() -> str:
    return require_tool("docker-registry", registry2_binary(), "docker-registry")


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    binary = require_tool("skopeo", shutil.which("skopeo"), "skopeo")
    return Skopeo(binary, tmp_path_factory.mktemp("skopeo") / "auth.json")


@pytest.fixture(scope="session")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    base = tmp_path_factory.mktemp("sources")
    layouts = {name: base / name for name in ("multi", "one", "two")}
    descriptors = {
        "multi": multi_arch_layout(layouts["multi"], "latest"),
        "one": single_image_layout(layouts["one"], "latest", seed="one"),
        "two": single_image_layout(layouts["two"], "latest", seed="two"),
    }
    return Sources(layouts, descriptors)


def push_all(skopeo: Skopeo, sources: Sources, host: str, root: pathlib.Path, scratch: pathlib.Path) -> PushedRoot:
    pushed = PushedRoot(root)
    for number, push in enumerate(PUSHES):
        digest = skopeo.push(
            sources.layouts[push.source], "latest", f"{host}/{push.repository}:{push.tag}", *push.flags,
            digest_file=scratch / f"digest-{number}",
        )
        if "--format" not in push.flags:
            # Nothing was converted: the manifest (or index) went up byte for byte.
            assert digest == sources.descriptors[push.source]["digest"], push
        pushed.digests[push.repository, push.tag] = digest
        pushed.history.append((push.repository, push.tag, digest))
    return pushed


@pytest.fixture(scope="module")
def registry2_pushed(tmp_path_factory, registry2_available, skopeo, sources) -> Iterator[PushedRoot]:
    """PUSHES into registry:2, which is then stopped."""
    base = tmp_path_factory.mktemp("registry2-pushed")
    server = Registry2Process(base / "root").start()
    try:
        pushed = push_all(skopeo, sources, server.host, server.root, base)
    finally:
        server.stop()
    yield pushed


@pytest.fixture(scope="module")
def dockyard_pushed(tmp_path_factory, registry2_available, skopeo, sources) -> Iterator[PushedRoot]:
    """PUSHES into Dockyard, which is then stopped."""
    base = tmp_path_factory.mktemp("dockyard-pushed")
    server = DockyardProcess(base / "root").start()
    try:
        pushed = push_all(skopeo, sources, server.host, server.root, base)
    finally:
        server.stop()
    yield pushed


@pytest.fixture(scope="module")
def dockyard_over_registry2(registry2_pushed) -> Iterator[DockyardProcess]:
    """Dockyard serving the root registry:2 wrote (read-only use)."""
    server = DockyardProcess(registry2_pushed.root).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def registry2_over_dockyard(dockyard_pushed) -> Iterator[Registry2Process]:
    """registry:2 serving the root Dockyard wrote (read-only use)."""
    server = Registry2Process(dockyard_pushed.root).start()
    try:
        yield server
    finally:
        server.stop()
