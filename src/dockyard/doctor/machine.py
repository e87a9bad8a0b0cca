"""What the clients on this machine are configured with: their certificate folders, the registries
they reach over plain HTTP, and the passwords they saved. Every path lies under a root (``/`` unless
another is given, as ``dockyard trust --root`` writes), so a test can point all of them at a folder."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import pathlib
import tomllib
import warnings
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from dockyard.tls.trust import CONTAINERS_CERTS, DOCKER_CERTS, ROOT

DOCKER_DAEMON_JSON = pathlib.Path("/etc/docker/daemon.json")
REGISTRIES_CONF = pathlib.Path("/etc/containers/registries.conf")
CONTAINERD_CERTS = pathlib.Path("/etc/containerd/certs.d")
# Where Go's crypto/x509 looks for the system's roots on Linux, in its order (the first found wins).
SYSTEM_BUNDLES = (
    pathlib.Path("/etc/ssl/certs/ca-certificates.crt"),
    pathlib.Path("/etc/pki/tls/certs/ca-bundle.crt"),
    pathlib.Path("/etc/ssl/ca-bundle.pem"),
    pathlib.Path("/etc/pki/tls/cacert.pem"),
    pathlib.Path("/etc/ssl/cert.pem"),
)
# docker's daemon reaches these over plain HTTP without being told (its default insecure-registries).
DOCKER_DEFAULT_INSECURE = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True)
class TrustStore:
    """The roots one client verifies a registry's certificate with."""

    client: str
    roots: list[x509.Certificate]
    where: str  # the files that added the registry's own roots, or the system store alone


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str


