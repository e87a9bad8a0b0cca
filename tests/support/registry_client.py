"""The tests' registry client: push blobs, images and indexes over the distribution API.

Each push is written once, as a generator that yields the requests it makes and is
sent each reply. A synchronous ``httpx.Client`` runs it at once; an asynchronous
client (aiohttp's test client) gets an awaitable. So ``push_blob(client, ...)`` is
called as is with the first and awaited with the second.

Blobs go up as registry:2 takes them, a POST that opens an upload then a PUT of the
bytes to its Location with the digest, or ``monolithic``: one POST with the digest and
the bytes (one request each, as some tests count them). Manifests are sent as valid but non-canonical
JSON (:func:`odd_json`), so that a registry serving re-encoded bytes is caught.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from dockyard.manifest import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

__all__ = [
    "DOCKER_CONFIG", "DOCKER_LAYER", "DOCKER_MANIFEST", "DOCKER_MANIFEST_LIST", "EMPTY_DIGEST", "OCI_CONFIG",
    "OCI_EMPTY", "OCI_INDEX", "OCI_LAYER", "OCI_MANIFEST", "descriptor", "odd_json", "push_blob", "push_image",
    "push_index", "push_manifest", "sha256",
]

# The manifest types come from dockyard.manifest; these blob types have no use there.
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # of b"{}"

T = TypeVar("T")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def odd_json(document: Any) -> bytes:
    """Valid but non-canonical JSON: odd spacing, newlines, unsorted keys."""
    text = json.dumps(document, indent=3, separators=(" ,  ", " :\t"))
    return ("\n \t" + text + "\r\n  \n").encode()


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with its query: clients given params= re-encode the query (see _blob)
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


Steps = Generator[Request, Reply, T]


def _expect(reply: Reply, status: int) -> None:
    assert reply.status == status, (reply.status, reply.body[:500])


def _blob(name: str, data: bytes, digest: str, prefix: str, monolithic: bool) -> Steps[str]:
    if monolithic:
        done = yield Request("POST", f"{prefix}/v2/{name}/blobs/uploads/?digest={digest}", content=data)
        _expect(done, 201)
        return digest
    started = yield Request("POST", f"{prefix}/v2/{name}/blobs/uploads/")
    _expect(started, 202)
    # The Location's query is kept byte for byte: registry:2 keeps its upload state there.
    location = started.headers["Location"]
    done = yield Request("PUT", f"{location}{'&' if '?' in location else '?'}digest={digest}", content=data)
    _expect(done, 201)
    return digest


def _manifest(name: str, reference: str | None, content: bytes, media_type: str, prefix: str) -> Steps[str]:
    digest = sha256(content)
    put = yield Request(
        "PUT", f"{prefix}/v2/{name}/manifests/{reference or digest}", content=content,
        headers={"Content-Type": media_type},
    )
    _expect(put, 201)
    assert put.headers["Docker-Content-Digest"] == digest
    return digest


def _image(
    name: str, tag: str | None, layer: bytes | None, media_type: str, seed: str, extra: dict[str, Any], monolithic: bool,
) -> Steps[tuple[str, bytes]]:
    docker = media_type == DOCKER_MANIFEST
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer bytes for {seed}".encode() * 7 if layer is None else layer
    yield from _blob(name, config, sha256(config), "", monolithic)
    yield from _blob(name, layer, sha256(layer), "", monolithic)
    content = odd_json({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer)],
        **extra,
    })
    digest = yield from _manifest(name, tag, content, media_type, "")
    return digest, content


def _run(client: Any, steps: Steps[T]) -> Any:
    """``steps`` sent through ``client``: their result for a ``httpx.Client``, else an awaitable of it."""
    if isinstance(client, httpx.Client):
        return _run_sync(client, steps)
    return _run_async(client, steps)


def _run_sync(client: httpx.Client, steps: Steps[T]) -> T:
    request = next(steps)
    while True:
        response = client.request(request.method, request.path, content=request.content, headers=request.headers)
        try:
            request = steps.send(Reply(response.status_code, response.headers, response.content))
        except StopIteration as finished:
            return finished.value


async def _run_async(client: Any, steps: Steps[T]) -> T:
    request = next(steps)
    while True:
        response = await client.request(request.method, request.path, data=request.content, headers=request.headers)
        try:
            request = steps.send(Reply(response.status, response.headers, await response.read()))
        except StopIteration as finished:
            return finished.value


def push_blob(
    client: Any, name: str, data: bytes, digest: str | None = None, *, prefix: str = "", monolithic: bool = False,
) -> Any:
    """Upload ``data`` (declared as ``digest``, its own by default); its digest.

    ``prefix`` is the path a registry serves under (``--prefix``).
    """
    return _run(client, _blob(name, data, digest or sha256(data), prefix, monolithic))


def push_manifest(
    client: Any, name: str, reference: str | None, content: bytes, media_type: str, *, prefix: str = "",
) -> Any:
    """PUT ``content`` under ``reference`` (by its digest when None); its digest, checked against the server's."""
    return _run(client, _manifest(name, reference, content, media_type, prefix))


def push_image(
    client: Any,
    name: str,
    tag: str | None = None,
    layer: bytes | None = None,
    *,
    media_type: str = OCI_MANIFEST,
    seed: str = "one",
    extra: dict[str, Any] | None = None,
    monolithic: bool = False,
) -> Any:
    """A config and ``layer`` (one made from ``seed`` by default) and a manifest naming them, under ``tag``
    or by digest; (manifest digest, manifest bytes)."""
    return _run(client, _image(name, tag, layer, media_type, seed, extra or {}, monolithic))


def push_index(
    client: Any, name: str, children: list[dict[str, Any]], tag: str | None = None, *,
    media_type: str = OCI_INDEX, **extra: Any,
) -> Any:
    """An index of ``children`` (descriptors of manifests already pushed); (index digest, index bytes)."""
    content = odd_json({"schemaVersion": 2, "mediaType": media_type, "manifests": children, **extra})
    return _run(client, _index(name, tag, content, media_type))


def _index(name: str, tag: str | None, content: bytes, media_type: str) -> Steps[tuple[str, bytes]]:
    digest = yield from _manifest(name, tag, content, media_type, "")
    return digest, content
