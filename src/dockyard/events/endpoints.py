"""The endpoints events go to: registry:2's ``notifications.endpoints`` with dockyard's
``dockyard.events.endpoints`` options (format, signature) matched by name."""

from __future__ import annotations

import hashlib
import pathlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dockyard.config import Settings
from dockyard.events.model import CLOUDEVENTS_MEDIA_TYPE, ENVELOPE_MEDIA_TYPE, cloudevents_body, registry2_body, signature

_UNSAFE_IN_FOLDER = re.compile(r"[^A-Za-z0-9_-]+")


def endpoint_folder(name: str) -> str:
    """The endpoint's folder in storage: its name made safe (registry:2 takes any text), and a
    hash so that two names never share a backlog."""
    return f"{_UNSAFE_IN_FOLDER.sub('-', name)[:40]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    headers: Mapping[str, Sequence[str]]
    timeout: float
    threshold: int
    backoff: float
    ignored_media_types: frozenset[str]
    ignored_actions: frozenset[str]
    cloudevents: bool = False
    secret: bytes | None = None
    signature_header: str = "X-Hub-Signature-256"

    @property
    def folder(self) -> str:
        return endpoint_folder(self.name)

    def wants(self, action: str, media_type: str) -> bool:
        """registry:2's filters: ``ignoredmediatypes``, ``ignore.mediatypes`` and ``ignore.actions``."""
        return action not in self.ignored_actions and not (media_type and media_type in self.ignored_media_types)

    def request(self, event: dict[str, object]) -> tuple[bytes, dict[str, str]]:
        """The body and headers that carry ``event`` (one per request, as registry:2 sends them)."""
        if self.cloudevents:
            body, content_type = cloudevents_body([event]), CLOUDEVENTS_MEDIA_TYPE
        else:
            body, content_type = registry2_body([event]), ENVELOPE_MEDIA_TYPE
        headers = {name: ", ".join(values) for name, values in self.headers.items()}
        headers["Content-Type"] = content_type
        if self.secret is not None:
            headers[self.signature_header] = signature(self.secret, body)
        return body, headers


def configured_endpoints(settings: Settings) -> list[Endpoint]:
    """The enabled endpoints, each with its secret read now (the config check made sure it is readable)."""
    options = {extra.name: extra for extra in settings.dockyard.events.endpoints}
    endpoints = []
    for endpoint in settings.notifications.endpoints:
        if endpoint.disabled:
            continue
        extra = options.get(endpoint.name)
        secret = pathlib.Path(extra.secret_file).read_bytes().removesuffix(b"\n") if extra and extra.secret_file else None
        endpoints.append(Endpoint(
            name=endpoint.name, url=endpoint.url, headers=endpoint.headers, timeout=endpoint.timeout,
            threshold=endpoint.threshold, backoff=endpoint.backoff,
            ignored_media_types=frozenset(endpoint.ignoredmediatypes) | frozenset(endpoint.ignore.mediatypes),
            ignored_actions=frozenset(endpoint.ignore.actions),
            cloudevents=extra is not None and extra.format == "cloudevents",
            secret=secret,
            signature_header=extra.signature_header if extra else Endpoint.signature_header,
        ))
    return endpoints
