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

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"http": 80, "https": 443}
# host[:port] or [IPv6][:port]; names are letters, digits, '-', '.', '_'.
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9_.\-]+))(?::(?P<port>\d{1,5}))?$")


class ForwardingError(ValueError):
    """A trusted-proxy network or public URL that cannot be used."""


@dataclass(frozen=True)
class Forwarding:
    """What :func:`public_base_url` needs: the trusted proxies and the public URL."""

    trusted: tuple[Network, ...] = ()
    public_url: str | None = None  # scheme://host[:port], no trailing slash
    prefix: str = ""  # registry:2's http.prefix: "" or "/path", no trailing slash

    @classmethod
    def build(cls, trusted_proxies: Iterable[str] = (), public_url: str | None = None, prefix: str = "") -> "Forwarding":
        return cls(parse_trusted(trusted_proxies), parse_public_url(public_url) if public_url else None, parse_prefix(prefix))

    def trusts(self, peer: str | None) -> bool:
        if not peer or not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == network.version and address in network for network in self.trusted)


FORWARDING_KEY = web.AppKey("dockyard_forwarding", Forwarding)


def parse_prefix(text: str) -> str:
    """``/registry/`` → ``/registry``; ``""`` and ``/`` → ``""``."""
    stripped = text.strip().strip("/")
    if any(character in stripped for character in "?#%\\ ") or "//" in stripped:
        raise ForwardingError(f"a path prefix is plain path segments, got {text!r}")
    return f"/{stripped}" if stripped else ""


def path_prefix(request: web.Request) -> str:
    forwarding = request.app.get(FORWARDING_KEY)
    return forwarding.prefix if forwarding is not None else ""


def parse_trusted(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (``10.0.0.0/8``, ``::1/128``) or single addresses (``127.0.0.1``)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ForwardingError(f"trusted proxy {value!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _split_host(text: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of ``host[:port]``, the host bracketed if IPv6; None if not a host."""
    match = _HOST.match(text.strip())
    if not match:
        return None
    if match.group("v6") is not None:
        try:
            host = f"[{ipaddress.IPv6Address(match.group('v6')).compressed}]"
        except ValueError:
            return None
    else:
        host = match.group("name")
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        return None
    return host, int(port) if port is not None else None


def _join(scheme: str, host: str, port: int | None) -> str:
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_public_url(text: str) -> str:
    """``http.host``/``--public-url``, normalised to ``scheme://host[:port]``."""
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ForwardingError(f"public URL {text!r}: give http:// or https:// and the host, e.g. https://registry.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ForwardingError(f"public URL {text!r}: only a scheme, host and port (dockyard serves at the root, no path prefix)")
    host = _split_host(parts.netloc)
    if host is None:
        raise ForwardingError(f"public URL {text!r}: {parts.netloc!r} is not HOST[:PORT] or [IPv6][:PORT]")
    return _join(scheme, *host)


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
        if forwarded_host and _split_host(forwarded_host) is not None:
            host_text = forwarded_host
        port_text = _last(request, "X-Forwarded-Port")
        if port_text and port_text.isdigit() and 1 <= int(port_text) <= 65535:
            forwarded_port = int(port_text)
    parsed = _split_host(host_text or "")
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
    return _join(scheme, host, port)
