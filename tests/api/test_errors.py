"""The one table from the registry's failures to the spec's error codes, and what the
middleware answers for a failure of each kind, for one outside the table, and for any
other exception."""

from __future__ import annotations

import json

import pytest

from dockyard import errors as domain
from dockyard.api import errors
from dockyard.api.app import create_app
from dockyard.api.errors import from_domain
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.registry import Registry
from tests.api.conftest import error_of

DIGEST = "sha256:" + "a" * 64

EXPECTED: dict[type[domain.DockyardError], tuple[str, int]] = {
    domain.NameInvalid: ("NAME_INVALID", 400),
    domain.TagInvalid: ("TAG_INVALID", 400),
    domain.DigestInvalid: ("DIGEST_INVALID", 400),
    domain.DigestMismatch: ("DIGEST_INVALID", 400),
    domain.BlobUnknown: ("BLOB_UNKNOWN", 404),
    domain.UploadUnknown: ("BLOB_UPLOAD_UNKNOWN", 404),
    domain.UploadOffsetInvalid: ("RANGE_INVALID", 416),
    domain.ManifestUnknown: ("MANIFEST_UNKNOWN", 404),
    domain.ManifestBlobUnknown: ("MANIFEST_BLOB_UNKNOWN", 404),
    domain.ManifestInvalid: ("MANIFEST_INVALID", 400),
    domain.ManifestTooLarge: ("MANIFEST_INVALID", 413),
    domain.Unsupported: ("UNSUPPORTED", 405),
    domain.QuotaExceeded: ("DENIED", 403),
    domain.Unavailable: ("UNAVAILABLE", 503),
    domain.TooManyFailedLogins: ("TOOMANYREQUESTS", 429),
    domain.UpstreamUnavailable: ("UNAVAILABLE", 503),
    domain.DirectoryUnavailable: ("UNAVAILABLE", 503),
    domain.UpstreamRateLimited: ("TOOMANYREQUESTS", 429),
    domain.TagImmutable: ("DENIED", 403),
    domain.RepositoryUnknown: ("NAME_UNKNOWN", 404),
}


def _failures() -> set[type[domain.DockyardError]]:
    found: set[type[domain.DockyardError]] = set()
    pending = [domain.DockyardError]
    while pending:
        for kind in pending.pop().__subclasses__():
            if kind.__module__ == domain.__name__:
                found.add(kind)
                pending.append(kind)
    return found


def _instance(kind: type[domain.DockyardError]) -> domain.DockyardError:
    if kind is domain.TooManyFailedLogins:
        return domain.TooManyFailedLogins(30)
    if kind is domain.UploadOffsetInvalid:
        return domain.UploadOffsetInvalid("team/app", "0" * 8, 10)
    if kind is domain.UpstreamRateLimited:
        return domain.UpstreamRateLimited("17")
    return kind()


def test_every_failure_of_the_domain_module_has_its_code() -> None:
    assert _failures() == set(EXPECTED)


@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda kind: kind.__name__)
def test_each_failure_maps_to_its_code_and_status(kind: type[domain.DockyardError]) -> None:
    answer = from_domain(_instance(kind))
    assert (answer.error.code, answer.status) == EXPECTED[kind]
    assert answer.message == answer.error.message  # no message of its own: the code's


def test_message_and_detail_are_passed_on() -> None:
    answer = from_domain(domain.BlobUnknown("gone meanwhile", detail={"digest": DIGEST}))
    assert json.loads(answer.body()) == {"errors": [{"code": "BLOB_UNKNOWN", "message": "gone meanwhile", "detail": {"digest": DIGEST}}]}


def test_failures_that_tell_the_client_when_or_where_to_resume_carry_headers() -> None:
    assert from_domain(domain.TooManyFailedLogins(30)).headers == {"Retry-After": "30"}
    assert from_domain(domain.UpstreamRateLimited("17")).headers == {"Retry-After": "17"}  # the upstream's, as it sent it
    upload = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    headers = from_domain(domain.UploadOffsetInvalid("team/app", upload, 10)).headers
    assert headers["Range"] == "0-9"
    assert headers["Location"] == f"/v2/team/app/blobs/uploads/{upload}"


class _Unlisted(domain.DockyardError):
    """A failure someone added without giving it a code."""


def test_a_failure_outside_the_table_is_unknown_and_says_nothing_of_itself() -> None:
    answer = from_domain(_Unlisted("internal detail", detail={"internal": True}))
    assert json.loads(answer.body()) == {"errors": [{"code": "UNKNOWN", "message": errors.UNKNOWN.message}]}


class _FailingDriver(InMemoryDriver):
    def __init__(self, failure: Exception) -> None:
        super().__init__()
        self.failure = failure

    async def get_content(self, path: str) -> bytes:
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (domain.Unavailable("the cache cannot be reached"), 503, "UNAVAILABLE"),
        (_Unlisted("internal detail"), 500, "UNKNOWN"),
        (RuntimeError("internal detail"), 500, "UNKNOWN"),
    ],
    ids=["domain", "domain-unlisted", "other"],
)
async def test_the_middleware_answers_failures_from_below_as_spec_errors(aiohttp_client, failure: Exception, status: int, code: str) -> None:
    client = await aiohttp_client(create_app(Registry(_FailingDriver(failure))))
    response = await client.head(f"/v2/team/app/blobs/{DIGEST}")
    assert response.status == status
    response = await client.get(f"/v2/team/app/blobs/{DIGEST}")
    entry = await error_of(response, status, code)
    if code == "UNKNOWN":  # nothing of the exception or its traceback reaches the client
        text = json.dumps(entry)
        assert "internal detail" not in text and "Traceback" not in text
