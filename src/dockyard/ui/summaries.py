"""What the web page shows of a manifest and an image config, decoded once per digest.

A digest names immutable content, so a summary keyed by digest never goes stale: an
in-memory LRU keeps them, and concurrent requests for one digest share one read.
Whether a repository holds a digest is *not* cached: callers only ask for digests
they found in the repository (its tag and revision links) or checked there.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from dockyard import manifest as manifests
from dockyard.concurrency import gather_bounded
from dockyard.errors import BlobUnknown, DigestInvalid, ManifestInvalid, ManifestUnknown
from dockyard.reference import Digest, parse_digest
from dockyard.storage.repository import Repository
from dockyard.ui.format import parse_time, platform_name

IMAGE_CONFIG_TYPES = frozenset({
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
})
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
# A config larger than this is not decoded for the page (a real one is a few KiB).
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# What an artifact is, by the media or artifact types it carries: (role, name for people).
# Cosign's tag-based signatures are image manifests whose layers are simple-signing
# payloads; its OCI 1.1 referrers carry the artifact type instead.
SIGNATURE, SBOM, ATTESTATION = "signature", "sbom", "attestation"
KNOWN_ARTIFACTS: dict[str, tuple[str | None, str]] = {
    "application/vnd.dev.cosign.artifact.sig.v1+json": (SIGNATURE, "Cosign signature"),
    "application/vnd.dev.cosign.simplesigning.v1+json": (SIGNATURE, "Cosign signature"),
    "application/vnd.cncf.notary.signature": (SIGNATURE, "Notation signature"),
    "application/vnd.dev.sigstore.bundle.v0.3+json": (SIGNATURE, "Sigstore bundle"),
    "application/vnd.dev.sigstore.bundle+json;version=0.3": (SIGNATURE, "Sigstore bundle"),
    "application/spdx+json": (SBOM, "SPDX SBOM"),
    "text/spdx": (SBOM, "SPDX SBOM"),
    "application/vnd.cyclonedx+json": (SBOM, "CycloneDX SBOM"),
    "application/vnd.cyclonedx+xml": (SBOM, "CycloneDX SBOM"),
    "application/vnd.syft+json": (SBOM, "Syft SBOM"),
    "application/vnd.dev.cosign.artifact.sbom.v1+json": (SBOM, "Cosign SBOM"),
    "application/vnd.dsse.envelope.v1+json": (ATTESTATION, "in-toto attestation"),
    "application/vnd.in-toto+json": (ATTESTATION, "in-toto attestation"),
    "application/vnd.cncf.helm.config.v1+json": (None, "Helm chart"),
    "application/vnd.wasm.config.v0+json": (None, "WebAssembly module"),
    "application/vnd.oci.image.layer.v1.tar+encrypted": (None, "encrypted layer"),
}
# zstd:chunked is zstd with a table of contents that this annotation points to.
ZSTD_CHUNKED_ANNOTATION = "io.github.containers.zstd-chunked.manifest-checksum"

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Blob:
    digest: str
    media_type: str
    size: int
    title: str | None = None  # org.opencontainers.image.title, for artifact files
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def compression(self) -> str:
        """``gzip``, ``zstd``, ``zstd:chunked`` or ``none``, from the media type (and annotations)."""
        media_type = self.media_type.split(";", 1)[0]
        if media_type.endswith(("+gzip", ".gzip")):
            return "gzip"
        if media_type.endswith("+zstd"):
            return "zstd:chunked" if ZSTD_CHUNKED_ANNOTATION in self.annotations else "zstd"
        return "none" if media_type.endswith((".tar", ".tar.v1")) else ""


@dataclass(frozen=True)
class Child:
    digest: str
    media_type: str
    size: int
    platform: str
    artifact_type: str | None = None


@dataclass(frozen=True)
class Summary:
    digest: str
    media_type: str
    kind: str  # "index", "image" or "artifact"
    size: int  # the manifest's own bytes
    config: Blob | None = None
    layers: tuple[Blob, ...] = ()
    children: tuple[Child, ...] = ()
    artifact_type: str | None = None
    subject: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    role: str | None = None  # SIGNATURE, SBOM, ATTESTATION or None
    label: str = ""  # what it is, for people: "Cosign signature", "SPDX SBOM", "image"...

    @property
    def blobs(self) -> dict[str, int]:
        """The config and layers this manifest needs, digest → size (the manifest itself excluded)."""
        found = {layer.digest: layer.size for layer in self.layers}
        if self.config is not None:
            found[self.config.digest] = self.config.size
        return found

    @property
    def platforms(self) -> list[str]:
        return [child.platform for child in self.children if child.platform != "unknown"]


def _blob(descriptor: manifests.Descriptor) -> Blob:
    annotations = {str(key): str(value) for key, value in (descriptor.annotations or {}).items()}
    return Blob(
        str(descriptor.digest), descriptor.media_type, descriptor.size, annotations.get("org.opencontainers.image.title"),
        annotations,
    )


def describe_artifact(*types: str | None) -> tuple[str | None, str]:
    """(role, name) of an artifact from its artifact, config and layer media types, first known wins;
    an unknown one is named by its first type."""
    for media_type in types:
        if media_type in KNOWN_ARTIFACTS:
            return KNOWN_ARTIFACTS[media_type]
    return None, next((media_type for media_type in types if media_type), "artifact")


def summarize(content: bytes, digest: str) -> Summary:
    """A stored manifest's summary; ``ValueError`` if the bytes are not a manifest."""
    media_type = manifests.stored_media_type(content)
    try:
        parsed = manifests.parse(content, media_type)
    except ManifestInvalid as error:
        raise ValueError(str(error)) from None
    common: dict[str, Any] = {
        "digest": digest,
        "media_type": media_type,
        "size": len(content),
        "subject": str(parsed.subject.digest) if parsed.subject else None,
        "annotations": {str(key): str(value) for key, value in parsed.annotations.items()},
    }
    if parsed.is_index:
        children = tuple(
            Child(str(child.digest), child.media_type, child.size, platform_name(child.platform), child.artifact_type)
            for child in parsed.children
        )
        if parsed.artifact_type:
            role, label = describe_artifact(parsed.artifact_type)
            return Summary(kind="index", children=children, artifact_type=parsed.artifact_type, role=role, label=label, **common)
        return Summary(kind="index", children=children, label="index", **common)
    config, *layers = parsed.blobs
    role, label = describe_artifact(parsed.artifact_type, config.media_type, *(layer.media_type for layer in layers))
    is_image = config.media_type in IMAGE_CONFIG_TYPES and not parsed.artifact_type and role is None
    # Without an artifactType the config's type names an artifact, unless it is an image's or the
    # empty config (cosign's tag-based signatures): then the first layer's type does.
    generic = config.media_type in IMAGE_CONFIG_TYPES or config.media_type == EMPTY_CONFIG_TYPE
    named_by = layers[0].media_type if generic and layers else config.media_type
    artifact_type = parsed.artifact_type or (None if is_image else named_by)
    return Summary(
        kind="image" if is_image else "artifact", config=_blob(config), layers=tuple(map(_blob, layers)),
        artifact_type=artifact_type, role=role, label="image" if is_image else label, **common,
    )


