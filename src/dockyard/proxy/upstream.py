"""The pull-through cache's client of its upstream registry, authenticating as container clients do.

Anonymous first; on a 401 the challenge says how: ``Basic`` takes the configured user
and password, ``Bearer realm=...,service=...,scope=...`` (Docker Hub's token flow) takes
a token from the realm (asked with the user and password when there are some) and the
request is sent again. Tokens are kept per scope until they expire, so a pull sends one
token request per repository rather than one per blob. Names go to the upstream as
given: Docker Hub's ``library/`` is its own business.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp

from dockyard.errors import UpstreamRateLimited, UpstreamUnavailable

log = logging.getLogger("dockyard.proxy")

# A token the realm gives without ``expires_in`` lasts this long (the Docker token spec's default).
DEFAULT_TOKEN_SECONDS = 60
# A token is used no closer to its end than this: a request sent just before it expires would be refused.
TOKEN_MARGIN_SECONDS = 5
CONNECT_SECONDS = 30
# Between two reads of a body: a stalled upstream fails the fetch rather than holding every client forever.
READ_SECONDS = 300

_PARAMETER = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    parameters: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header (registries send one)."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    parameters = {name.lower(): quoted.replace('\\"', '"') if quoted else plain for name, quoted, plain in _PARAMETER.findall(rest)}
    return Challenge(scheme.lower(), parameters)


def pull_scope(name: str) -> str:
    return f"repository:{name}:pull"


# aiohttp stops reading a body when twice this is buffered, and starts again when it falls below: its
# 64 KiB default stopped and started the socket's reading every few chunks of a blob.
READ_BUFFER_BYTES = 1 << 20


class UpstreamClient:
    """Requests to one upstream registry (``remote_url``, e.g. ``https://registry-1.docker.io``)."""

    def __init__(self, remote_url: str, username: str = "", password: str = "", ca_file: str = "") -> None:
        self.remote_url = remote_url.rstrip("/")
        self._basic = aiohttp.BasicAuth(username, password) if username else None
        # The system's CAs, or only those of ca_file; hostnames are always checked.
        self._ssl = ssl.create_default_context(cafile=ca_file or None)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, when it expires on the monotonic clock)
        self._challenge: Challenge | None = None  # the upstream's last, so later requests authenticate at once

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS, sock_read=READ_SECONDS),
                auto_decompress=False,  # blobs are served byte for byte, as the upstream stores them
                read_bufsize=READ_BUFFER_BYTES,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @contextlib.asynccontextmanager
    async def request(self, method: str, path: str, scope: str, headers: Mapping[str, str] | None = None) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send ``method`` to ``path`` (``/v2/...``) with what ``scope`` needs; the response is the
        upstream's last. :class:`UpstreamUnavailable` when it cannot be reached, :class:`UpstreamRateLimited` on 429."""
        url = self.remote_url + path
        try:
            response = await self._send(method, url, scope, dict(headers or {}))
            if response.status == 401:
                challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
                response.release()
                if challenge is not None and challenge.scheme in ("basic", "bearer"):
                    self._challenge = challenge
                    self._tokens.pop(scope, None)
                    response = await self._send(method, url, scope, dict(headers or {}))
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise UpstreamUnavailable(f"the upstream {self.remote_url} cannot be reached: {error.__class__.__name__}", "unreachable") from error
        try:
            if response.status == 429:
                raise UpstreamRateLimited(response.headers.get("Retry-After"), f"the upstream answered 429 to {method} {path}")
            yield response
        finally:
            response.release()

    async def body(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The response's body in the chunks it arrived in; a broken or stalled one is :class:`UpstreamUnavailable`."""
        content = response.content
        try:
            # One buffered chunk at a time: iter_any() joins all that queued up into a copy, on the event loop.
            # Not iter_chunks(): on aiohttp's shared reader of empty bodies it ends only once per process.
            while True:
                chunk, _ = await content.readchunk()
                if chunk:
                    yield chunk
                elif content.at_eof():
                    return
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            what = f"{response.method} {response.url.path}"
            raise UpstreamUnavailable(f"the upstream's answer to {what} broke off: {error.__class__.__name__}", "broken") from error

    async def _send(self, method: str, url: str, scope: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        challenge = self._challenge
        if challenge is not None and challenge.scheme == "bearer":
            headers["Authorization"] = f"Bearer {await self._token(challenge, scope)}"
        elif challenge is not None and self._basic is not None:
            headers["Authorization"] = self._basic.encode()
        # Redirects (to a blob's storage) are followed without the Authorization header: aiohttp drops it on another host.
        return await self._client().request(method, url, headers=headers, allow_redirects=True)

    async def _token(self, challenge: Challenge, scope: str) -> str:
        held = self._tokens.get(scope)
        if held is not None and held[1] > time.monotonic():
            return held[0]
        realm = challenge.parameters.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise UpstreamUnavailable(f"the upstream's token realm is not a URL: {realm[:200]!r}", "auth")
        query = {"scope": scope} | ({"service": challenge.parameters["service"]} if "service" in challenge.parameters else {})
        async with self._client().get(realm, params=query, auth=self._basic) as answer:
            if answer.status == 429:
                raise UpstreamRateLimited(answer.headers.get("Retry-After"), "the upstream's token service answered 429")
            if answer.status != 200:
                raise UpstreamUnavailable(f"the upstream's token service answered {answer.status}", "auth")
            document = await answer.json(content_type=None)
        token = document.get("token") or document.get("access_token") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamUnavailable("the upstream's token service gave no token", "auth")
        lifetime = document.get("expires_in")
        seconds = lifetime if isinstance(lifetime, int) and lifetime > 0 else DEFAULT_TOKEN_SECONDS
        self._tokens[scope] = (token, time.monotonic() + max(seconds - TOKEN_MARGIN_SECONDS, 1))
        return token

