"""``dockyard.events``: how events wait in storage and are sent, beyond registry:2's
``notifications`` section (see :mod:`dockyard.events`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.config.fields import Duration, _one_of, _required, _within


@dataclass(frozen=True)
class EndpointOptions:
    """What an endpoint of ``notifications.endpoints`` (the one with this ``name``) gets beyond registry:2's keys."""

    name: str = _required()
    format: str = _one_of("registry2", ("registry2", "cloudevents"))  # cloudevents: a CloudEvents 1.0 JSON batch
    secret_file: str = ""  # its bytes (one trailing newline dropped) sign each body with HMAC-SHA256
    signature_header: str = "X-Hub-Signature-256"  # where the signature goes: sha256=<hex>, as GitHub's webhooks


@dataclass(frozen=True)
class EventDelivery:
    """How events wait in storage for their endpoints (see :mod:`dockyard.events`)."""

    max_backlog: int = _within(10_000, 1)  # events waiting per endpoint; beyond it the oldest are dropped
    max_age: Duration = _within(7 * 86400.0, 1)  # an event still undelivered this long after it happened is dropped
    max_backoff: Duration = _within(300.0, 0)  # the longest wait between two tries of a failing endpoint
    # A replica's claim on an endpoint, renewed while it lives, then taken over (at least twice the endpoint's timeout, and 1s).
    lease: Duration = _within(30.0, 0.5)
    poll_interval: Duration = _within(1.0, 0.05)  # how often a replica looks for events others wrote
    endpoints: list[EndpointOptions] = field(default_factory=list)
