"""Small S3 requests as one signed aiohttp request, without botocore's request machinery.

A page of the catalog lists a thousand small folders, one request each; garbage collection
reads a link per tag and a manifest per revision. botocore spends about 1.5 ms of CPU on each
request (event hooks, its user agent, endpoint rules, its shape-driven parser) and 10 ms on
a thousand listed names, several times what the S3 server takes to answer. Here a request is
botocore's SigV4 signer, one aiohttp request and, for a listing, ElementTree over the answer.

It applies where the settings fix everything botocore would otherwise work out: an
endpoint (addressed by path, as registry:2 does there), keys (no credential chain to
refresh) and v4 signing. Any answer but the expected ones, and any failure to connect,
gives ``None``: the driver then asks botocore, which retries and reports the error as for
every other call.
"""

from __future__ import annotations

import datetime
import email.utils
import enum
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote_plus
from xml.etree import ElementTree

import aiohttp
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import yarl

from dockyard.config import S3 as S3Settings
from dockyard.storage.s3_writer import MARKER

_META = "x-amz-meta-"  # the headers of an object's user metadata

CONNECTIONS = 64
# ListObjectsV2's parameters (botocore's names) and their names in the query string.
_QUERY_NAMES = {
    "Prefix": "prefix", "Delimiter": "delimiter", "MaxKeys": "max-keys", "StartAfter": "start-after",
    "ContinuationToken": "continuation-token",
}


class Missing(enum.Enum):
    """The object asked for is not there."""

    MISSING = enum.auto()


MISSING = Missing.MISSING


class LeanClient:
    """ListObjectsV2 and GetObject of small objects on one bucket, answered as botocore would."""

    def __init__(self, endpoint: str, settings: S3Settings) -> None:
        self._url = f"{endpoint.rstrip('/')}/{quote(settings.bucket)}"
        self._signer = botocore.auth.S3SigV4Auth(
            botocore.credentials.Credentials(settings.accesskey, settings.secretkey), "s3", settings.region
        )
        self._verify = not settings.skipverify
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def applies(cls, endpoint: str | None, settings: S3Settings) -> LeanClient | None:
        if endpoint and settings.accesskey and settings.secretkey and settings.v4auth:
            return cls(endpoint, settings)
        return None

    async def head(self, key: str) -> dict[str, Any] | Missing | None:
        """``head_object``'s answer (``ContentLength``, ``LastModified``, ``ETag``, ``Metadata``),
        ``MISSING`` when there is no such object, or ``None`` when the server did not answer it."""
        answer = await self._send("HEAD", self._object_url(key))
        if answer is None:
            return None
        status, headers, _ = answer
        if status == 404:  # a HEAD has no body to tell a missing bucket: botocore says PathNotFound too
            return MISSING
        if status != 200:
            return None
        try:
            return {
                "ContentLength": int(headers["Content-Length"]),
                "LastModified": email.utils.parsedate_to_datetime(headers["Last-Modified"]),
                "ETag": headers["ETag"],
                "Metadata": {name[len(_META):].lower(): value for name, value in headers.items() if name.lower().startswith(_META)},
            }
        except (KeyError, TypeError, ValueError):
            return None

    async def get(self, key: str) -> bytes | Missing | None:
        """The object at ``key``, ``MISSING`` when there is none, or ``None`` when the server did
        not answer it, or the object is an appendable file's marker (its content is elsewhere)."""
        answer = await self._send("GET", self._object_url(key))
        if answer is None:
            return None
        status, headers, body = answer
        if status == 200 and f"{_META}{MARKER}" not in headers:
            return body
        if status == 404 and b"<Code>NoSuchKey</Code>" in body:  # not a missing bucket
            return MISSING
        return None

    async def list(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """One page of ``list_objects_v2(**params)`` (``Prefix``, ``Delimiter``, ``MaxKeys``,
        ``StartAfter``, ``ContinuationToken``), or ``None`` when the server did not answer it."""
        # Keys come URL-encoded, as botocore asks: a key may hold what XML cannot carry.
        query = {"list-type": "2", "encoding-type": "url"}
        query.update((_QUERY_NAMES[name], str(value)) for name, value in params.items())
        # Encoded and in order once, here: the signature covers exactly what is sent.
        encoded = "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in sorted(query.items()))
        answer = await self._send("GET", f"{self._url}?{encoded}")
        if answer is None or answer[0] != 200:
            return None
        return _parsed(answer[2])

    def _object_url(self, key: str) -> str:
        return f"{self._url}/{quote(key, safe='/~')}"

    async def _send(self, method: str, url: str) -> tuple[int, Mapping[str, str], bytes] | None:
        """The status, headers (aiohttp's: their names in any case) and body of one signed request
        (``url`` already encoded), or ``None`` when it got no answer."""
        request = botocore.awsrequest.AWSRequest(method=method, url=url)
        self._signer.add_auth(request)
        try:
            async with self._http().request(method, yarl.URL(url, encoded=True), headers=dict(request.headers.items())) as response:
                return response.status, response.headers, await response.read()
        except (TimeoutError, aiohttp.ClientError):
            return None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS, ssl=self._verify),
                timeout=aiohttp.ClientTimeout(total=60, sock_connect=5),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _parsed(body: bytes) -> dict[str, Any] | None:
    """A ListBucketResult as botocore gives it: ``CommonPrefixes``, ``Contents`` (``Key``, ``Size``,
    ``LastModified``), ``IsTruncated`` and ``NextContinuationToken``; ``None`` if unreadable."""
    prefixes: list[str] = []
    contents: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    try:
        for element in ElementTree.fromstring(body):
            name = element.tag.rpartition("}")[2]  # whatever namespace the server writes
            if name == "CommonPrefixes":
                prefixes += [child.text or "" for child in element if child.tag.endswith("Prefix")]
            elif name == "Contents":
                item = {child.tag.rpartition("}")[2]: child.text or "" for child in element}
                modified = datetime.datetime.fromisoformat(item["LastModified"])
                if modified.tzinfo is None:  # S3 writes UTC, and says so with a Z
                    modified = modified.replace(tzinfo=datetime.UTC)
                contents.append({"Key": item["Key"], "Size": int(item["Size"]), "LastModified": modified})
            else:
                fields[name] = element.text or ""
    except (ElementTree.ParseError, KeyError, ValueError):
        return None
    if fields.get("EncodingType") == "url":
        prefixes = [unquote_plus(prefix) for prefix in prefixes]
        for item in contents:
            item["Key"] = unquote_plus(item["Key"])
    answer: dict[str, Any] = {
        "CommonPrefixes": [{"Prefix": prefix} for prefix in prefixes],
        "Contents": contents,
        "IsTruncated": fields.get("IsTruncated") == "true",
    }
    if "NextContinuationToken" in fields:
        answer["NextContinuationToken"] = fields["NextContinuationToken"]
    return answer
