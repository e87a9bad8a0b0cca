"""What the pull-through cache tells of its work: hits, misses, the bytes and failures of its
upstream, and its syncs' runs. The cache knows nothing of how they are counted; the metrics (:mod:`dockyard.ops.metrics`)
give it an :class:`CacheEvents` that counts them."""

from __future__ import annotations

from typing import Literal

from dockyard.errors import DigestMismatch, ManifestInvalid, UpstreamRateLimited, UpstreamUnavailable

Kind = Literal["manifest", "blob"]
MANIFEST: Kind = "manifest"
BLOB: Kind = "blob"

# What the upstream may do wrong; anything else (a 404 among them) is an answer, not a failure.
UPSTREAM_FAILURES = (UpstreamUnavailable, UpstreamRateLimited, DigestMismatch, ManifestInvalid)


def failure_reason(failure: Exception) -> str:
    """The label of an upstream failure: ``rate_limited``, ``digest_mismatch``, ``invalid``, or
    :attr:`UpstreamUnavailable.reason` (``unreachable``, ``status``, ``broken``...)."""
    if isinstance(failure, UpstreamUnavailable):
        return failure.reason
    if isinstance(failure, UpstreamRateLimited):
        return "rate_limited"
    if isinstance(failure, DigestMismatch):
        return "digest_mismatch"
    return "invalid"


class CacheEvents:
    """Tells nothing: the cache's events when no metrics are kept."""

    def hit(self, kind: Kind) -> None:
        """A pull answered from the cache, without fetching from the upstream."""

    def miss(self, kind: Kind) -> None:
        """A pull the upstream had to answer (or failed to)."""

    def upstream_bytes(self, kind: Kind, count: int) -> None:
        """``count`` bytes of manifests or blobs received from the upstream."""

    def upstream_error(self, kind: Kind, reason: str) -> None:
        """An exchange with the upstream that failed, for :func:`failure_reason`."""

    def synced(self, repository: str, manifests: int, blobs: int, blob_bytes: int, finished: float) -> None:
        """A sync run of ``repository`` (as stored) ended well at ``finished`` (a Unix time), having fetched these."""

    def sync_failed(self, repository: str) -> None:
        """A sync run of ``repository`` (as stored) failed; what it had fetched stays."""
