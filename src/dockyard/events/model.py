"""An event as registry:2 sends it (``notifications/event.go``): the same JSON fields, so its
receivers work unchanged, and the other bodies an endpoint may ask for (CloudEvents 1.0)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.manifest import Descriptor, Manifest

ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v2+json"
CLOUDEVENTS_MEDIA_TYPE = "application/cloudevents-batch+json"
CLOUDEVENTS_TYPE_PREFIX = "io.github.dockyard.registry."
# registry:2's actions; a tag delete is a ``delete`` whose target names a tag and no digest.
PUSH, PULL, MOUNT, DELETE = "push", "pull", "mount", "delete"
# What registry:2 says of a blob pushed or pulled: the registry does not know its type.
BLOB_MEDIA_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Target:
    repository: str
    media_type: str = ""
    digest: str = ""
    size: int = 0
    url: str = ""
    tag: str = ""
    references: Sequence[Descriptor] = ()
    from_repository: str = ""

    def to_json(self) -> dict[str, Any]:
        # registry:2 leaves out what is empty (``omitempty``); ``length`` repeats ``size``.
        fields: dict[str, Any] = {
            "mediaType": self.media_type, "size": self.size, "digest": self.digest, "length": self.size,
            "repository": self.repository, "fromRepository": self.from_repository, "url": self.url, "tag": self.tag,
            "references": [reference.to_json() for reference in self.references],
        }
        return {key: value for key, value in fields.items() if value}


@dataclass(frozen=True)
class RequestRecord:
    """The request that caused the event (registry:2's ``request``); empty for the server's own work."""

    id: str = ""
    addr: str = ""
    host: str = ""
    method: str = ""
    useragent: str = ""

    def to_json(self) -> dict[str, Any]:
        fields = {"id": self.id, "addr": self.addr, "host": self.host, "method": self.method, "useragent": self.useragent}
        return {key: value for key, value in fields.items() if value or key in ("id", "method", "useragent")}


@dataclass(frozen=True)
class Source:
    """The registry that sent it: ``addr`` its host name and port, ``instance_id`` this process's."""

    addr: str
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class Event:
    action: str
    target: Target
    request: RequestRecord
    actor: str
    source: Source
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "action": self.action,
            "target": self.target.to_json(),
            "request": self.request.to_json(),
            "actor": {"name": self.actor} if self.actor else {},
            "source": {"addr": self.source.addr, "instanceID": self.source.instance_id},
        }


def references(manifest: Manifest) -> tuple[Descriptor, ...]:
    """What registry:3's ``includereferences`` lists: an index's manifests, or an image's config and layers."""
    return manifest.children if manifest.is_index else manifest.blobs


def registry2_body(events: Sequence[dict[str, Any]]) -> bytes:
    """registry:2's envelope."""
    return json.dumps({"events": list(events)}, separators=(",", ":")).encode()


def cloudevents_body(events: Sequence[dict[str, Any]]) -> bytes:
    """A CloudEvents 1.0 batch (structured JSON): each event's registry:2 fields are its ``data``."""
    batch = [
        {
            "specversion": "1.0",
            "id": event["id"],
            "source": f"//{event['source']['addr']}",
            "type": CLOUDEVENTS_TYPE_PREFIX + event["action"],
            "subject": event["target"].get("repository", ""),
            "time": event["timestamp"],
            "datacontenttype": "application/json",
            "data": event,
        }
        for event in events
    ]
    return json.dumps(batch, separators=(",", ":")).encode()


def signature(secret: bytes, body: bytes) -> str:
    """The value of the signature header: the body's HMAC-SHA256 with the endpoint's secret, as GitHub's webhooks sign."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
