"""Parsing pushed manifests: the accepted kinds and every refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard import manifest
from dockyard.api import errors
from dockyard.api.errors import RegistryError, from_domain
from dockyard.errors import ManifestInvalid, ManifestTooLarge
from dockyard.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    FOREIGN_LAYER_TYPES,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
)
from dockyard.reference import Digest, parse_digest
from tests.support.registry_client import DOCKER_CONFIG, DOCKER_LAYER, EMPTY_DIGEST, OCI_CONFIG, OCI_EMPTY, OCI_LAYER, sha256

DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


CONFIG_DIGEST = sha256(b"config")
LAYER1_DIGEST = sha256(b"layer1")
LAYER2_DIGEST = sha256(b"layer2")
CHILD_DIGEST = sha256(b"child")
SUBJECT_DIGEST = sha256(b"subject")


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def docker_manifest() -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": CONFIG_DIGEST, "size": 6},
        "layers": [
            {"mediaType": DOCKER_LAYER, "digest": LAYER1_DIGEST, "size": 6},
            {"mediaType": DOCKER_LAYER, "digest": LAYER2_DIGEST, "size": 6},
        ],
    }


def oci_manifest(**extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": CONFIG_DIGEST, "size": 6},
        "layers": [{"mediaType": OCI_LAYER, "digest": LAYER1_DIGEST, "size": 6}],
    }
    document.update(extra)
    return document


def assert_invalid(content: bytes, content_type: str | None, *fragments: str) -> RegistryError:
    with pytest.raises(ManifestInvalid) as caught:
        manifest.parse(content, content_type)
    error = from_domain(caught.value)
    assert error.error is errors.MANIFEST_INVALID
    assert error.status == 400
    for fragment in fragments:
        assert fragment in error.message, error.message
    return error


# -- accepted kinds ------------------------------------------------------------------


def test_docker_v2_schema2() -> None:
    parsed = manifest.parse(encode(docker_manifest()), DOCKER_MANIFEST)
    assert parsed.media_type == DOCKER_MANIFEST
    assert parsed.is_index is False
    assert parsed.blobs == (
        Descriptor(DOCKER_CONFIG, parse_digest(CONFIG_DIGEST), 6),
        Descriptor(DOCKER_LAYER, parse_digest(LAYER1_DIGEST), 6),
        Descriptor(DOCKER_LAYER, parse_digest(LAYER2_DIGEST), 6),
    )
    assert parsed.children == ()
    assert parsed.subject is None
    assert parsed.artifact_type is None
    assert parsed.annotations == {}


def test_content_type_parameters_and_case_are_ignored() -> None:
    parsed = manifest.parse(encode(docker_manifest()), DOCKER_MANIFEST.upper() + "; charset=utf-8")
    assert parsed.media_type == DOCKER_MANIFEST


def test_docker_manifest_list() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": CHILD_DIGEST,
                "size": 528,
                "platform": {"architecture": "amd64", "os": "linux"},
            },
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": LAYER1_DIGEST,
                "size": 529,
                "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
            },
        ],
    }
    parsed = manifest.parse(encode(document), DOCKER_MANIFEST_LIST)
    assert parsed.media_type == DOCKER_MANIFEST_LIST
    assert parsed.is_index is True
    assert parsed.blobs == ()
    assert [(child.digest, child.size) for child in parsed.children] == [
        (parse_digest(CHILD_DIGEST), 528),
        (parse_digest(LAYER1_DIGEST), 529),
    ]
    assert parsed.children[0].platform == {"architecture": "amd64", "os": "linux"}
    assert parsed.children[1].platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}


def test_oci_manifest_with_annotations() -> None:
    parsed = manifest.parse(encode(oci_manifest(annotations={"org.example": "yes"})), OCI_MANIFEST)
    assert parsed.media_type == OCI_MANIFEST
    assert parsed.is_index is False
    assert [blob.media_type for blob in parsed.blobs] == [OCI_CONFIG, OCI_LAYER]
    assert [str(blob.digest) for blob in parsed.blobs] == [CONFIG_DIGEST, LAYER1_DIGEST]
    assert parsed.annotations == {"org.example": "yes"}


def test_oci_manifest_without_media_type_takes_the_content_type() -> None:
    document = oci_manifest()
    del document["mediaType"]
    assert manifest.parse(encode(document), OCI_MANIFEST).media_type == OCI_MANIFEST


def test_oci_manifest_without_media_type_or_content_type_is_detected() -> None:
    document = oci_manifest()
    del document["mediaType"]
    assert manifest.parse(encode(document), None).media_type == OCI_MANIFEST
    assert manifest.parse(encode(document), "application/json").media_type == OCI_MANIFEST


def test_oci_manifest_without_layers_is_accepted() -> None:
    document = oci_manifest()
    del document["layers"]
    parsed = manifest.parse(encode(document), OCI_MANIFEST)
    assert [str(blob.digest) for blob in parsed.blobs] == [CONFIG_DIGEST]


def test_oci_index() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": CHILD_DIGEST, "size": 400, "platform": {"architecture": "amd64", "os": "linux"}}
        ],
        "annotations": {"a": "b"},
    }
    parsed = manifest.parse(encode(document), OCI_INDEX)
    assert parsed.media_type == OCI_INDEX
    assert parsed.is_index is True
    assert parsed.children == (
        Descriptor(OCI_MANIFEST, parse_digest(CHILD_DIGEST), 400, platform={"architecture": "amd64", "os": "linux"}),
    )
    assert parsed.annotations == {"a": "b"}


def test_oci_index_without_media_type_is_detected() -> None:
    document = {"schemaVersion": 2, "manifests": []}
    parsed = manifest.parse(encode(document), None)
    assert parsed.media_type == OCI_INDEX
    assert parsed.children == ()


def test_oci_artifact_with_empty_config() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
        "layers": [
            {
                "mediaType": "application/vnd.example.sbom.v1+json",
                "digest": LAYER1_DIGEST,
                "size": 6,
                "annotations": {"org.opencontainers.image.title": "sbom.json"},
            }
        ],
    }
    parsed = manifest.parse(encode(document), OCI_MANIFEST)
    assert parsed.artifact_type == "application/vnd.example.sbom.v1"
    assert parsed.blobs[0] == Descriptor(OCI_EMPTY, parse_digest(EMPTY_DIGEST), 2)
    assert parsed.blobs[1].annotations == {"org.opencontainers.image.title": "sbom.json"}
    assert parsed.blobs[1].media_type == "application/vnd.example.sbom.v1+json"


def test_artifact_with_custom_config_media_type() -> None:
    document = oci_manifest(config={"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": CONFIG_DIGEST, "size": 6})
    parsed = manifest.parse(encode(document), OCI_MANIFEST)
    assert parsed.blobs[0].media_type == "application/vnd.cncf.helm.config.v1+json"
    assert parsed.artifact_type is None


def test_subject() -> None:
    document = oci_manifest(
        artifactType="application/vnd.example.signature",
        subject={"mediaType": OCI_MANIFEST, "digest": SUBJECT_DIGEST, "size": 1234},
    )
    parsed = manifest.parse(encode(document), OCI_MANIFEST)
    assert parsed.subject == Descriptor(OCI_MANIFEST, parse_digest(SUBJECT_DIGEST), 1234)
    assert parsed.artifact_type == "application/vnd.example.signature"


def test_index_with_subject() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": SUBJECT_DIGEST, "size": 12},
    }
    parsed = manifest.parse(encode(document), OCI_INDEX)
    assert parsed.subject is not None and str(parsed.subject.digest) == SUBJECT_DIGEST


def test_foreign_layers_keep_their_urls() -> None:
    document = docker_manifest()
    document["layers"].append(
        {
            "mediaType": DOCKER_FOREIGN,
            "digest": CHILD_DIGEST,
            "size": 1000,
            "urls": ["https://example.com/layer.tar.gz"],
        }
    )
    parsed = manifest.parse(encode(document), DOCKER_MANIFEST)
    foreign = parsed.blobs[-1]
    assert foreign.media_type in FOREIGN_LAYER_TYPES
    assert foreign.urls == ("https://example.com/layer.tar.gz",)
    assert parsed.blobs[1].urls == ()


def test_foreign_layer_types() -> None:
    assert FOREIGN_LAYER_TYPES == {
        DOCKER_FOREIGN,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }


def test_manifest_of_exactly_the_limit_is_accepted() -> None:
    content = encode(oci_manifest())
    content += b" " * (MAX_MANIFEST_BYTES - len(content))
    assert len(content) == MAX_MANIFEST_BYTES
    assert manifest.parse(content, OCI_MANIFEST).media_type == OCI_MANIFEST


# -- refusals ------------------------------------------------------------------------


def test_manifest_over_4_mib_is_413() -> None:
    content = encode(oci_manifest())
    content += b" " * (MAX_MANIFEST_BYTES + 1 - len(content))
    with pytest.raises(ManifestTooLarge) as caught:
        manifest.parse(content, OCI_MANIFEST)
    answer = from_domain(caught.value)
    assert answer.status == 413
    assert answer.error is errors.MANIFEST_TOO_LARGE
    assert answer.error.code == "MANIFEST_INVALID"
    assert MAX_MANIFEST_BYTES == 4 * 1024 * 1024


@pytest.mark.parametrize("content_type", [SCHEMA1, SCHEMA1_SIGNED, SCHEMA1_SIGNED + "; charset=utf-8", SCHEMA1.upper()])
def test_schema1_by_content_type(content_type: str) -> None:
    # Even a well-formed schema 2 body is refused when declared as schema 1.
    assert_invalid(encode(docker_manifest()), content_type, "schema 1")


@pytest.mark.parametrize("content_type", [None, "application/json", DOCKER_MANIFEST])
def test_schema1_by_schema_version(content_type: str | None) -> None:
    document = {
        "schemaVersion": 1,
        "name": "library/hello",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": LAYER1_DIGEST}],
        "history": [],
        "signatures": [],
    }
    assert_invalid(encode(document), content_type, "schema 1")


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"not json", b'{"schemaVersion": 2,}', b"\xff\xfe\x00", b"[" * 100000 + b"]" * 100000, b'{"a": ' + b"1" * 5000 + b"}"],
)
def test_invalid_json(content: bytes) -> None:
    assert_invalid(content, OCI_MANIFEST, "not valid JSON")


@pytest.mark.parametrize("content", [b"[]", b"2", b'"manifest"', b"null", b"true"])
def test_non_object(content: bytes) -> None:
    assert_invalid(content, OCI_MANIFEST, "JSON object")


@pytest.mark.parametrize("version", [None, 3, "2", 0, True, 2.0, 1.0])
def test_wrong_schema_version(version: Any) -> None:
    document = oci_manifest()
    if version is None:
        del document["schemaVersion"]
    else:
        document["schemaVersion"] = version
    assert_invalid(encode(document), OCI_MANIFEST, "schemaVersion must be 2")


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_missing_config(media_type: str) -> None:
    document = docker_manifest() if media_type == DOCKER_MANIFEST else oci_manifest()
    del document["config"]
    assert_invalid(encode(document), media_type, "config")


def test_docker_manifest_needs_layers() -> None:
    document = docker_manifest()
    del document["layers"]
    assert_invalid(encode(document), DOCKER_MANIFEST, "layers must be a list")


def test_index_needs_manifests() -> None:
    assert_invalid(encode({"schemaVersion": 2, "mediaType": OCI_INDEX}), OCI_INDEX, "manifests must be a list")


def test_layers_must_be_a_list() -> None:
    assert_invalid(encode(oci_manifest(layers={"not": "a list"})), OCI_MANIFEST, "layers must be a list")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"size": -1}, "config.size"),
        ({"size": True}, "config.size"),
        ({"size": False}, "config.size"),
        ({"size": 1.5}, "config.size"),
        ({"size": "6"}, "config.size"),
        ({"size": None}, "config.size"),
        ({"digest": "sha256:abc"}, "config.digest"),
        ({"digest": "sha256:" + "A" * 64}, "config.digest"),
        ({"digest": "md5:" + "0" * 32}, "config.digest"),
        ({"digest": 12}, "config.digest"),
        ({"digest": None}, "config.digest"),
        ({"mediaType": ""}, "config.mediaType"),
        ({"mediaType": 5}, "config.mediaType"),
        ({"mediaType": None}, "config.mediaType"),
    ],
)
def test_bad_config_descriptor_fields(change: dict[str, Any], fragment: str) -> None:
    config = {"mediaType": OCI_CONFIG, "digest": CONFIG_DIGEST, "size": 6}
    config.update(change)
    assert_invalid(encode(oci_manifest(config=config)), OCI_MANIFEST, fragment)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"size": -5}, "layers[1].size"), ({"size": True}, "layers[1].size"), ({"digest": "sha256:xyz"}, "layers[1].digest")],
)
def test_bad_layer_descriptor_fields(change: dict[str, Any], fragment: str) -> None:
    document = docker_manifest()
    document["layers"][1].update(change)
    assert_invalid(encode(document), DOCKER_MANIFEST, fragment)


def oci_index() -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": CHILD_DIGEST, "size": 6}],
    }


def docker_manifest_list() -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": CHILD_DIGEST,
                "size": 6,
                "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
            }
        ],
    }


SUBJECT = {"mediaType": OCI_MANIFEST, "digest": SUBJECT_DIGEST, "size": 6}

# Each kind of manifest, and where in it a descriptor stands.
DESCRIPTOR_PLACES = [
    (oci_manifest, ("config",)),
    (oci_manifest, ("layers", 0)),
    (lambda: oci_manifest(subject=dict(SUBJECT)), ("subject",)),
    (docker_manifest, ("config",)),
    (docker_manifest, ("layers", 1)),
    (oci_index, ("manifests", 0)),
    (lambda: {**oci_index(), "subject": dict(SUBJECT)}, ("subject",)),
    (docker_manifest_list, ("manifests", 0)),
]

# A descriptor field, a value of the wrong type or out of range, and the part of the field's name the error names.
BAD_DESCRIPTOR_FIELDS = [
    ("size", 2**70, "size"),
    ("size", 2**63, "size"),
    ("size", -1, "size"),
    ("size", 6.0, "size"),
    ("size", True, "size"),
    ("size", "6", "size"),
    ("mediaType", 5, "mediaType"),
    ("digest", ["sha256:x"], "digest"),
    ("urls", "https://example.com/layer", "urls"),
    ("urls", ["https://example.com/layer", 42], "urls"),
    ("urls", {"a": "b"}, "urls"),
    ("annotations", {"a": 1}, "annotations"),
    ("annotations", {"a": None}, "annotations"),
    ("annotations", {"a": ["b"]}, "annotations"),
    ("annotations", ["a"], "annotations"),
    ("annotations", "a=b", "annotations"),
    ("platform", "linux/amd64", "platform"),
    ("platform", ["linux", "amd64"], "platform"),
    ("platform", {"architecture": 1, "os": "linux"}, "platform.architecture"),
    ("platform", {"architecture": "amd64", "os": ["linux"]}, "platform.os"),
    ("platform", {"architecture": "amd64", "os": "windows", "os.version": 10}, "platform.os.version"),
    ("platform", {"architecture": "amd64", "os": "windows", "os.features": "win32k"}, "platform.os.features"),
    ("platform", {"architecture": "amd64", "os": "windows", "os.features": [1]}, "platform.os.features"),
    ("platform", {"architecture": "arm", "os": "linux", "variant": 7}, "platform.variant"),
    ("platform", {"architecture": "amd64", "os": "linux", "features": "sse4"}, "platform.features"),
    ("platform", {"architecture": "amd64", "os": "linux", "features": [None]}, "platform.features"),
    ("artifactType", 5, "artifactType"),
    ("artifactType", {"a": "b"}, "artifactType"),
    ("data", 5, "data"),
    ("data", "not base64!", "data"),
    ("data", "YQ", "data"),  # unpadded
    ("data", "\u00e9t\u00e9", "data"),
]


def _at(document: dict[str, Any], place: tuple[str | int, ...]) -> dict[str, Any]:
    found: Any = document
    for step in place:
        found = found[step]
    return found


def _where(place: tuple[str | int, ...]) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else step for step in place)


@pytest.mark.parametrize(("field", "value", "named"), BAD_DESCRIPTOR_FIELDS, ids=lambda item: repr(item)[:40])
@pytest.mark.parametrize(("make", "place"), DESCRIPTOR_PLACES, ids=lambda item: getattr(item, "__name__", repr(item)))
def test_every_descriptor_field_is_type_checked(make: Any, place: tuple[str | int, ...], field: str, value: Any, named: str) -> None:
    document = make()
    assert manifest.parse(encode(document), document["mediaType"])  # accepted as it is
    _at(document, place)[field] = value
    assert_invalid(encode(document), document["mediaType"], f"{_where(place)}.{named}")


@pytest.mark.parametrize("make", [oci_manifest, docker_manifest, oci_index, docker_manifest_list])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("annotations", {"a": 1}),
        ("annotations", {"a": {"b": "c"}}),
        ("annotations", ["a"]),
        ("annotations", "a"),
        ("artifactType", 1),
        ("artifactType", ["a"]),
        ("mediaType", 5),
        ("schemaVersion", 2.0),
        ("schemaVersion", True),
    ],
)
def test_every_top_level_field_is_type_checked(make: Any, field: str, value: Any) -> None:
    document = make()
    media_type = document["mediaType"]
    document[field] = value
    assert_invalid(encode(document), media_type, field)


@pytest.mark.parametrize("make", [oci_manifest, docker_manifest, oci_index, docker_manifest_list])
def test_well_typed_optional_fields_are_accepted(make: Any) -> None:
    document = make()
    document["annotations"] = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "empty": ""}
    descriptors = document.get("manifests") or document["layers"]
    descriptors[0].update(
        annotations={"a": "b"},
        urls=["https://example.com/blob"],
        artifactType="application/vnd.example",
        data="YWJj",
        platform={
            "architecture": "amd64",
            "os": "windows",
            "os.version": "10.0.17763.1040",
            "os.features": ["win32k"],
            "variant": "v3",
            "features": ["sse4"],
        },
    )
    descriptors[0]["size"] = (1 << 63) - 1
    parsed = manifest.parse(encode(document), document["mediaType"])
    assert parsed.annotations == document["annotations"]
    stored = (parsed.children or parsed.blobs[1:])[0]
    assert stored.size == (1 << 63) - 1
    assert stored.urls == ("https://example.com/blob",)
    assert stored.annotations == {"a": "b"}
    assert stored.platform is not None and stored.platform["os.features"] == ["win32k"]


def test_bad_index_child_descriptor() -> None:
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": CHILD_DIGEST, "size": -1}]}
    assert_invalid(encode(document), OCI_INDEX, "manifests[0].size")


@pytest.mark.parametrize("value", ["string", ["list"], 5, None])
def test_descriptor_must_be_an_object(value: Any) -> None:
    assert_invalid(encode(oci_manifest(config=value)), OCI_MANIFEST, "config must be a descriptor object")


def test_bad_subject_descriptor() -> None:
    document = oci_manifest(subject={"mediaType": OCI_MANIFEST, "digest": "sha256:nope", "size": 1})
    assert_invalid(encode(document), OCI_MANIFEST, "subject.digest")


def test_artifact_type_must_be_a_string() -> None:
    assert_invalid(encode(oci_manifest(artifactType=5)), OCI_MANIFEST, "artifactType must be a string")


def test_media_type_must_be_a_string() -> None:
    assert_invalid(encode(oci_manifest(mediaType=["x"])), OCI_MANIFEST, "mediaType must be a string")


@pytest.mark.parametrize(
    ("content_type", "inner"),
    [(OCI_MANIFEST, DOCKER_MANIFEST), (DOCKER_MANIFEST, OCI_MANIFEST), (OCI_INDEX, OCI_MANIFEST), (DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)],
)
def test_content_type_mismatch_with_media_type(content_type: str, inner: str) -> None:
    document = docker_manifest() if inner == DOCKER_MANIFEST else oci_manifest()
    assert_invalid(encode(document), content_type, "does not match")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "text/html; charset=utf-8", "application/vnd.oci.image.config.v1+json"])
def test_non_manifest_content_type(content_type: str) -> None:
    assert_invalid(encode(oci_manifest()), content_type, "not a manifest media type")


def test_non_manifest_content_type_without_media_type() -> None:
    document = oci_manifest()
    del document["mediaType"]
    assert_invalid(encode(document), "text/plain", "not a manifest media type")


@pytest.mark.parametrize("inner", ["application/vnd.oci.image.config.v1+json", "text/plain", SCHEMA1])
def test_unsupported_media_type_in_document(inner: str) -> None:
    assert_invalid(encode(oci_manifest(mediaType=inner)), None, "unsupported manifest media type")


# -- referrers and stored media types ------------------------------------------------


def test_referrer_descriptor_uses_artifact_type() -> None:
    content = encode(
        oci_manifest(
            artifactType="application/vnd.example.signature",
            annotations={"created": "now"},
            subject={"mediaType": OCI_MANIFEST, "digest": SUBJECT_DIGEST, "size": 1},
        )
    )
    digest = Digest.of(content)
    descriptor = manifest.referrer_descriptor(content, digest)
    assert descriptor == Descriptor(
        media_type=OCI_MANIFEST,
        digest=digest,
        size=len(content),
        artifact_type="application/vnd.example.signature",
        annotations={"created": "now"},
    )
    assert descriptor.to_json() == {
        "mediaType": OCI_MANIFEST,
        "digest": str(digest),
        "size": len(content),
        "artifactType": "application/vnd.example.signature",
        "annotations": {"created": "now"},
    }


def test_referrer_descriptor_falls_back_to_config_media_type() -> None:
    content = encode(oci_manifest(config={"mediaType": "application/vnd.example.config", "digest": CONFIG_DIGEST, "size": 6}))
    descriptor = manifest.referrer_descriptor(content, Digest.of(content))
    assert descriptor.artifact_type == "application/vnd.example.config"
    assert descriptor.annotations is None
    assert descriptor.to_json() == {
        "mediaType": OCI_MANIFEST,
        "digest": str(Digest.of(content)),
        "size": len(content),
        "artifactType": "application/vnd.example.config",
    }


def test_referrer_descriptor_of_index_without_media_type() -> None:
    content = encode({"schemaVersion": 2, "manifests": [], "artifactType": "application/vnd.example.bundle"})
    descriptor = manifest.referrer_descriptor(content, Digest.of(content))
    assert descriptor.media_type == OCI_INDEX
    assert descriptor.artifact_type == "application/vnd.example.bundle"


def test_referrer_descriptor_of_index_without_artifact_type() -> None:
    content = encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "annotations": {}})
    descriptor = manifest.referrer_descriptor(content, Digest.of(content))
    assert descriptor.artifact_type is None
    assert descriptor.annotations is None
    assert "artifactType" not in descriptor.to_json()


def test_referrer_subject() -> None:
    content = encode(oci_manifest(subject={"mediaType": OCI_MANIFEST, "digest": SUBJECT_DIGEST, "size": 1}))
    assert manifest.referrer_subject(content) == parse_digest(SUBJECT_DIGEST)
    assert manifest.referrer_subject(encode(oci_manifest())) is None
    with pytest.raises(ValueError):
        manifest.referrer_subject(encode(oci_manifest(subject={"digest": "sha256:bad"})))


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"schemaVersion": 2, "config": {}, "layers": []}, OCI_MANIFEST),
        ({"schemaVersion": 2, "manifests": []}, OCI_INDEX),
        ({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST}, DOCKER_MANIFEST),
        ({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": []}, DOCKER_MANIFEST_LIST),
        ({"schemaVersion": 2, "mediaType": "", "manifests": []}, OCI_INDEX),
        ({"schemaVersion": 2, "mediaType": 7}, OCI_MANIFEST),
        ([], OCI_MANIFEST),
    ],
)
def test_stored_media_type(document: Any, expected: str) -> None:
    assert manifest.stored_media_type(encode(document)) == expected


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe", b""])
def test_stored_media_type_of_unreadable_content(content: bytes) -> None:
    assert manifest.stored_media_type(content) == OCI_MANIFEST
