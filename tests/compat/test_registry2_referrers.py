"""Referrers pushed to registry:2 (which keeps no referrers index) are listed by Dockyard
once ``scrub --repair`` has indexed the root: exactly what the same pushes to Dockyard list."""

from __future__ import annotations

import json
import pathlib

import httpx
import pytest
from click.testing import CliRunner

from dockyard.cli import main
from tests.support.registry2 import Registry2Process
from tests.support.registry_client import OCI_EMPTY, OCI_MANIFEST, push_blob, push_manifest, sha256
from tests.support.server import DockyardProcess

pytestmark = pytest.mark.clients

NAME = "compat/signed"
SIGNATURE = "application/vnd.example.signature.v1"


def _document(config: bytes, config_type: str, layer: bytes, **extra: object) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256(layer), "size": len(layer)}],
        **extra,
    }).encode()


def _push(url: str) -> tuple[str, str]:
    """An image tagged v1 and an untagged signature of it (pushed by digest); their digests."""
    image = _document(b'{"os":"linux"}', "application/vnd.oci.image.config.v1+json", b"image layer")
    subject = {"mediaType": OCI_MANIFEST, "digest": sha256(image), "size": len(image)}
    signature = _document(b"{}", OCI_EMPTY, b"signature bytes", artifactType=SIGNATURE, subject=subject,
                          annotations={"org.example.signed-by": "ci"})
    with httpx.Client(base_url=url) as client:
        for blob in (b'{"os":"linux"}', b"image layer", b"{}", b"signature bytes"):
            push_blob(client, NAME, blob)  # not monolithic: registry:2 takes no monolithic POST
        push_manifest(client, NAME, "v1", image, OCI_MANIFEST)
        push_manifest(client, NAME, None, signature, OCI_MANIFEST)
    return sha256(image), sha256(signature)


def _referrers(root: pathlib.Path, subject: str) -> dict:
    server = DockyardProcess(root).start()
    try:
        response = httpx.get(f"{server.url}/v2/{NAME}/referrers/{subject}")
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    return response.json()


def test_a_referrer_pushed_to_registry2_is_listed_after_scrub_repair(tmp_path: pathlib.Path, registry2_available) -> None:
    with Registry2Process(tmp_path / "registry2") as registry2:
        subject, signature = _push(registry2.url)
    fresh = DockyardProcess(tmp_path / "dockyard").start()
    try:
        assert _push(fresh.url) == (subject, signature)
    finally:
        fresh.stop()
    expected = _referrers(tmp_path / "dockyard", subject)
    assert [entry["digest"] for entry in expected["manifests"]] == [signature]

    assert _referrers(tmp_path / "registry2", subject)["manifests"] == []  # registry:2 wrote no index
    scrub = CliRunner().invoke(main, ["scrub", "--root", str(tmp_path / "registry2")], catch_exceptions=False)
    assert f"missing referrer link: {NAME}: {signature} refers to {subject}\n" in scrub.output and scrub.exit_code == 1
    repaired = CliRunner().invoke(main, ["scrub", "--root", str(tmp_path / "registry2"), "--repair"], catch_exceptions=False)
    assert "(repaired)" in repaired.output
    assert _referrers(tmp_path / "registry2", subject) == expected
    clean = CliRunner().invoke(main, ["scrub", "--root", str(tmp_path / "registry2")], catch_exceptions=False)
    assert clean.exit_code == 0, clean.output
