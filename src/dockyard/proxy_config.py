"""Render an nginx site that fronts Dockyard: an ``upstream``, a ``map`` and a ``server``.

The text goes inside nginx's ``http {}`` (e.g. a file in ``sites-enabled`` or
``conf.d``). What it gets right, and why:

* ``client_max_body_size 0`` and ``proxy_request_buffering off``: layers are
  gigabytes; nginx must neither refuse them (its default is 1 MiB) nor spool them
  to disk before Dockyard sees the first byte. ``proxy_buffering off`` does the
  same for pulls.
* ``proxy_read_timeout``/``proxy_send_timeout`` 900s: Dockyard may hash a large
  layer before it answers the last PUT of an upload.
* ``Host $http_host`` and the ``X-Forwarded-*`` headers: the registry sees the
  name, scheme and port clients used (Dockyard's ``Location`` headers are
  relative, so nothing needs rewriting).
* Authentication at nginx (``auth_at_proxy``): nginx's own 401 carries no
  ``Docker-Distribution-Api-Version``, which clients need; the ``map`` adds
  ``registry/2.0`` only when Dockyard did not send one, so that a response never
  carries the header twice. ``Authorization`` is not passed on: Dockyard must not
  see (or log) the password checked at nginx.
* TLS to Dockyard (``upstream_ca``): nginx verifies Dockyard's certificate against
  that CA, for the upstream's host name, and sends it as SNI.
"""

from __future__ import annotations

import ipaddress
import pathlib
import re
from dataclasses import dataclass

READ_TIMEOUT = "900s"
DEFAULT_UPSTREAM = "127.0.0.1:5000"
DEFAULT_LISTEN = "443"

