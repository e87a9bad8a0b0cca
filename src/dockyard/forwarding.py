"""What ``--trusted-proxy``, ``--public-url`` and ``http.prefix`` say, parsed and checked
(see :mod:`dockyard.api.forwarding` for how a request's client-facing address is decided)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"http": 80, "https": 443}
# host[:port] or [IPv6][:port]; names are letters, digits, '-', '.', '_'.
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9_.\-]+))(?::(?P<port>\d{1,5}))?$")


class ForwardingError(ValueError):
    """A trusted-proxy network or public URL that cannot be used."""


@dataclass(frozen=True)
class Forwarding:
    """What :func:`dockyard.api.forwarding.public_base_url` needs: the trusted proxies, the public URL, the prefix."""

    trusted: tuple[Network, ...] = ()
    public_url: str | None = None  # scheme://host[:port], no trailing slash
    prefix: str = ""  # registry:2's http.prefix: "" or "/path", no trailing slash

    @classmethod
    def build(cls, trusted_proxies: Iterable[str] = (), public_url: str | None = None, prefix: str = "") -> Forwarding:
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


def parse_prefix(text: str) -> str:
    """``/registry/`` → ``/registry``; ``""`` and ``/`` → ``""``."""
    stripped = text.strip().strip("/")
    if any(character in stripped for character in "?#%\\ ") or "//" in stripped:
        raise ForwardingError(f"a path prefix is plain path segments, got {text!r}")
    return f"/{stripped}" if stripped else ""


def parse_trusted(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (``10.0.0.0/8``, ``::1/128``) or single addresses (``127.0.0.1``)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ForwardingError(f"trusted proxy {value!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def split_host(text: str) -> tuple[str, int | None] | None:
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


def join_url(scheme: str, host: str, port: int | None) -> str:
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
    host = split_host(parts.netloc)
    if host is None:
        raise ForwardingError(f"public URL {text!r}: {parts.netloc!r} is not HOST[:PORT] or [IPv6][:PORT]")
    return join_url(scheme, *host)