@dataclass(frozen=True)
class Machine:
    root: pathlib.Path = ROOT
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def path(self, path: pathlib.Path) -> pathlib.Path:
        return self.root / path.relative_to(ROOT)

    # --- certificates ---

    def system_roots(self) -> tuple[list[x509.Certificate], str]:
        bundle = self.environ.get("SSL_CERT_FILE")
        candidates = [pathlib.Path(bundle)] if bundle else [self.path(path) for path in SYSTEM_BUNDLES]
        for candidate in candidates:
            if candidate.is_file():
                return _load_roots(candidate), str(candidate)
        return [], "no system store found"

    def trust_stores(self, host_port: str) -> list[TrustStore]:
        """One store per client configured on this machine (its /etc folder exists), and the system's."""
        system, system_where = self.system_roots()
        stores = []
        for client, folder in (("docker", DOCKER_CERTS), ("podman/skopeo", CONTAINERS_CERTS)):
            if self.path(folder).parent.is_dir():
                own = sorted(self.path(folder / host_port).glob("*.crt"))
                stores.append(_store(client, system, system_where, own, self.path(folder / host_port) / "*.crt"))
        if self.path(CONTAINERD_CERTS).parent.is_dir():
            hosts_toml = self.path(CONTAINERD_CERTS / host_port / "hosts.toml")
            stores.append(_store("containerd", system, system_where, self._containerd_cas(host_port), hosts_toml))
        stores.append(TrustStore("system store", system, system_where))
        return stores

    def _hosts_toml(self, host_port: str) -> tuple[pathlib.Path, dict[str, Any]] | None:
        path = self.path(CONTAINERD_CERTS / host_port / "hosts.toml")
        try:
            return path, tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return None

    def _containerd_cas(self, host_port: str) -> list[pathlib.Path]:
        """The ``ca`` files hosts.toml names (at its top or in a ``[host."..."]`` section)."""
        found = self._hosts_toml(host_port)
        if found is None:
            return []
        path, hosts = found
        sections = [hosts, *_table(hosts, "host").values()]
        files: list[pathlib.Path] = []
        for section in sections:
            value = section.get("ca") if isinstance(section, dict) else None
            names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            for named in (pathlib.Path(name) for name in names if isinstance(name, str)):
                files.append(self.path(named) if named.is_absolute() else path.parent / named)
        return files

    # --- plain HTTP ---

    def plain_http_allowed(self, host_port: str) -> dict[str, bool]:
        """Per client configured here: whether it will talk plain HTTP to ``host_port``."""
        allowed = {}
        if self.path(DOCKER_DAEMON_JSON).parent.is_dir():
            allowed["docker"] = self._docker_insecure(host_port)
        if self.path(REGISTRIES_CONF).parent.is_dir():
            allowed["podman/skopeo"] = self._containers_insecure(host_port)
        if self.path(CONTAINERD_CERTS).parent.is_dir():
            allowed["containerd"] = self._containerd_plain(host_port)
        return allowed

    def _docker_insecure(self, host_port: str) -> bool:
        try:
            entries = json.loads(self.path(DOCKER_DAEMON_JSON).read_text()).get("insecure-registries") or []
        except (OSError, ValueError, AttributeError):
            entries = []
        host = host_port.rpartition(":")[0].strip("[]") or host_port
        networks = [DOCKER_DEFAULT_INSECURE]
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, str):
                continue
            if entry in (host_port, host):
                return True
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                pass
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in networks)

    def _containers_insecure(self, host_port: str) -> bool:
        conf = self.path(REGISTRIES_CONF)
        files = [conf, *sorted(conf.with_suffix(".conf.d").glob("*.conf"))]
        insecure = False
        for path in files:  # a later file's entry for the same registry wins
            try:
                document = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError):
                continue
            registries = document.get("registry")
            for registry in registries if isinstance(registries, list) else []:
                if isinstance(registry, dict) and host_port in (registry.get("location"), registry.get("prefix")) and "insecure" in registry:
                    insecure = bool(registry["insecure"])
            if host_port in _table(_table(document, "registries"), "insecure").get("registries", []):
                insecure = True  # the version 1 format
        return insecure

    def _containerd_plain(self, host_port: str) -> bool:
        found = self._hosts_toml(host_port)
        if found is None:
            return False
        hosts = found[1]
        servers = [str(hosts.get("server", "")), *_table(hosts, "host")]
        return any(server.startswith("http://") for server in servers)

    # --- saved passwords ---

    def saved_credentials(self, host_port: str) -> Credentials | None:
        """What ``docker login`` or ``podman login`` saved for ``host_port``, podman's files first."""
        home = pathlib.Path(self.environ.get("HOME", "/root"))
        files = []
        if "REGISTRY_AUTH_FILE" in self.environ:
            files.append(pathlib.Path(self.environ["REGISTRY_AUTH_FILE"]))
        if "XDG_RUNTIME_DIR" in self.environ:
            files.append(pathlib.Path(self.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
        files.append(pathlib.Path(self.environ.get("XDG_CONFIG_HOME", home / ".config")) / "containers" / "auth.json")
        files.append(pathlib.Path(self.environ.get("DOCKER_CONFIG", home / ".docker")) / "config.json")
        for path in files:
            try:
                entry = json.loads(path.read_text()).get("auths", {}).get(host_port, {})
                username, _, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (OSError, ValueError, KeyError, AttributeError, TypeError, binascii.Error):
                continue
            return Credentials(username, password, str(path))
        return None


def _table(document: dict[str, Any], key: str) -> dict[str, Any]:
    """A TOML table, or an empty one where the file has none (or something else) under ``key``."""
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _load_roots(path: pathlib.Path) -> list[x509.Certificate]:
    """The certificates of a PEM file; those cryptography cannot parse are left out, as Go skips them."""
    try:
        text = path.read_bytes()
    except OSError:
        return []
    roots = []
    marker = b"-----BEGIN CERTIFICATE-----"
    with warnings.catch_warnings():  # old roots with a serial number RFC 5280 forbids: Go loads them too
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for block in text.split(marker)[1:]:
            try:
                roots.append(x509.load_pem_x509_certificate(marker + block))
            except ValueError:
                continue
    return roots


def _store(client: str, system: list[x509.Certificate], system_where: str, own: list[pathlib.Path], folder: pathlib.Path) -> TrustStore:
    roots = [root for path in own for root in _load_roots(path)]
    where = ", ".join(str(path) for path in own if path.is_file()) or f"{folder} (none there) and {system_where}"
    return TrustStore(client, system + roots, where)
