"""Manifest media types, and parsing a pushed manifest into what the registry must check.

Docker v2 schema 2 manifests and manifest lists, OCI image manifests and indexes, and
OCI artifacts (any config media type, ``artifactType``, ``subject``). Schema 1 is
refused: it is deprecated and signed in a way no current client needs.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import DigestInvalid, ManifestInvalid, ManifestTooLarge
from dockyard.reference import Digest, parse_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1_TYPES = frozenset({
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
})
IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES

# Layers a client fetches from elsewhere (their ``urls``); the registry need not hold them.
FOREIGN_LAYER_TYPES = frozenset({
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None
    urls: tuple[str, ...] = ()

    @property
    def is_foreign(self) -> bool:
        """A layer clients fetch from its ``urls``: the registry need not hold it."""
        return bool(self.urls) and self.media_type in FOREIGN_LAYER_TYPES

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclass(frozen=True)
class Manifest:
    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    """The config and layers (and an artifact's blobs) the registry must hold."""
    children: tuple[Descriptor, ...] = ()
    """An index's manifests."""
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def _invalid(message: str) -> ManifestInvalid:
    return ManifestInvalid(message)


# Sizes are int64 in the OCI image spec and in registry:2, which cannot read a manifest with a larger one.
MAX_SIZE = (1 << 63) - 1


def _optional_string(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _invalid(f"{where} must be a string")
    return value


def _string_map(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise _invalid(f"{where} must be an object of strings")
    return value


def _string_list(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(f"{where} must be a list of strings")
    return value


def _platform(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a platform object")
    for key in ("architecture", "os", "os.version", "variant"):
        _optional_string(value.get(key), f"{where}.{key}")
    for key in ("os.features", "features"):
        _string_list(value.get(key), f"{where}.{key}")
    return value


def _data(value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, str):
        try:
            base64.b64decode(value, validate=True)
            return
        except ValueError:  # binascii.Error, or characters outside ASCII
            pass
    raise _invalid(f"{where} must be a base64 string")


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}.mediaType must be a non-empty string")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest must be a string")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise _invalid(f"{where}.size must be an integer from 0 to {MAX_SIZE}")
    try:
        parsed = parse_digest(digest)
    except DigestInvalid:
        raise _invalid(f"{where}.digest is not a valid digest: {digest[:100]!r}") from None
    _data(value.get("data"), f"{where}.data")
    return Descriptor(
        media_type=media_type,
        digest=parsed,
        size=size,
        artifact_type=_optional_string(value.get("artifactType"), f"{where}.artifactType"),
        annotations=_string_map(value.get("annotations"), f"{where}.annotations"),
        platform=_platform(value.get("platform"), f"{where}.platform"),
        urls=tuple(_string_list(value.get("urls"), f"{where}.urls") or ()),
    )


def _descriptors(document: dict[str, Any], key: str, required: bool) -> tuple[Descriptor, ...]:
    value = document.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list):
        raise _invalid(f"{key} must be a list of descriptors")
    return tuple(_descriptor(item, f"{key}[{index}]") for index, item in enumerate(value))


def parse(content: bytes, content_type: str | None) -> Manifest:
    """Parse and check a pushed manifest; ``content_type`` is the request's header."""
    if len(content) > MAX_MANIFEST_BYTES:
        raise ManifestTooLarge(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    declared = (content_type or "").split(";")[0].strip().lower() or None
    if declared in SCHEMA1_TYPES:
        raise _invalid("Docker image manifest schema 1 is not supported: push with a current client (schema 2 or OCI)")
    try:
        document = json.loads(content)
    except (ValueError, RecursionError) as error:
        # ValueError covers bad JSON and bad UTF-8, and also integers past Python's
        # digit limit; RecursionError is nesting too deep. Both are client mistakes.
        raise _invalid(f"manifest is not valid JSON: {str(error)[:200]}") from None
    if not isinstance(document, dict):
        raise _invalid("manifest must be a JSON object")
    schema_version = document.get("schemaVersion")
    if type(schema_version) is int and schema_version == 1:
        raise _invalid("Docker image manifest schema 1 is not supported: push with a current client (schema 2 or OCI)")
    if type(schema_version) is not int or schema_version != 2:
        raise _invalid("schemaVersion must be 2")

    inner = document.get("mediaType")
    if inner is not None and not isinstance(inner, str):
        raise _invalid("mediaType must be a string")
    if inner and declared and declared != inner and declared in MANIFEST_TYPES:
        raise _invalid(f"Content-Type {declared!r} does not match the manifest's mediaType {inner!r}")
    media_type = inner or (declared if declared in MANIFEST_TYPES else None) or detect_media_type(document)
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    if declared and declared not in MANIFEST_TYPES and declared not in {"application/json", "application/octet-stream"}:
        raise _invalid(f"Content-Type {declared!r} is not a manifest media type")

    subject = _descriptor(document["subject"], "subject") if document.get("subject") is not None else None
    common: dict[str, Any] = {
        "media_type": media_type,
        "subject": subject,
        "artifact_type": _optional_string(document.get("artifactType"), "artifactType"),
        "annotations": _string_map(document.get("annotations"), "annotations") or {},
    }
    if media_type in INDEX_TYPES:
        return Manifest(children=_descriptors(document, "manifests", required=True), **common)
    if "config" not in document:
        raise _invalid("an image manifest needs a config descriptor")
    config = _descriptor(document["config"], "config")
    layers = _descriptors(document, "layers", required=media_type == DOCKER_MANIFEST)
    return Manifest(blobs=(config, *layers), **common)


def detect_media_type(document: dict[str, Any]) -> str:
    """The media type of a stored manifest that does not declare one (OCI allows that)."""
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST


def stored_media_type(content: bytes) -> str:
    """The media type to serve stored manifest bytes with."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return OCI_MANIFEST
    return detect_media_type(document) if isinstance(document, dict) else OCI_MANIFEST


def referrer_descriptor(content: bytes, digest: Digest) -> Descriptor:
    """How a manifest with a ``subject`` is listed by the referrers API."""
    document = json.loads(content)
    media_type = detect_media_type(document)
    artifact_type = document.get("artifactType")
    if not artifact_type and isinstance(document.get("config"), dict):
        artifact_type = document["config"].get("mediaType")
    annotations = document.get("annotations")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=len(content),
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        annotations=annotations if isinstance(annotations, dict) and annotations else None,
    )


def referrer_subject(content: bytes) -> Digest | None:
    """The subject digest of stored manifest bytes, if it has one; ``ValueError`` if unreadable."""
    document = json.loads(content)
    subject = document.get("subject") if isinstance(document, dict) else None
    if not isinstance(subject, dict) or not isinstance(subject.get("digest"), str):
        return None
    try:
        return parse_digest(subject["digest"])
    except DigestInvalid:
        raise ValueError("malformed subject digest") from None
