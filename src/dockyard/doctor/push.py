"""What a proxy in front does to pushes, measured with real uploads to a scratch repository that
are cancelled afterwards (nothing is committed): a streamed PATCH without Content-Length, a body
over nginx's default 1 MiB, an upload that lasts longer than proxies' usual time limits, and where
the ``Location`` headers send the client next."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx

from dockyard.doctor.network import Target
from dockyard.doctor.registry import request
from dockyard.doctor.results import Check, fail, ok, warn

STREAMED_BYTES = 128 * 1024
LARGE_BYTES = 1024 * 1024 + 512 * 1024  # over nginx's default client_max_body_size of 1m
LONG_REQUEST = 65.0  # seconds: past the 60 s that proxies' timeouts default to (nginx, Traefik, cloud load balancers)
PACE = 1.0  # seconds between the pieces of the long upload
PACED_PIECE = 16 * 1024
PROXY_HEADERS_FIX = (
    "the proxy must pass the client's host and scheme: nginx 'proxy_set_header Host $http_host;' and "
    "'proxy_set_header X-Forwarded-Proto $scheme;' (or set the registry's http.host to the public https:// URL)"
)


def location_problem(target: Target, scheme: str, location: str) -> str | None:
    """Why a client following ``location`` would leave the registry it was talking to."""
    try:
        url = httpx.URL(location)
    except httpx.InvalidURL:
        return f"Location {location!r} is not a URL"
    if url.is_relative_url:
        return None
    if scheme == "https" and url.scheme == "http":
        return f"Location {location} sends the client to plain http:// (docker: 'http: server gave HTTP response to HTTPS client')"
    default = 443 if url.scheme == "https" else 80
    if (url.host.lower(), url.port or default) != (target.host.lower(), target.port):
        return f"Location {location} names {url.netloc.decode()}, not {target.host_port}: an address behind the proxy that clients cannot reach"
    return None


def _path(location: str) -> str:
    """Where to send the next request: the Location's path, always on the address being checked."""
    try:
        return httpx.URL(location).raw_path.decode()
    except httpx.InvalidURL:
        return location


def _streamed() -> Iterator[bytes]:
    for _ in range(STREAMED_BYTES // 16384):
        yield os.urandom(16384)


def _paced(seconds: float) -> Iterator[bytes]:
    """A piece every second for ``seconds``, as a layer crossing a slow link arrives: a proxy that
    limits a request's total time (Traefik's readTimeout of 60 s, load balancers) or the pauses
    between its pieces cuts it, where a quick test upload passes."""
    end = time.monotonic() + seconds
    while True:
        yield os.urandom(PACED_PIECE)
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(PACE, left))


