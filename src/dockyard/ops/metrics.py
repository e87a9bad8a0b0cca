"""Prometheus metrics of the registry API, exposed on the debug server.

With several workers, ``prometheus_client``'s multiprocess mode is used: the parent
sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory before forking (see
:func:`prepare_multiprocess`), each worker writes its values there, and whichever
worker answers a scrape sums them all. Import this module only after that.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from dockyard.app_keys import MIRRORS_KEY, REGISTRY_KEY, ROUTE_KEY
from dockyard.events import EVENTS_KEY
from dockyard.events.delivery import DeliveryObserver
from dockyard.proxy.events import CacheEvents, Kind
from dockyard.storage.quotas import Quotas

log = logging.getLogger("dockyard.ops")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
_UPLOAD_METHODS = frozenset({"POST", "PATCH", "PUT"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def _route(request: web.Request) -> str:
    """A label of bounded cardinality: the registry route's name, or the aiohttp route's pattern."""
    if ROUTE_KEY in request:
        return request[ROUTE_KEY]
    match_info = request.match_info
    if match_info.http_exception is not None:
        return UNMATCHED
    resource = match_info.route.resource
    canonical = resource.canonical if resource is not None else ""
    if not canonical or canonical.startswith("/v2"):
        return UNMATCHED
    return canonical


def _is_upload(request: web.Request) -> bool:
    return request.method in _UPLOAD_METHODS and "/blobs/uploads/" in f"{request.raw_path.split('?', 1)[0]}/"


def _bytes_sent(request: web.Request, response: web.StreamResponse | None) -> int:
    if response is None or request.method == "HEAD":
        return 0
    if response.prepared:
        return response.body_length
    length = response.content_length
    body = getattr(response, "body", None)  # only a web.Response has one
    if length is None and isinstance(body, (bytes, bytearray)):
        length = len(body)
    return length or 0


def _auth_failure(request: web.Request, status: int) -> str | None:
    if status == 401 and "Authorization" in request.headers:
        return "invalid_credentials"  # a first 401 without credentials is the challenge, not a failure
    if status == 403:
        return "denied"
    if status == 429:
        return "throttled"
    return None


class CacheCounters(CacheEvents):
    """The pull-through cache's events, counted."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.hits = Counter(
            "dockyard_proxy_hits", "Pulls (manifest GET and HEAD, blob GET) the pull-through cache answered itself, by kind.",
            ["kind"], registry=registry,
        )
        self.misses = Counter(
            "dockyard_proxy_misses", "Pulls (manifest GET and HEAD, blob GET) that needed the upstream, by kind.",
            ["kind"], registry=registry,
        )
        self.bytes = Counter(
            "dockyard_proxy_upstream_bytes", "Manifest and blob bytes received from the upstream, by kind.", ["kind"], registry=registry,
        )
        self.errors = Counter(
            "dockyard_proxy_upstream_errors", "Failed exchanges with the upstream, by kind and reason "
            "(unreachable, status, broken, auth, too_large, rate_limited, digest_mismatch, invalid).",
            ["kind", "reason"], registry=registry,
        )
        # By repository (as stored): one label per sync entry of the configuration.
        self.synced_manifests = Counter(
            "dockyard_proxy_sync_manifests", "Manifests sync runs fetched from the upstream, by repository.", ["repository"], registry=registry,
        )
        self.synced_blobs = Counter(
            "dockyard_proxy_sync_blobs", "Blobs sync runs fetched from the upstream, by repository.", ["repository"], registry=registry,
        )
        self.synced_bytes = Counter(
            "dockyard_proxy_sync_blob_bytes", "Blob bytes sync runs fetched from the upstream, by repository.", ["repository"], registry=registry,
        )
        self.sync_errors = Counter(
            "dockyard_proxy_sync_errors", "Sync runs that failed (the upstream down or refusing, or the storage), by repository.",
            ["repository"], registry=registry,
        )
        self.sync_success = Gauge(
            "dockyard_proxy_sync_last_success_timestamp_seconds", "When the last sync run of a repository that succeeded ended (a Unix time).",
            ["repository"], registry=registry, multiprocess_mode="max",
        )

    def hit(self, kind: Kind) -> None:
        self.hits.labels(kind).inc()

    def miss(self, kind: Kind) -> None:
        self.misses.labels(kind).inc()

    def upstream_bytes(self, kind: Kind, count: int) -> None:
        self.bytes.labels(kind).inc(count)

    def upstream_error(self, kind: Kind, reason: str) -> None:
        self.errors.labels(kind, reason).inc()

    def synced(self, repository: str, manifests: int, blobs: int, blob_bytes: int, finished: float) -> None:
        self.synced_manifests.labels(repository).inc(manifests)
        self.synced_blobs.labels(repository).inc(blobs)
        self.synced_bytes.labels(repository).inc(blob_bytes)
        self.sync_success.labels(repository).set(finished)

    def sync_failed(self, repository: str) -> None:
        self.sync_errors.labels(repository).inc()


