"""Installing a registry's CA where clients look for it (``dockyard trust``).

- docker: ``/etc/docker/certs.d/HOST:PORT/ca.crt``
- podman, buildah, skopeo: ``/etc/containers/certs.d/HOST:PORT/ca.crt``
- the system store: Debian's ``update-ca-certificates`` or Red Hat's ``update-ca-trust`` (curl, git,
  Python and most tools read it; Firefox and Chromium keep their own stores on Linux)

Each path lies under a root, ``/`` unless another (a chroot, an image being built, a test's folder) is given.
"""

from __future__ import annotations

import http.client
import pathlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the app imports CA_URL_PATH, and a server without TLS never loads cryptography
    from cryptography import x509

CA_URL_PATH = "/_dockyard/ca.crt"
ROOT = pathlib.Path("/")
DOCKER_CERTS = pathlib.Path("/etc/docker/certs.d")
CONTAINERS_CERTS = pathlib.Path("/etc/containers/certs.d")
DEBIAN_ANCHORS = pathlib.Path("/usr/local/share/ca-certificates")
REDHAT_ANCHORS = pathlib.Path("/etc/pki/ca-trust/source/anchors")
# update-ca-certificates' folders, named on its command line under a root other than /
DEBIAN_STORE = {
    "--certsconf": pathlib.Path("/etc/ca-certificates.conf"),
    "--certsdir": pathlib.Path("/usr/share/ca-certificates"),
    "--localcertsdir": DEBIAN_ANCHORS,
    "--etccertsdir": pathlib.Path("/etc/ssl/certs"),
    "--hooksdir": pathlib.Path("/etc/ca-certificates/update.d"),
}


class TrustError(Exception):
    pass


@dataclass(frozen=True)
class Target:
    client: str
    path: pathlib.Path
    refresh: tuple[str, ...] = ()
    """The command that makes the store take the change, if any."""
    after_removal: tuple[str, ...] = ()
    """What the command also needs after a removal."""
    host_folder: bool = False
    """The file's folder is the registry's own (``certs.d/HOST:PORT``): removed with it when left empty."""

    @property
    def removal_refresh(self) -> tuple[str, ...]:
        return (*self.refresh, *self.after_removal) if self.refresh else ()


def _under(root: pathlib.Path, path: pathlib.Path) -> pathlib.Path:
    return root / path.relative_to(ROOT)


def targets(host_port: str, docker: bool, containers: bool, system: bool, root: pathlib.Path = ROOT) -> list[Target]:
    chosen: list[Target] = []
    if docker:
        chosen.append(Target("docker", _under(root, DOCKER_CERTS) / host_port / "ca.crt", host_folder=True))
    if containers:
        chosen.append(Target("podman, buildah, skopeo", _under(root, CONTAINERS_CERTS) / host_port / "ca.crt", host_folder=True))
    if system:
        file_name = "dockyard-" + host_port.replace(":", "_").replace("[", "").replace("]", "") + ".crt"
        if shutil.which("update-ca-certificates") or _under(root, DEBIAN_ANCHORS.parent).exists() and not _under(root, REDHAT_ANCHORS).exists():
            folders = [] if root == ROOT else [part for option, path in DEBIAN_STORE.items() for part in (option, str(_under(root, path)))]
            # Without --fresh it keeps the links it made to a removed file, dangling in /etc/ssl/certs
            # (it removes only those of ca-certificates.conf's entries); --fresh rebuilds them all.
            chosen.append(Target("system store (Debian)", _under(root, DEBIAN_ANCHORS) / file_name, ("update-ca-certificates", *folders), ("--fresh",)))
        elif root == ROOT:
            chosen.append(Target("system store (Red Hat)", REDHAT_ANCHORS / file_name, ("update-ca-trust", "extract")))
        else:
            raise TrustError(f"{root}: update-ca-trust updates only /, so Red Hat's store cannot be installed under another root")
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
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise TrustError(f"{source} is not a PEM certificate") from None


def install(pem: bytes, chosen: list[Target]) -> None:
    from cryptography import x509

    from dockyard.tls import certificates

    for target in chosen:
        certificates.write_certificates(target.path, x509.load_pem_x509_certificate(pem))
        _run(target.refresh)


def remove(chosen: list[Target]) -> list[Target]:
    removed = []
    for target in chosen:
        if target.path.exists():
            target.path.unlink()
            removed.append(target)
            if target.host_folder:
                try:
                    target.path.parent.rmdir()
                except OSError:
                    pass  # the folder holds other files (client certificates): keep it
            _run(target.removal_refresh)
    return removed


def _run(command: tuple[str, ...]) -> None:
    """Make a store take a change (nothing for a store read as it is)."""
    if not command:
        return
    try:
        subprocess.run(command, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise TrustError(f"{' '.join(command)} failed: {error}") from None