class PushTest:
    def __init__(
        self, client: httpx.Client, target: Target, scheme: str, repository: str, headers: dict[str, str], long_request: float = 0,
    ) -> None:
        self.client = client
        self.long_request = long_request  # seconds; 0 skips that measure
        self.target = target
        self.scheme = scheme
        self.repository = repository
        self.headers = headers
        self.bad_locations: list[str] = []
        self.left_behind: list[str] = []  # why cancelling a test upload failed

    def _follow(self, response: httpx.Response) -> str | None:
        location = response.headers.get("Location")
        if location is None:
            return None
        problem = location_problem(self.target, self.scheme, location)
        if problem is not None and problem not in self.bad_locations:
            self.bad_locations.append(problem)
        return _path(location)

    def _start(self) -> str | Check:
        answer = request(self.client, "POST", f"/v2/{self.repository}/blobs/uploads/", headers=self.headers)
        if isinstance(answer, str):
            return fail("push", f"starting an upload to {self.repository} failed: {answer}", "check the proxy's and the registry's logs")
        if answer.status_code in (401, 403):
            return fail(
                "push", f"starting an upload to {self.repository} is refused ({answer.status_code})",
                "sign in as a user who may push to that repository (--username)",
            )
        location = self._follow(answer)
        if answer.status_code != 202 or location is None:
            return fail(
                "push", f"starting an upload answered {answer.status_code}, not 202 with a Location",
                "check the registry's logs (read-only mode, storage errors)",
            )
        return location

    def _cancel(self, location: str) -> None:
        answer = request(self.client, "DELETE", location, headers=self.headers)
        if isinstance(answer, str) or answer.status_code not in (200, 202, 204):
            self.left_behind.append(answer if isinstance(answer, str) else f"answered {answer.status_code}")

    def _patch(
        self, name: str, content: bytes | Iterator[bytes], refusals: dict[int, tuple[str, str]], what: str,
        cut_fix: str = "the proxy cut the request: check its logs and its timeouts (proxy_read_timeout)",
    ) -> list[Check]:
        location = self._start()
        if isinstance(location, Check):
            return [location]
        answer = request(self.client, "PATCH", location, content=content, headers={**self.headers, "Content-Type": "application/octet-stream"})
        checks = []
        if isinstance(answer, str):
            checks.append(fail(name, f"{what} failed: {answer}", cut_fix))
        elif answer.status_code in refusals:
            message, fix = refusals[answer.status_code]
            checks.append(fail(name, f"{what} answered {answer.status_code}: {message}", fix))
        elif answer.status_code != 202:
            checks.append(fail(name, f"{what} answered {answer.status_code}, not 202", "check the proxy's and the registry's logs"))
        else:
            checks.append(ok(name, f"{what} accepted"))
            location = self._follow(answer) or location
        self._cancel(location)
        return checks

    def run(self) -> list[Check]:
        checks = self._patch(
            "push: streamed chunk", _streamed(),
            {411: ("'411 Length Required': the proxy refuses chunked request bodies, which docker sends for every layer",
                   "let the proxy take chunked uploads (nginx 1.3.9 or newer; no rule that refuses Transfer-Encoding: chunked)")},
            f"a PATCH of {STREAMED_BYTES // 1024} KiB without Content-Length (Transfer-Encoding: chunked)",
        )
        if checks[0].name == "push":  # no upload could start: the other measures would say the same
            return checks
        checks += self._patch(
            "push: large body", os.urandom(LARGE_BYTES),
            {413: ("'413 Request Entity Too Large': layers over the proxy's body limit cannot be pushed",
                   "lift the proxy's limit: nginx 'client_max_body_size 0;' in the registry's server block")},
            f"a PATCH of {LARGE_BYTES / 1024 / 1024:.1f} MiB",
        )
        if self.long_request > 0:
            cut = ("the proxy cut an upload that took {seconds:.0f} s: a layer that takes as long to cross the network cannot be pushed",
                   "raise the proxy's time limits for the registry: nginx client_body_timeout, proxy_read_timeout and proxy_send_timeout "
                   "(the seeds' 900), Traefik's entryPoints respondingTimeouts.readTimeout (0 lifts it), a load balancer's idle timeout")
            message, fix = cut[0].format(seconds=self.long_request), cut[1]
            checks += self._patch(
                "push: long request", _paced(self.long_request), {408: (message, fix), 502: (message, fix), 504: (message, fix)},
                f"a PATCH sent a piece a second for {self.long_request:.0f} s", cut_fix=fix,
            )
        if self.left_behind:
            checks.append(warn(
                "push: cleanup", f"cancelling the test uploads: {'; '.join(self.left_behind)}",
                "nothing was committed; the registry's upload purging removes them later (a user without the delete right cannot cancel)",
            ))
        if self.bad_locations:
            checks.append(fail("push: locations", "; ".join(self.bad_locations), PROXY_HEADERS_FIX))
        elif not any(check.name == "push" for check in checks):
            checks.append(ok("push: locations", f"every Location stays on {self.scheme}://{self.target.host_port}"))
        return checks