_NAME = re.compile(r"^[A-Za-z0-9*_.\-~]+$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ProxyConfigError(ValueError):
    """A setting nginx could not use."""


@dataclass(frozen=True)
class HostPort:
    host: str  # without brackets for IPv6
    port: int

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return f"{host}:{self.port}"


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ProxyConfigError(f"{what}: {text!r} is not a port (1-65535)")
    return int(text)


def parse_host_port(text: str, what: str = "upstream") -> HostPort:
    """``HOST:PORT`` or ``[IPv6]:PORT``."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\w+)|([^:\[\]]+):(\w+)", text.strip())
    if not match:
        raise ProxyConfigError(f"{what}: {text!r} is not HOST:PORT (or [IPv6]:PORT)")
    host = match.group(1) or match.group(3)
    port = _port(match.group(2) or match.group(4), what)
    if match.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ProxyConfigError(f"{what}: {host!r} is not an IPv6 address") from None
    elif not _HOSTNAME.match(host):
        raise ProxyConfigError(f"{what}: {host!r} is not a host name or IPv4 address")
    return HostPort(host, port)


def parse_listen(text: str) -> tuple[str | None, int]:
    """``PORT``, ``ADDRESS:PORT`` or ``[IPv6]:PORT``: the address (bracketed if IPv6), None for every interface."""
    text = text.strip()
    if text.isdigit():
        return None, _port(text, "listen")
    parsed = parse_host_port(text, "listen")
    try:
        ipaddress.ip_address(parsed.host)
    except ValueError:
        raise ProxyConfigError(f"listen: {parsed.host!r} is not an IP address") from None
    return (f"[{parsed.host}]" if parsed.is_ipv6 else parsed.host), parsed.port


def _quote(value: str | pathlib.Path) -> str:
    """A value nginx reads as one word: bare when safe, else double-quoted."""
    text = str(value)
    if not text or any(ch in text for ch in "\r\n\0$"):
        # nginx would read "$" as a variable (and load certificates per handshake).
        raise ProxyConfigError(f"{text!r} cannot go in an nginx configuration (no '$', newlines or NUL)")
    if re.fullmatch(r"[A-Za-z0-9_./:@+=,\-~]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class NginxSite:
    """What ``dockyard proxy-config nginx`` is given."""

    server_name: str
    listen: str = DEFAULT_LISTEN
    upstream: str = DEFAULT_UPSTREAM
    tls_cert: pathlib.Path | None = None
    tls_key: pathlib.Path | None = None
    auth_at_proxy: pathlib.Path | None = None  # an htpasswd file
    upstream_ca: pathlib.Path | None = None  # TLS to Dockyard, verified against this CA
    upstream_tls_name: str | None = None  # the name Dockyard's certificate is checked for (and SNI)
    auth_realm: str = "Dockyard"

    def validate(self) -> None:
        names = self.server_name.split()
        if not names or not all(_NAME.match(name) for name in names):
            raise ProxyConfigError(f"server name {self.server_name!r}: use host names (letters, digits, '.', '-', '*')")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ProxyConfigError("--tls-cert and --tls-key go together")
        parse_listen(self.listen)
        parse_host_port(self.upstream)
        if self.upstream_tls_name is not None and not _HOSTNAME.match(self.upstream_tls_name):
            raise ProxyConfigError(f"upstream TLS name {self.upstream_tls_name!r} is not a host name")
        if self.upstream_ca:
            self.tls_name()
        if any(ch in self.auth_realm for ch in '"\\$\r\n\0'):
            raise ProxyConfigError("the realm cannot contain quotes, backslashes, '$' or newlines")

    def tls_name(self) -> str:
        """The name nginx checks Dockyard's certificate for: the upstream's host by default.

        nginx (1.22 at least) checks proxy_ssl_name against DNS names only, never
        against IP addresses in a certificate: for a loopback upstream the name is
        ``localhost`` (always in the certificate ``dockyard serve`` makes); for any
        other IP address it must be given.
        """
        if self.upstream_tls_name:
            return self.upstream_tls_name
        host = parse_host_port(self.upstream).host
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host
        if address.is_loopback:
            return "localhost"
        raise ProxyConfigError(
            f"nginx cannot verify a certificate for the IP address {host}: give the DNS name "
            "Dockyard's certificate carries (--upstream-tls-name, or use it in --upstream)"
        )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def upstream_name(self) -> str:
        """The ``upstream`` block's name: unique per server name, so that several sites can coexist."""
        first = self.server_name.split()[0]
        return "dockyard_" + re.sub(r"[^A-Za-z0-9]+", "_", first).strip("_").lower()


def render_nginx(site: NginxSite) -> str:
    """The nginx configuration text (for ``http {}``) of ``site``."""
    site.validate()
    address, port = parse_listen(site.listen)
    upstream = parse_host_port(site.upstream)
    scheme = "https" if site.upstream_ca else "http"
    name = site.upstream_name
    header_variable = f"${name}_api_version"
    lines: list[str] = [
        "# Generated by `dockyard proxy-config nginx`: put it in nginx's http {} block",
        "# (e.g. /etc/nginx/conf.d/dockyard.conf), then run `nginx -t`.",
        "",
        f"upstream {name} {{",
        f"    server {upstream};",
        "    keepalive 16;",
        "}",
        "",
    ]
    if site.auth_at_proxy:
        lines += [
            "# Clients need Docker-Distribution-Api-Version on nginx's own 401s too; add it",
            "# only when Dockyard did not, so that no response carries it twice.",
            f"map $upstream_http_docker_distribution_api_version {header_variable} {{",
            "    '' 'registry/2.0';",
            "}",
            "",
        ]
    lines += ["server {"]
    where = f"{address}:{port}" if address else str(port)
    if site.tls_cert is not None and site.tls_key is not None:  # validate() pairs them
        lines += [
            f"    listen {where} ssl;",
            f"    server_name {' '.join(site.server_name.split())};",
            "",
            f"    ssl_certificate {_quote(site.tls_cert)};",
            f"    ssl_certificate_key {_quote(site.tls_key)};",
            "    ssl_protocols TLSv1.2 TLSv1.3;",
            "    ssl_prefer_server_ciphers off;",
            "    ssl_session_timeout 1d;",
        ]
    else:
        lines += [
            "    # Plain HTTP: no --tls-cert was given. TLS MUST then be terminated elsewhere",
            "    # (a load balancer in front of this nginx): clients refuse a plain-HTTP",
            "    # registry unless each one is told it is insecure, and passwords would",
            "    # cross the network in clear text.",
            f"    listen {where};",
            f"    server_name {' '.join(site.server_name.split())};",
        ]
    lines += [
        "",
        "    # Layers are large: no size limit, stream them rather than buffering to disk.",
        "    client_max_body_size 0;",
        "    chunked_transfer_encoding on;",
        "",
        "    # Proxy settings for every location below (none of them sets its own",
        "    # proxy_set_header, which would drop all of these).",
    ]
    lines += _proxy_lines(site, upstream, indent="    ")
    lines += [
        "",
        "    # Unauthenticated liveness checks (old clients ping /v1/_ping), answered by nginx.",
        "    location = /_ping {",
        "        auth_basic off;",
        "        access_log off;",
        "        default_type text/plain;",
        "        return 200 'ok';",
        "    }",
        "    location = /v1/_ping {",
        "        auth_basic off;",
        "        access_log off;",
        "        default_type text/plain;",
        "        return 200 'ok';",
        "    }",
        "",
        "    location /v2/ {",
    ]
    if site.auth_at_proxy:
        lines += [
            f'        auth_basic "{site.auth_realm}";',
            f"        auth_basic_user_file {_quote(site.auth_at_proxy)};",
            f"        add_header Docker-Distribution-Api-Version {header_variable} always;",
        ]
    lines += [
        f"        proxy_pass {scheme}://{name};",
        "    }",
        "",
        "    # Everything else (e.g. the token endpoint and CA download of `dockyard serve`).",
        "    location / {",
    ]
    if site.auth_at_proxy:
        lines += [
            f'        auth_basic "{site.auth_realm}";',
            f"        auth_basic_user_file {_quote(site.auth_at_proxy)};",
        ]
    lines += [
        f"        proxy_pass {scheme}://{name};",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


def _proxy_lines(site: NginxSite, upstream: HostPort, indent: str) -> list[str]:
    lines = [
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        "proxy_set_header X-Forwarded-Port $server_port;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    ]
    if site.auth_at_proxy:
        lines += [
            "# The password was checked here; Dockyard must not see it.",
            'proxy_set_header Authorization "";',
        ]
    lines += [
        "proxy_request_buffering off;",
        "proxy_buffering off;",
        f"proxy_read_timeout {READ_TIMEOUT};",
        f"proxy_send_timeout {READ_TIMEOUT};",
    ]
    if site.upstream_ca:
        lines += [
            "# TLS to Dockyard, verified against its CA and for its host name (nginx checks",
            "# the certificate's DNS names only, not IP addresses).",
            f"proxy_ssl_trusted_certificate {_quote(site.upstream_ca)};",
            "proxy_ssl_verify on;",
            "proxy_ssl_verify_depth 2;",
            "proxy_ssl_server_name on;",
            f"proxy_ssl_name {_quote(site.tls_name())};",
            "proxy_ssl_protocols TLSv1.2 TLSv1.3;",
            "proxy_ssl_session_reuse on;",
        ]
    return [f"{indent}{line}" if line else "" for line in lines]