class DeliveryCounters(DeliveryObserver):
    """Events delivery, per endpoint (registry:2's endpoint name)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent_events = Counter("dockyard_events_sent", "Events an endpoint took.", ["endpoint"], registry=registry)
        self.failed_sends = Counter("dockyard_events_failed", "Sends of an event that failed (each retry counts).", ["endpoint"], registry=registry)
        self.dropped_events = Counter(
            "dockyard_events_dropped", "Events dropped undelivered, past dockyard.events.max_backlog (reason backlog) or max_age (age).",
            ["endpoint", "reason"], registry=registry,
        )
        # Only the process delivering to an endpoint knows its backlog; the others say 0.
        self.waiting = Gauge(
            "dockyard_events_backlog", "Events waiting for an endpoint.", ["endpoint"], registry=registry, multiprocess_mode="livemax",
        )
        self.oldest = Gauge(
            "dockyard_events_oldest_age_seconds", "Age of the oldest event waiting for an endpoint.", ["endpoint"],
            registry=registry, multiprocess_mode="livemax",
        )

    def sent(self, endpoint: str) -> None:
        self.sent_events.labels(endpoint).inc()

    def failed(self, endpoint: str) -> None:
        self.failed_sends.labels(endpoint).inc()

    def dropped(self, endpoint: str, reason: str, count: int) -> None:
        self.dropped_events.labels(endpoint, reason).inc(count)

    def backlog(self, endpoint: str, waiting: int, oldest_age: float) -> None:
        self.waiting.labels(endpoint).set(waiting)
        self.oldest.labels(endpoint).set(oldest_age)


class Metrics:
    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "dockyard_http_requests", "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"], registry=r,
        )
        self.latency = Histogram(
            "dockyard_http_request_duration_seconds", "Time to answer a request, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.bytes_in = Counter("dockyard_http_request_bytes", "Request body bytes received, by route.", ["route"], registry=r)
        self.bytes_out = Counter("dockyard_http_response_bytes", "Response body bytes sent, by route.", ["route"], registry=r)
        self.uploads = Gauge(
            "dockyard_uploads_in_progress", "Upload requests (POST, PATCH, PUT of blob uploads) being answered.",
            registry=r, multiprocess_mode="livesum",
        )
        self.storage_errors = Counter(
            "dockyard_storage_errors", "Storage failures: of requests, and of the storage health check.",
            ["source"], registry=r,
        )
        self.auth_failures = Counter(
            "dockyard_auth_failures", "Refused credentials (401 with credentials), denied access (403) and throttled logins (429).",
            ["reason"], registry=r,
        )
        self.pull_through = CacheCounters(r)
        # Read from the quotas' records at each scrape: the answering worker's values are the latest.
        self.quota_used = Gauge(
            "dockyard_quota_used_bytes", "Bytes of the blobs the repositories a quota rule matches link (each counted once), by rule.",
            ["repositories"], registry=r, multiprocess_mode="mostrecent",
        )
        self.quota_limit = Gauge(
            "dockyard_quota_limit_bytes", "The max_bytes of each quota rule.", ["repositories"], registry=r, multiprocess_mode="mostrecent",
        )
        self.quotas: Quotas | None = None
        self.events = DeliveryCounters(r)

    def exposition(self) -> bytes:
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)

    async def handle(self, request: web.Request) -> web.Response:
        if self.quotas is not None:
            await self._read_quotas(self.quotas)
        return web.Response(body=self.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _read_quotas(self, quotas: Quotas) -> None:
        try:
            uses = await quotas.uses()
        except OSError:  # storage unreachable: the scrape still answers, with the values read last
            log.warning("reading the quotas' use for metrics failed", exc_info=True)
            return
        for use in uses:
            self.quota_used.labels(use.rule.repositories).set(use.used_bytes)
            self.quota_limit.labels(use.rule.repositories).set(use.rule.max_bytes)

    def instrument(self, app: web.Application) -> None:
        """Count every request of ``app`` (outermost), its storage errors (innermost), and what its pull-through
        cache and its events delivery do; show the use of its quotas."""
        registry = app.get(REGISTRY_KEY)
        if registry is not None and registry.quotas.rules:
            self.quotas = registry.quotas
        app.middlewares.insert(0, self._outer)
        app.middlewares.append(self._inner)
        if (mirrors := app.get(MIRRORS_KEY)) is not None:
            for cache in mirrors.caches:
                cache.events = self.pull_through
        if (notifier := app.get(EVENTS_KEY)) is not None:
            notifier.observer = self.events

    @web.middleware
    async def _outer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        upload = _is_upload(request)
        if upload:
            self.uploads.inc()
        start = time.perf_counter()
        response: web.StreamResponse | None = None
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's convention)
            raise
        finally:
            if upload:
                self.uploads.dec()
            route = _route(request)
            self.requests.labels(route, request.method, str(status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - start)
            self.bytes_in.labels(route).inc(request.content.total_bytes)
            self.bytes_out.labels(route).inc(_bytes_sent(request, response))
            reason = _auth_failure(request, status)
            if reason is not None:
                self.auth_failures.labels(reason).inc()

    @web.middleware
    async def _inner(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except OSError:  # what errors_middleware answers with "storage error"
            if request.transport is not None and not request.transport.is_closing():
                self.storage_errors.labels("request").inc()
            raise