@dataclass(frozen=True)
class HistoryStep:
    created: Any  # datetime or None
    created_by: str
    comment: str
    empty_layer: bool
    size: int | None  # the layer's compressed size; None for a step that made no layer


@dataclass(frozen=True)
class ImageConfig:
    created: Any  # datetime or None
    architecture: str
    os: str
    variant: str
    author: str
    user: str
    working_dir: str
    entrypoint: list[str]
    cmd: list[str]
    env: list[tuple[str, str]]
    exposed_ports: list[str]
    volumes: list[str]
    labels: dict[str, str]
    history: list[HistoryStep]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value] if isinstance(value, list) else []


def _keys(value: object) -> list[str]:
    return sorted(map(str, value)) if isinstance(value, dict) else []


def _mapping(value: object) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def decode_config(document: object, layers: Iterable[Blob] = ()) -> ImageConfig:
    """An image config (OCI or Docker) as the page shows it; unknown or malformed fields read as empty.

    History steps that made a layer (``empty_layer`` false) are matched in order with
    ``layers`` to give each step its size.
    """
    top = _mapping(document)
    inner = _mapping(top.get("config"))
    labels = _mapping(inner.get("Labels"))
    env = [(name, value) for name, _, value in (item.partition("=") for item in _strings(inner.get("Env")))]
    sizes = iter([layer.size for layer in layers])
    history = []
    steps = top.get("history")
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        empty = bool(step.get("empty_layer"))
        history.append(HistoryStep(
            created=parse_time(step.get("created")),
            created_by=str(step.get("created_by") or ""),
            comment=str(step.get("comment") or ""),
            empty_layer=empty,
            size=None if empty else next(sizes, None),
        ))
    return ImageConfig(
        created=parse_time(top.get("created")),
        architecture=str(top.get("architecture") or ""),
        os=str(top.get("os") or ""),
        variant=str(top.get("variant") or ""),
        author=str(top.get("author") or ""),
        user=str(inner.get("User") or ""),
        working_dir=str(inner.get("WorkingDir") or ""),
        entrypoint=_strings(inner.get("Entrypoint")),
        cmd=_strings(inner.get("Cmd")),
        env=env,
        exposed_ports=_keys(inner.get("ExposedPorts")),
        volumes=_keys(inner.get("Volumes")),
        labels={str(key): str(value) for key, value in labels.items()},
        history=history,
    )


