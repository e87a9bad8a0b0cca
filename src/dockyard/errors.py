"""The registry's failures, as the storage, the grammar and the rules know them.

Nothing here knows HTTP: the API maps each kind to the specification's error code and
status in one table (:mod:`dockyard.api.errors`), as registry:2 maps its errors to
errcodes. Each carries a message (``None``: the error code's own) and structured detail
for the client (the digest, tag or name concerned).
"""

from __future__ import annotations

from typing import Any


class DockyardError(Exception):
    """A failure to report to whoever asked; the subclasses say which."""

    description = "registry error"

    def __init__(self, message: str | None = None, detail: Any = None) -> None:
        super().__init__(message or self.description)
        self.message = message
        self.detail = detail


class NameInvalid(DockyardError):
    description = "invalid repository name"


class TagInvalid(DockyardError):
    description = "invalid tag"


class DigestInvalid(DockyardError):
    description = "malformed or unsupported digest"


class DigestMismatch(DockyardError):
    description = "content does not match its digest"


class BlobUnknown(DockyardError):
    description = "blob unknown"


class UploadUnknown(DockyardError):
    description = "upload unknown"


class UploadOffsetInvalid(DockyardError):
    description = "a chunk does not start where the upload ends"

    def __init__(self, name: str, upload_id: str, size: int, message: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.upload_id = upload_id
        self.size = size  # what the upload holds, where the client may resume


class ManifestUnknown(DockyardError):
    description = "manifest unknown"


class ManifestBlobUnknown(DockyardError):
    description = "a manifest names a blob or manifest the repository does not hold"


class ManifestInvalid(DockyardError):
    description = "manifest invalid"


class ManifestTooLarge(ManifestInvalid):
    description = "manifest too large"


class Unsupported(DockyardError):
    description = "the operation is disabled on this registry"


class QuotaExceeded(DockyardError):
    description = "the push would exceed a storage quota"


class Unavailable(DockyardError):
    description = "a service the registry needs cannot be reached"


class UpstreamUnavailable(Unavailable):
    description = "the upstream registry cannot be reached"

    def __init__(self, message: str | None = None, reason: str = "unavailable") -> None:
        super().__init__(message)
        self.reason = reason
        """What went wrong, for metrics: ``unreachable``, ``status``, ``broken``, ``auth``, ``too_large``."""


class DirectoryUnavailable(Unavailable):
    """The user directory (LDAP) did not answer: no new sign-in can be checked, so none is let in."""

    description = "the user directory cannot be reached: sign-ins are refused until it answers"


class UpstreamRateLimited(DockyardError):
    """The upstream answered 429: its ``Retry-After`` (if any) goes to the client as is."""

    description = "the upstream registry asks to slow down"

    def __init__(self, retry_after: str | None, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyFailedLogins(DockyardError):
    description = "too many failed logins"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TagImmutable(DockyardError):
    """A push would move an immutable tag, or a delete would remove one (``dockyard.immutable_tags``)."""

    description = "the tag is immutable"


class RepositoryUnknown(DockyardError):
    description = "repository name not known to registry"
