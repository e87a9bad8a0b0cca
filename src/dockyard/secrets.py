"""``http.secret``: the one secret every replica of a registry shares, and the keys made from it.

registry:2 signs upload state with ``http.secret``; Dockyard keeps upload state in
storage, so it uses the secret for keys that must be the same on every replica
behind a load balancer instead:

- the built-in token service's signing key (a token issued by one replica is
  accepted by every other), see :func:`token_signing_key`;
- any other per-purpose key (the web page's session cookies), see :func:`derive_key`.

Each purpose gets its own key through HKDF-SHA256, so no key leaks another, and the
secret itself is never used as a key. With no secret configured a registry that may
run as several replicas (storage another machine can reach: S3, a network
filesystem) either refuses to start or says loudly what will break (distribution#1576,
registry:2's most common cluster failure: each replica invents its own secret).
"""

from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a server without TLS, token auth or http.secret never loads cryptography
    from cryptography.hazmat.primitives.asymmetric import ec

MIN_SECRET_LENGTH = 16
_SALT = b"dockyard http.secret v1"
# Filesystems another machine can write too: a root on one of them may be shared by replicas.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "fuse.sshfs",
    "fuse.s3fs", "fuse.juicefs", "fuse.cephfs", "9p", "lustre", "gpfs", "ocfs2", "gfs2", "beegfs",
})
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


class SecretError(Exception):
    """The secret is missing where replicas need it (a one-line message)."""


def derive_key(secret: str, purpose: str, length: int = 32) -> bytes:
    """A key for one ``purpose`` (``"session-cookies"``...), the same wherever ``secret`` is."""
    if not secret:
        raise ValueError("no http.secret to derive a key from")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=purpose.encode())
    return hkdf.derive(secret.encode())


def token_signing_key(secret: str) -> ec.EllipticCurvePrivateKey:
    """The built-in token service's ES256 key, derived from ``secret``: one key on every replica."""
    # 48 bytes reduced modulo the group order: a scalar with negligible bias (FIPS 186-5 A.2.1).
    from cryptography.hazmat.primitives.asymmetric import ec

    scalar = int.from_bytes(derive_key(secret, "token-signing-key", 48), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def network_filesystem(path: pathlib.Path, mounts: pathlib.Path = pathlib.Path("/proc/self/mounts")) -> str | None:
    """The type of the network filesystem ``path`` lives on, or ``None`` (local, or unknown)."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fields[2]
    return kind if kind in NETWORK_FILESYSTEMS else None


def check_shared_secret(secret: str, shared_storage: str | None, token_service: bool) -> list[str]:
    """Refuse (:class:`SecretError`) or warn about a missing or weak ``http.secret``.

    ``shared_storage`` says why other replicas may use the same storage (``"s3"``,
    ``"nfs4 at /srv"``) or is ``None``; ``token_service``: the built-in one is on.
    Returns warnings to log.
    """
    if secret:
        if len(secret) < MIN_SECRET_LENGTH:
            return [f"http.secret is shorter than {MIN_SECRET_LENGTH} characters: use a long random value (openssl rand -hex 32)"]
        return []
    if shared_storage is None:
        return []
    if token_service:
        raise SecretError(
            f"http.secret is not set, but the storage ({shared_storage}) can be shared by several replicas and the built-in "
            "token service is on: each replica would sign tokens with its own key and refuse the others' "
            "(distribution#1576); set the same http.secret (or REGISTRY_HTTP_SECRET) on every replica"
        )
    return [
        f"http.secret is not set, but the storage ({shared_storage}) can be shared by several replicas: set the same "
        "http.secret (or REGISTRY_HTTP_SECRET) on every replica, or tokens and web sessions made by one replica "
        "will not be accepted by another (distribution#1576)"
    ]