class LruCache(Generic[T]):
    """A bounded digest-keyed cache whose concurrent misses for one key share one load."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._values: collections.OrderedDict[str, T] = collections.OrderedDict()
        self._loading: dict[str, asyncio.Future[T]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # marked retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[key]
        future.set_result(value)
        self._values[key] = value
        while len(self._values) > self.capacity:
            self._values.popitem(last=False)
        return value


class Summaries:
    """Manifest summaries and decoded configs, read through a repository and kept by digest."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._manifests: LruCache[Summary] = LruCache(capacity)
        self._configs: LruCache[object] = LruCache(capacity // 10 or 1)

    async def manifest(self, repository: Repository, digest: Digest) -> Summary:
        """``digest``'s summary; the caller knows ``repository`` holds it. :class:`ManifestUnknown` if it
        was deleted meanwhile, :class:`ManifestInvalid` if unreadable."""

        async def load() -> Summary:
            content = await repository.get_manifest(digest)
            try:
                return summarize(content, str(digest))
            except ValueError as error:
                raise ManifestInvalid(f"stored manifest {digest} is unreadable: {error}") from None

        return await self._manifests.get(str(digest), load)

    async def total_size(self, repository: Repository, summary: Summary) -> int:
        """What pulling it all takes: an image's config and layers; an index's children's, deduplicated."""
        if summary.kind != "index":
            return sum(summary.blobs.values())
        children = await gather_bounded(summary.children, lambda child: self._child(repository, child.digest))
        blobs: dict[str, int] = {}
        for child in children:
            if child is not None:
                blobs.update(child.blobs)
        return sum(blobs.values())

    async def _child(self, repository: Repository, digest: str) -> Summary | None:
        try:
            return await self.manifest(repository, parse_digest(digest))
        except (DigestInvalid, ManifestUnknown, ManifestInvalid):
            return None  # a child missing from the repository counts for nothing

    async def config(self, repository: Repository, summary: Summary) -> ImageConfig | None:
        """The image's decoded config, or ``None`` (no config, too large, not JSON, not in the repository)."""
        config = summary.config
        if summary.kind != "image" or config is None or config.size > MAX_CONFIG_BYTES:
            return None
        digest = parse_digest(config.digest)
        if not await repository.has_layer(digest):
            return None

        async def load() -> object:
            try:
                return json.loads(await repository.blobs.get(digest))
            except (BlobUnknown, ValueError, RecursionError):
                return None

        document = await self._configs.get(config.digest, load)
        return decode_config(document, summary.layers) if document is not None else None

