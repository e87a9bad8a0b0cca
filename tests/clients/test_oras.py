"""oras-py against Dockyard: plain artifacts, and artifacts with a ``subject`` found through the referrers API."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import httpx
import pytest

from tests.support.clients import fetch_manifest
from tests.support.registry_client import OCI_INDEX, OCI_MANIFEST, sha256
from tests.support.server import DockyardProcess
from tests.support.tools import unavailable

try:
    import oras.client
    import oras.oci
except ImportError as error:  # reported by the fixture: a skip locally, a failure in CI
    oras = None
    ORAS_MISSING = str(error)

SBOM_TYPE = "application/vnd.dockyard.test.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.dockyard.test.signature.v1+json"


@pytest.fixture
def oras_client(dockyard: DockyardProcess, client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    if oras is None:
        unavailable(f"oras-py is not installed: {ORAS_MISSING}")
    # Any Docker config oras-py reads is the temporary one, never the user's.
    monkeypatch.setenv("DOCKER_CONFIG", client_env["DOCKER_CONFIG"])
    client = oras.client.OrasClient(hostname=dockyard.host, insecure=True, auth_backend="basic")
    yield client


def _file(path: pathlib.Path, content: bytes) -> pathlib.Path:
    path.write_bytes(content)
    return path


def test_push_pull_plain_artifact(oras_client, dockyard: DockyardProcess, api: httpx.Client, tmp_path: pathlib.Path) -> None:
    readme = _file(tmp_path / "readme.txt", b"dockyard artifact\n" * 100)
    data = _file(tmp_path / "data.bin", bytes(range(256)) * 64)
    target = f"{dockyard.host}/oras/plain:v1"

    response = oras_client.push(
        target=target,
        files=[f"{readme}:text/plain", str(data)],
        disable_path_validation=True,
        manifest_annotations={"org.opencontainers.image.title": "plain"},
    )
    assert response.status_code == 201
    assert "OCI-Subject" not in response.headers

    served = fetch_manifest(api, "oras/plain", "v1")
    assert served.headers["Docker-Content-Digest"] == response.headers["Docker-Content-Digest"]
    assert served.headers["Content-Type"] == OCI_MANIFEST
    manifest = json.loads(served.content)
    assert [layer["digest"] for layer in manifest["layers"]] == [
        sha256(readme.read_bytes()), sha256(data.read_bytes())
    ]
    assert manifest["layers"][0]["mediaType"] == "text/plain"
    assert oras_client.get_manifest(target) == manifest

    out = tmp_path / "out"
    pulled = oras_client.pull(target=target, outdir=str(out))
    assert sorted(pathlib.Path(path).name for path in pulled) == ["data.bin", "readme.txt"]
    assert (out / "readme.txt").read_bytes() == readme.read_bytes()
    assert (out / "data.bin").read_bytes() == data.read_bytes()

    assert oras_client.get_tags(target) == ["v1"]


def test_artifact_with_subject_found_by_referrers(
    oras_client, dockyard: DockyardProcess, api: httpx.Client, tmp_path: pathlib.Path
) -> None:
    # The subject: an ordinary artifact.
    app = _file(tmp_path / "app.txt", b"the application\n")
    oras_client.push(target=f"{dockyard.host}/oras/app:v1", files=[str(app)], disable_path_validation=True)
    subject_response = fetch_manifest(api, "oras/app", "v1")
    subject_digest = subject_response.headers["Docker-Content-Digest"]
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=len(subject_response.content))

    # Nothing refers to it yet.
    empty = api.get(f"/v2/oras/app/referrers/{subject_digest}")
    assert empty.status_code == 200
    assert empty.headers["Content-Type"] == OCI_INDEX
    assert empty.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}

    # Two referrers of different types; oras-py states the type as the config's media type.
    sbom = _file(tmp_path / "sbom.json", json.dumps({"packages": ["dockyard"]}).encode())
    sbom_config = _file(tmp_path / "sbom-config.json", b"{}")
    sbom_push = oras_client.push(
        target=f"{dockyard.host}/oras/app:sbom",
        files=[f"{sbom}:application/spdx+json"],
        manifest_config=f"{sbom_config}:{SBOM_TYPE}",
        manifest_annotations={"org.example.kind": "sbom"},
        subject=subject,
        disable_path_validation=True,
    )
    assert sbom_push.status_code == 201
    assert sbom_push.headers["OCI-Subject"] == subject_digest
    sbom_digest = sbom_push.headers["Docker-Content-Digest"]

    signature = _file(tmp_path / "signature.sig", b"not really a signature")
    signature_config = _file(tmp_path / "signature-config.json", b"{}")
    signature_push = oras_client.push(
        target=f"{dockyard.host}/oras/app:signature",
        files=[str(signature)],
        manifest_config=f"{signature_config}:{SIGNATURE_TYPE}",
        subject=subject,
        disable_path_validation=True,
    )
    assert signature_push.status_code == 201
    assert signature_push.headers["OCI-Subject"] == subject_digest
    signature_digest = signature_push.headers["Docker-Content-Digest"]

    sbom_manifest = fetch_manifest(api, "oras/app", sbom_digest)
    assert json.loads(sbom_manifest.content)["subject"] == {
        "mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_response.content)
    }

    listed = api.get(f"/v2/oras/app/referrers/{subject_digest}")
    assert listed.status_code == 200
    assert listed.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in listed.headers
    index = listed.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    by_digest = {descriptor["digest"]: descriptor for descriptor in index["manifests"]}
    assert set(by_digest) == {sbom_digest, signature_digest}
    assert by_digest[sbom_digest] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom_digest,
        "size": len(sbom_manifest.content),
        "artifactType": SBOM_TYPE,
        "annotations": {"org.example.kind": "sbom"},
    }
    assert by_digest[signature_digest]["artifactType"] == SIGNATURE_TYPE
    assert by_digest[signature_digest]["size"] == len(fetch_manifest(api, "oras/app", signature_digest).content)

    filtered = api.get(f"/v2/oras/app/referrers/{subject_digest}", params={"artifactType": SBOM_TYPE})
    assert filtered.status_code == 200
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [descriptor["digest"] for descriptor in filtered.json()["manifests"]] == [sbom_digest]

    none = api.get(f"/v2/oras/app/referrers/{subject_digest}", params={"artifactType": "application/vnd.none"})
    assert none.status_code == 200
    assert none.headers["OCI-Filters-Applied"] == "artifactType"
    assert none.json()["manifests"] == []

    # The referrer pulls back with oras-py like any artifact.
    out = tmp_path / "out"
    oras_client.pull(target=f"{dockyard.host}/oras/app@{sbom_digest}", outdir=str(out))
    assert (out / "sbom.json").read_bytes() == sbom.read_bytes()

    # Deleting a referrer takes it out of the list.
    assert api.delete(f"/v2/oras/app/manifests/{signature_digest}").status_code == 202
    after = api.get(f"/v2/oras/app/referrers/{subject_digest}").json()
    assert [descriptor["digest"] for descriptor in after["manifests"]] == [sbom_digest]
