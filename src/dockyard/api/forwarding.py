"""The registry's client-facing address, behind a reverse proxy too.

Dockyard writes few absolute URLs (``Location`` headers stay relative); the one it
must write is the token realm in ``WWW-Authenticate``. Behind nginx, the request
Dockyard sees came from the proxy, to the upstream's address: the realm has to name
the scheme, host and port the *client* used instead. :func:`public_base_url` decides:

1. A configured public URL (``--public-url`` or registry:2's ``http.host``) wins.
2. Otherwise ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-Port``
   are honoured, but only when the connection comes from a trusted proxy
   (``--trusted-proxy CIDR``, ``dockyard.trusted_proxies``). None is trusted by
   default, loopback included: any local process could otherwise forge them.
   A header holding several comma-separated values (proxies that append) counts
   by its last value, the one the nearest proxy, the trusted one, wrote. A value
   that is not a scheme (http, https), a host or a port is ignored.
3. Otherwise the request's own scheme and ``Host`` header.

The port: an explicit port in the (forwarded) host wins over ``X-Forwarded-Port``,
which otherwise applies; the scheme's default port (80, 443) is never written.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.forwarding import DEFAULT_PORTS, Forwarding, join_url, split_host

FORWARDING_KEY = web.AppKey("dockyard_forwarding", Forwarding)


def path_prefix(request: web.Request) -> str:
    forwarding = request.app.get(FORWARDING_KEY)
    return forwarding.prefix if forwarding is not None else ""


def _last(request: web.Request, name: str) -> str | None:
    values = request.headers.getall(name, [])
    if not values:
        return None
    value = values[-1].rsplit(",", 1)[-1].strip()
    return value or None


def public_base_url(request: web.Request) -> str:
    """``scheme://host[:port]`` as the client reached the registry (no trailing slash)."""
    forwarding = request.app.get(FORWARDING_KEY) or Forwarding()
    if forwarding.public_url:
        return forwarding.public_url
    scheme = request.scheme
    host_text = request.host
    forwarded_port: int | None = None
    if forwarding.trusts(request.remote):
        proto = (_last(request, "X-Forwarded-Proto") or "").lower()
        if proto in DEFAULT_PORTS:
            scheme = proto
        forwarded_host = _last(request, "X-Forwarded-Host")
        if forwarded_host and split_host(forwarded_host) is not None:
            host_text = forwarded_host
        port_text = _last(request, "X-Forwarded-Port")
        if port_text and port_text.isdigit() and 1 <= int(port_text) <= 65535:
            forwarded_port = int(port_text)
    parsed = split_host(host_text or "")
    if parsed is None:
        # No usable Host header (HTTP/1.0): the address the request came in on.
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if not sockname:
            return f"{scheme}://localhost"
        address = sockname[0]
        parsed = (f"[{address}]" if ":" in address else address, sockname[1])
    host, port = parsed
    if port is None:
        port = forwarded_port
    return join_url(scheme, host, port)
