"""A Dockyard with users, a policy and content for the browser tests, and a headless Chromium.

The registry holds what the issue asks the page to show: a multi-arch image pushed by
skopeo, a single-platform image with a signature and an SBOM that name it as their
subject, and one repository with 5,000 tags (its tag links written straight into the
storage layout, which takes a fraction of a second).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from dockyard.auth.htpasswd import hash_password
from dockyard.reference import parse_digest
from dockyard.storage import paths
from tests.events.conftest import Receiver
from tests.support.images import Image, Layout, multi_arch_layout
from tests.support.registry_client import OCI_CONFIG, OCI_EMPTY, OCI_MANIFEST, descriptor, push_blob, push_manifest
from tests.support.server import DockyardProcess
from tests.support.tools import require_tool, unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
USERS = {"admin": "admin-secret-1", "reader": "reader-secret-1"}
POLICY = """\
admins: [admin]
rules:
  - who: [reader]
    repositories: ["**"]
    actions: [pull]
"""
AXE_CORE_VERSION = "4.10.3"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM_TYPE = "application/spdx+json"
MANY_TAGS = 5000
# A Dockerfile's shell-form CMD, as the config holds it: every character the page must show as written.
SHELL_SCRIPT = "make && ./run > /dev/null 2>&1 < /dev/null || echo 'failed'"
LONG_TAG = "1.4.2-amd64-zstd-chunked-20261207.1542-build-with-a-long-suffix"
EVENTS_ENDPOINT = "platform-team-build-notifications-to-the-chat-bridge"
QUOTA_GLOB = "apps/**"


@dataclass
class Filled:
    """The running registry and what was put in it."""

    server: DockyardProcess
    image_digest: str  # apps/single:1.0 (also LONG_TAG), the subject of the signature and the SBOM
    signature_digest: str
    sbom_digest: str
    cosign_tag: str  # cosign's tag-based signature of apps/single:1.0: sha256-<hex>.sig
    seed_seconds: float  # writing the 5,000 tags

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, user: str = "admin") -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(user, USERS[user]), timeout=60)


def push_artifact(api: httpx.Client, name: str, artifact_type: str, files: dict[str, bytes], subject: dict | None) -> str:
    """An OCI artifact (empty config, one blob per file), pushed by digest, with ``subject`` if given."""
    for data in (b"{}", *files.values()):
        push_blob(api, name, data, monolithic=True)
    layers = [
        descriptor("application/octet-stream", data, annotations={"org.opencontainers.image.title": title})
        for title, data in files.items()
    ]
    document = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": descriptor(OCI_EMPTY, b"{}"), "layers": layers,
        "annotations": {"org.opencontainers.image.created": "2026-11-01T12:00:00Z"},
    }
    if subject is not None:
        document["subject"] = subject
    return push_manifest(api, name, None, json.dumps(document).encode(), OCI_MANIFEST)


def rich_image_layout(path: pathlib.Path) -> None:
    """A one-platform image whose config has all the page decodes: entrypoint, ports, labels, env, history."""
    layout = Layout(path)
    descriptor = layout.image(Image(
        layers=[{"bin/app": b"#!/bin/sh\necho app\n" * 200}, {"etc/app.conf": b"port=8080\n"}],
        cmd=["/bin/sh", "-c", SHELL_SCRIPT], labels={"org.opencontainers.image.source": "https://example.com/app", "team": "platform"},
    ))
    # Layout.image writes a plain config; give this one an entrypoint, ports and an empty history step.
    manifest_path = path / "blobs" / "sha256" / descriptor["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    config_path = path / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]
    config = json.loads(config_path.read_text())
    config["config"].update({"Entrypoint": ["/bin/app"], "ExposedPorts": {"8080/tcp": {}}, "WorkingDir": "/srv"})
    config["history"] = [
        {"created": "2026-01-01T00:00:00Z", "created_by": "COPY bin/app /bin/app"},
        {"created": "2026-01-01T00:00:00Z", "created_by": "ENV MODE=prod", "empty_layer": True},
        {"created": "2026-01-01T00:00:01Z", "created_by": "COPY app.conf /etc/app.conf"},
    ]
    manifest["config"] = layout.blob(json.dumps(config).encode(), manifest["config"]["mediaType"])
    del descriptor["platform"]
    layout.tag({**layout.blob(json.dumps(manifest).encode(), OCI_MANIFEST)}, "1.0")


def push_cosign_signature(api: httpx.Client, name: str, subject: str) -> str:
    """A signature as cosign attaches it without referrers: an image manifest of simple-signing
    layers under the tag ``sha256-<hex>.sig``; the tag."""
    config = json.dumps({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    payload = json.dumps({"critical": {"image": {"docker-manifest-digest": subject}}}).encode()
    for data in (config, payload):
        push_blob(api, name, data, monolithic=True)
    tag = subject.replace(":", "-") + ".sig"
    push_manifest(api, name, tag, json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor("application/vnd.dev.cosign.simplesigning.v1+json", payload,
                              annotations={"dev.cosignproject.cosign/signature": "MEUCIQ"})],
    }).encode(), OCI_MANIFEST)
    return tag


def seed_tags(root: pathlib.Path, name: str, digests: list[str], count: int) -> None:
    """``count`` tag links in ``name``, in registry:2's layout, spread over ``digests`` and an hour of push times.

    Written straight to disk without the storage layer's fsync per link (test data in a
    temporary folder), and only each tag's ``current`` link: its ``index`` history is
    read by nothing here.
    """
    now = time.time()
    for number in range(count):
        link = root / paths.tag_current_link(name, f"build-{number:05d}").lstrip("/")
        link.parent.mkdir(parents=True)
        link.write_text(str(parse_digest(digests[number % len(digests)])))
        moment = now - 3600 + number * 0.5
        os.utime(link, (moment, moment))


def start_registry(root: pathlib.Path, *extra: str) -> DockyardProcess:
    htpasswd = root.parent / "users.htpasswd"
    htpasswd.write_text("".join(f"{user}:{hash_password(password)}\n" for user, password in USERS.items()))
    policy = root.parent / "policy.yml"
    policy.write_text(POLICY)
    return DockyardProcess(root, "--htpasswd", str(htpasswd), "--access-policy", str(policy), *extra).start()


@pytest.fixture(scope="module")
def failing_endpoint() -> Iterator[Receiver]:
    """An events endpoint that answers every delivery 503: the events page lists failures."""
    receiver = Receiver().start()
    receiver.status = 503
    try:
        yield receiver
    finally:
        receiver.stop()


def governance_config(folder: pathlib.Path, endpoint_url: str) -> pathlib.Path:
    """What the pages of the other features show: an events endpoint (with a long name) and a quota."""
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "storage:\n  delete:\n    enabled: true\n"  # registry:2's default is off; the pages delete
        "notifications:\n  endpoints:\n"
        f"    - name: {EVENTS_ENDPOINT}\n      url: {endpoint_url}\n      timeout: 1s\n      threshold: 1\n      backoff: 100ms\n"
        "dockyard:\n"
        "  events:\n    poll_interval: 100ms\n    max_backoff: 10s\n"  # failures listed, without retrying all along
        f"  quotas:\n    - repositories: {json.dumps(QUOTA_GLOB)}\n      max_bytes: 64KiB\n"
    )
    return config


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, skopeo, failing_endpoint: Receiver) -> Iterator[Filled]:  # noqa: F811
    base = tmp_path_factory.mktemp("ui-registry")
    server = start_registry(base / "root", "--config", str(governance_config(base, failing_endpoint.url)))
    try:
        creds = f"--dest-creds=admin:{USERS['admin']}"
        multi = base / "multi"
        multi_arch_layout(multi, "v1")
        skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", creds, f"oci:{multi}:v1",
               f"docker://{server.host}/apps/multi:v1")
        single = base / "single"
        rich_image_layout(single)
        skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", creds, f"oci:{single}:1.0",
               f"docker://{server.host}/apps/single:1.0")
        skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", creds, f"oci:{multi}:v1",
               f"docker://{server.host}/big/many:base")
        skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", creds, f"oci:{single}:1.0",
               f"docker://{server.host}/big/many:small")
        with httpx.Client(base_url=server.url, auth=("admin", USERS["admin"]), timeout=60) as api:
            served = api.get("/v2/apps/single/manifests/1.0", headers={"Accept": OCI_MANIFEST})
            subject = {"mediaType": OCI_MANIFEST, "digest": served.headers["Docker-Content-Digest"], "size": len(served.content)}
            signature = push_artifact(api, "apps/single", SIGNATURE_TYPE, {"signature.sig": b"fake signature\n"}, subject)
            sbom = push_artifact(api, "apps/single", SBOM_TYPE, {"sbom.spdx.json": json.dumps({"spdxVersion": "SPDX-2.3"}).encode()}, subject)
            cosign = push_cosign_signature(api, "apps/single", subject["digest"])
            push_manifest(api, "apps/single", LONG_TAG, served.content, OCI_MANIFEST)
            many = [api.get(f"/v2/big/many/manifests/{tag}", headers={"Accept": "*/*"}).headers["Docker-Content-Digest"]
                    for tag in ("base", "small")]
        started = time.perf_counter()
        seed_tags(server.root, "big/many", many, MANY_TAGS)
        seed_seconds = time.perf_counter() - started
        yield Filled(server, subject["digest"], signature, sbom, cosign, seed_seconds)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Where pages are photographed: ``DOCKYARD_SCREENSHOTS`` to keep them, a temporary folder otherwise."""
    kept = os.environ.get("DOCKYARD_SCREENSHOTS")
    if kept:
        path = pathlib.Path(kept)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright's sync API (these tests are plain functions).

    Module-scoped: the sync API keeps an event loop running in this thread while it is
    open, which the async tests of other modules could not start beside.
    """
    require_tool("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        unavailable(f"playwright is not installed: {error}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser, filled: Filled):
    """A fresh browser profile (no cookies) that may use the clipboard."""
    context = browser.new_context(base_url=filled.url, viewport={"width": 1280, "height": 860})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=filled.url)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture(scope="session")
def axe_script() -> str:
    """axe-core's browser script, installed once by npm into the user's cache folder (outside the repository)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: no axe-core to check accessibility with")
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "dockyard-tests"
    folder = cache / f"axe-core-{AXE_CORE_VERSION}"
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        cache.mkdir(parents=True, exist_ok=True)
        # Installed beside, then renamed: a run stopped halfway, or one beside this one, leaves no half install.
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".axe-core-{AXE_CORE_VERSION}-", dir=cache))
        try:
            subprocess.run(
                [npm, "install", "--prefix", str(staging), "--no-save", "--no-audit", "--no-fund", "--no-package-lock",
                 f"axe-core@{AXE_CORE_VERSION}"],
                check=True, capture_output=True, timeout=300,
            )
            if not script.exists():
                staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return script.read_text()
