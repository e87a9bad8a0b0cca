"""``/v2/<name>/referrers/<digest>``: the referrers API and ``OCI-Subject``."""

from __future__ import annotations

from tests.support.registry_client import (
    EMPTY_DIGEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    odd_json,
    push_blob,
    push_image,
    sha256,
)

from .conftest import error_of, put_manifest

NAME = "library/app"
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


async def push_referrer(client, subject: dict, artifact_type: str | None, payload: bytes,
                        annotations: dict | None = None, config_type: str = OCI_EMPTY, tag: str | None = None) -> tuple[str, bytes]:
    await push_blob(client, NAME, b"{}")
    if config_type != OCI_EMPTY:
        await push_blob(client, NAME, b'{"a":1}')
    await push_blob(client, NAME, payload)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": (
            {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2}
            if config_type == OCI_EMPTY else descriptor(config_type, b'{"a":1}')
        ),
        "layers": [descriptor("application/octet-stream", payload)],
        "subject": subject,
    }
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    if annotations is not None:
        document["annotations"] = annotations
    content = odd_json(document)
    digest = sha256(content)
    response = await put_manifest(client, NAME, tag or digest, content, OCI_MANIFEST)
    assert response.status == 201, await response.text()
    assert response.headers["OCI-Subject"] == subject["digest"]
    assert response.headers["Docker-Content-Digest"] == digest
    return digest, content


async def referrers(client, subject: str, **params) -> tuple[dict, object]:
    response = await client.get(f"/v2/{NAME}/referrers/{subject}", params=params)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    return await response.json(), response


async def subject_image(client) -> dict:
    digest, content = await push_image(client, NAME, tag="v1")
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(content)}


async def test_no_referrers_is_an_empty_index(client):
    subject = await subject_image(client)
    index, response = await referrers(client, subject["digest"])
    assert index == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert "OCI-Filters-Applied" not in response.headers


async def test_no_referrers_for_an_unknown_subject(client):
    await subject_image(client)
    index, _ = await referrers(client, sha256(b"never pushed"))
    assert index["manifests"] == []


async def test_referrers_listed(client):
    subject = await subject_image(client)
    sbom, sbom_content = await push_referrer(client, subject, SBOM, b"sbom", {"org.example.kind": "sbom"})
    signature, signature_content = await push_referrer(client, subject, SIGNATURE, b"sig")
    index, _ = await referrers(client, subject["digest"])
    expected = sorted(
        [
            {"mediaType": OCI_MANIFEST, "digest": sbom, "size": len(sbom_content), "artifactType": SBOM,
             "annotations": {"org.example.kind": "sbom"}},
            {"mediaType": OCI_MANIFEST, "digest": signature, "size": len(signature_content), "artifactType": SIGNATURE},
        ],
        key=lambda entry: entry["digest"],
    )
    assert index == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": expected}


async def test_artifact_type_falls_back_to_config_media_type(client):
    subject = await subject_image(client)
    digest, content = await push_referrer(client, subject, None, b"payload", config_type="application/vnd.example.config")
    index, _ = await referrers(client, subject["digest"])
    assert index["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(content), "artifactType": "application/vnd.example.config"}
    ]


async def test_subject_need_not_exist(client):
    missing = {"mediaType": OCI_MANIFEST, "digest": sha256(b"not pushed yet"), "size": 123}
    digest, content = await push_referrer(client, missing, SBOM, b"early sbom")
    index, _ = await referrers(client, missing["digest"])
    assert index["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(content), "artifactType": SBOM}
    ]
    response = await client.get(f"/v2/{NAME}/manifests/{missing['digest']}")
    await error_of(response, 404, "MANIFEST_UNKNOWN")


async def test_index_with_subject_is_a_referrer(client):
    subject = await subject_image(client)
    child_digest, child_content = await push_image(client, NAME, seed="child")
    content = odd_json({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": SBOM,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child_digest, "size": len(child_content)}],
        "subject": subject,
    })
    response = await put_manifest(client, NAME, sha256(content), content, OCI_INDEX)
    assert response.status == 201
    assert response.headers["OCI-Subject"] == subject["digest"]
    index, _ = await referrers(client, subject["digest"])
    assert index["manifests"] == [
        {"mediaType": OCI_INDEX, "digest": sha256(content), "size": len(content), "artifactType": SBOM}
    ]


async def test_artifact_type_filter(client):
    subject = await subject_image(client)
    sbom, sbom_content = await push_referrer(client, subject, SBOM, b"sbom")
    await push_referrer(client, subject, SIGNATURE, b"sig")
    index, response = await referrers(client, subject["digest"], artifactType=SBOM)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert index["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": sbom, "size": len(sbom_content), "artifactType": SBOM}
    ]
    index, response = await referrers(client, subject["digest"], artifactType="application/vnd.none")
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert index["manifests"] == []


async def test_referrers_are_per_repository(client):
    subject = await subject_image(client)
    await push_referrer(client, subject, SBOM, b"sbom")
    await push_blob(client, "other", b"x")
    response = await client.get(f"/v2/other/referrers/{subject['digest']}")
    assert response.status == 200
    assert (await response.json())["manifests"] == []


async def test_deleting_a_referrer_removes_it(client):
    subject = await subject_image(client)
    sbom, _ = await push_referrer(client, subject, SBOM, b"sbom")
    signature, signature_content = await push_referrer(client, subject, SIGNATURE, b"sig")
    response = await client.delete(f"/v2/{NAME}/manifests/{sbom}")
    assert response.status == 202
    index, _ = await referrers(client, subject["digest"])
    assert index["manifests"] == [
        {"mediaType": OCI_MANIFEST, "digest": signature, "size": len(signature_content), "artifactType": SIGNATURE}
    ]
    response = await client.delete(f"/v2/{NAME}/manifests/{signature}")
    assert response.status == 202
    index, _ = await referrers(client, subject["digest"])
    assert index["manifests"] == []


async def test_untagging_a_referrer_keeps_it(client):
    subject = await subject_image(client)
    sbom, _ = await push_referrer(client, subject, SBOM, b"sbom", tag="sbom-tag")
    response = await client.delete(f"/v2/{NAME}/manifests/sbom-tag")
    assert response.status == 202
    index, _ = await referrers(client, subject["digest"])
    assert [entry["digest"] for entry in index["manifests"]] == [sbom]


async def test_referrers_bad_digest(client):
    await subject_image(client)
    response = await client.get(f"/v2/{NAME}/referrers/sha256:1234")
    await error_of(response, 400, "DIGEST_INVALID")


async def test_referrers_of_a_repository_never_pushed_is_an_empty_index(client, storage):
    before = storage.files()
    response = await client.get(f"/v2/nobody/referrers/{sha256(b'x')}")
    assert response.status == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert await response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert storage.files() == before  # answered without creating the repository
