"""The API's error codes, written down as data; the exception that carries one; and the
one table that says which code each of the registry's own failures (:mod:`dockyard.errors`) is.

Codes and statuses follow the OCI Distribution Specification v1.1 and, where the
specification is silent, what registry:2 answers, so that clients see the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dockyard import errors as domain
from dockyard.storage.uploads import range_header


@dataclass(frozen=True)
class ErrorCode:
    code: str
    message: str
    status: int


BLOB_UNKNOWN = ErrorCode("BLOB_UNKNOWN", "blob unknown to registry", 404)
BLOB_UPLOAD_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", "blob upload invalid", 400)
BLOB_UPLOAD_UNKNOWN = ErrorCode("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404)
DIGEST_INVALID = ErrorCode("DIGEST_INVALID", "provided digest did not match uploaded content", 400)
MANIFEST_BLOB_UNKNOWN = ErrorCode("MANIFEST_BLOB_UNKNOWN", "manifest references a blob unknown to registry", 404)
MANIFEST_INVALID = ErrorCode("MANIFEST_INVALID", "manifest invalid", 400)
MANIFEST_TOO_LARGE = ErrorCode("MANIFEST_INVALID", "manifest is larger than the limit", 413)
MANIFEST_UNKNOWN = ErrorCode("MANIFEST_UNKNOWN", "manifest unknown to registry", 404)
NAME_INVALID = ErrorCode("NAME_INVALID", "invalid repository name", 400)
NAME_UNKNOWN = ErrorCode("NAME_UNKNOWN", "repository name not known to registry", 404)
SIZE_INVALID = ErrorCode("SIZE_INVALID", "provided length did not match content length", 400)
TAG_INVALID = ErrorCode("TAG_INVALID", "manifest tag did not match URI", 400)
RANGE_INVALID = ErrorCode("RANGE_INVALID", "invalid content range", 416)
PAGINATION_NUMBER_INVALID = ErrorCode("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400)
UNAUTHORIZED = ErrorCode("UNAUTHORIZED", "authentication required", 401)
DENIED = ErrorCode("DENIED", "requested access to the resource is denied", 403)
UNSUPPORTED = ErrorCode("UNSUPPORTED", "the operation is unsupported", 405)
METHOD_UNKNOWN = ErrorCode("UNSUPPORTED", "the method is not allowed on this route", 405)
NOT_FOUND = ErrorCode("NOT_FOUND", "no such route", 404)
TOKEN_REQUEST_INVALID = ErrorCode("UNSUPPORTED", "invalid token request", 400)
TOO_MANY_REQUESTS = ErrorCode("TOOMANYREQUESTS", "too many requests", 429)
UNAVAILABLE = ErrorCode("UNAVAILABLE", "service unavailable", 503)
UNKNOWN = ErrorCode("UNKNOWN", "unknown error", 500)

READ_ONLY_MESSAGE = "the registry is in read-only mode"
PULL_THROUGH_MESSAGE = "the repository is a pull-through cache of an upstream: push there"


class RegistryError(Exception):
    """A failure to report to the client as the spec's JSON error body."""

    def __init__(
        self,
        error: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or error.message)
        self.error = error
        self.message = message or error.message
        self.detail = detail
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.error.status

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.error.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()


# Each failure's code; a subclass not listed takes its nearest listed base's.
DOMAIN_CODES: dict[type[domain.DockyardError], ErrorCode] = {
    domain.NameInvalid: NAME_INVALID,
    domain.TagInvalid: TAG_INVALID,
    domain.DigestInvalid: DIGEST_INVALID,
    domain.DigestMismatch: DIGEST_INVALID,
    domain.BlobUnknown: BLOB_UNKNOWN,
    domain.UploadUnknown: BLOB_UPLOAD_UNKNOWN,
    domain.UploadOffsetInvalid: RANGE_INVALID,
    domain.ManifestUnknown: MANIFEST_UNKNOWN,
    domain.ManifestBlobUnknown: MANIFEST_BLOB_UNKNOWN,
    domain.ManifestInvalid: MANIFEST_INVALID,
    domain.ManifestTooLarge: MANIFEST_TOO_LARGE,
    domain.Unsupported: UNSUPPORTED,
    domain.QuotaExceeded: DENIED,
    domain.Unavailable: UNAVAILABLE,
    domain.DirectoryUnavailable: UNAVAILABLE,
    domain.TooManyFailedLogins: TOO_MANY_REQUESTS,
    domain.UpstreamRateLimited: TOO_MANY_REQUESTS,
    domain.TagImmutable: DENIED,
    domain.RepositoryUnknown: NAME_UNKNOWN,
}


def code_of(failure: domain.DockyardError) -> ErrorCode:
    for kind in type(failure).__mro__:
        if kind in DOMAIN_CODES:
            return DOMAIN_CODES[kind]
    return UNKNOWN


def from_domain(failure: domain.DockyardError) -> RegistryError:
    """What the client is told of ``failure``: its code, message and detail (of a failure
    outside the table, a bug, only ``UNKNOWN``)."""
    code = code_of(failure)
    if code is UNKNOWN:
        return RegistryError(UNKNOWN)
    headers = None
    if isinstance(failure, domain.TooManyFailedLogins):
        headers = {"Retry-After": str(failure.retry_after)}
    elif isinstance(failure, domain.UpstreamRateLimited) and failure.retry_after is not None:
        headers = {"Retry-After": failure.retry_after}
    elif isinstance(failure, domain.UploadOffsetInvalid):
        headers = range_header(failure.name, failure.upload_id, failure.size)
    return RegistryError(code, failure.message, failure.detail, headers)
