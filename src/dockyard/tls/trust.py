"""Installing a registry's CA where clients look for it (``dockyard trust``).

- docker: ``/etc/docker/certs.d/HOST:PORT/ca.crt``
- podman, buildah, skopeo: ``/etc/containers/certs.d/HOST:PORT/ca.crt``
- the system store: Debian's ``update-ca-certificates`` or Red Hat's ``update-ca-trust``
"""

from __future__ import annotations

import http.client
import pathlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass

from cryptography import x509

from dockyard.tls import certificates

CA_URL_PATH = "/_dockyard/ca.crt"
DOCKER_CERTS = pathlib.Path("/etc/docker/certs.d")
CONTAINERS_CERTS = pathlib.Path("/etc/containers/certs.d")
DEBIAN_ANCHORS = pathlib.Path("/usr/local/share/ca-certificates")
REDHAT_ANCHORS = pathlib.Path("/etc/pki/ca-trust/source/anchors")


class TrustError(Exception):
    pass


@dataclass(frozen=True)
class Target:
    client: str
    path: pathlib.Path
    refresh: tuple[str, ...] = ()
    """The command that makes the store take the change, if any."""


def targets(host_port: str, docker: bool, containers: bool, system: bool) -> list[Target]:
    chosen: list[Target] = []
    if docker:
        chosen.append(Target("docker", DOCKER_CERTS / host_port / "ca.crt"))
    if containers:
        chosen.append(Target("podman, buildah, skopeo", CONTAINERS_CERTS / host_port / "ca.crt"))
    if system:
        file_name = "dockyard-" + host_port.replace(":", "_").replace("[", "").replace("]", "") + ".crt"
        if shutil.which("update-ca-certificates") or DEBIAN_ANCHORS.parent.exists() and not REDHAT_ANCHORS.exists():
            chosen.append(Target("system store (Debian)", DEBIAN_ANCHORS / file_name, ("update-ca-certificates",)))
        else:
            chosen.append(Target("system store (Red Hat)", REDHAT_ANCHORS / file_name, ("update-ca-trust", "extract")))
    return chosen


def fetch_ca(host_port: str, timeout: float = 10) -> bytes:
    """The CA a registry publishes, fetched WITHOUT verification: check its fingerprint."""
    host, _, port = host_port.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection(host.strip("[]"), int(port), timeout=timeout, context=context)
    try:
        connection.request("GET", CA_URL_PATH)
        response = connection.getresponse()
        body = response.read(1 << 20)
    except (OSError, http.client.HTTPException) as error:
        raise TrustError(f"cannot fetch the CA from https://{host_port}{CA_URL_PATH}: {error}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise TrustError(f"https://{host_port}{CA_URL_PATH} answered {response.status}: is it a Dockyard serving TLS with its own CA?")
    return body


def parse_ca(pem: bytes, source: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise TrustError(f"{source} is not a PEM certificate") from None


def install(pem: bytes, chosen: list[Target]) -> None:
    for target in chosen:
        certificates.write_certificates(target.path, x509.load_pem_x509_certificate(pem))
        _refresh(target)


def remove(chosen: list[Target]) -> list[Target]:
    removed = []
    for target in chosen:
        if target.path.exists():
            target.path.unlink()
            removed.append(target)
            if target.path.parent.parent in (DOCKER_CERTS, CONTAINERS_CERTS):
                try:
                    target.path.parent.rmdir()
                except OSError:
                    pass  # the folder holds other files (client certificates): keep it
            _refresh(target)
    return removed


def _refresh(target: Target) -> None:
    if not target.refresh:
        return
    try:
        subprocess.run(target.refresh, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise TrustError(f"{' '.join(target.refresh)} failed: {error}") from None


