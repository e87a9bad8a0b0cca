"""``http.secret``: keys derived per purpose, one token key on every replica, and the start-up check."""

from __future__ import annotations

import pathlib

import pytest

from dockyard.auth.scopes import Scope
from dockyard.auth.tokens import InvalidToken, TokenIssuer, TokenVerifier
from dockyard.secrets import SecretError, check_shared_secret, derive_key, network_filesystem, token_signing_key

SECRET = "a-long-random-value-shared-by-replicas"


def test_keys_are_per_purpose_and_the_same_wherever_the_secret_is() -> None:
    assert derive_key(SECRET, "session-cookies") == derive_key(SECRET, "session-cookies")
    assert len(derive_key(SECRET, "session-cookies")) == 32
    assert derive_key(SECRET, "session-cookies") != derive_key(SECRET, "csrf")
    assert derive_key(SECRET, "session-cookies") != derive_key(SECRET + "x", "session-cookies")
    with pytest.raises(ValueError):
        derive_key("", "session-cookies")


def test_a_token_signed_on_one_replica_is_accepted_on_another() -> None:
    replica_a, replica_b = token_signing_key(SECRET), token_signing_key(SECRET)  # two processes, no shared file
    token, _, _ = TokenIssuer(replica_a, "dockyard", "dockyard").issue("alice", [Scope.parse("repository:team/app:pull")])
    grant = TokenVerifier([replica_b.public_key()], "dockyard", "dockyard").verify(token)
    assert grant.subject == "alice"
    other = token_signing_key("another-secret-of-another-registry")
    with pytest.raises(InvalidToken):
        TokenVerifier([other.public_key()], "dockyard", "dockyard").verify(token)


def test_a_missing_secret_is_refused_where_replicas_need_it() -> None:
    with pytest.raises(SecretError, match=r"http\.secret is not set, but the storage \(s3\).*token service.*1576"):
        check_shared_secret("", "s3", token_service=True)
    [warning] = check_shared_secret("", "nfs4 at /srv/registry", token_service=False)
    assert "nfs4 at /srv/registry" in warning and "REGISTRY_HTTP_SECRET" in warning
    assert check_shared_secret("", None, token_service=True) == []  # one machine: the key file is enough
    assert check_shared_secret(SECRET, "s3", token_service=True) == []
    [weak] = check_shared_secret("short", "s3", token_service=True)
    assert "shorter than 16" in weak


def test_network_filesystems_are_told_from_local_ones(tmp_path: pathlib.Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/export /srv/shared nfs4 rw 0 0\n"
        "tmpfs /srv/shared/cache tmpfs rw 0 0\n"
        "//nas/share /mnt/my\\040share cifs rw 0 0\n"
    )
    assert network_filesystem(pathlib.Path("/srv/shared/registry"), mounts) == "nfs4"
    assert network_filesystem(pathlib.Path("/srv/shared"), mounts) == "nfs4"
    assert network_filesystem(pathlib.Path("/srv/shared/cache/x"), mounts) is None  # the innermost mount wins
    assert network_filesystem(pathlib.Path("/srv/sharedother"), mounts) is None
    assert network_filesystem(pathlib.Path("/mnt/my share/registry"), mounts) == "cifs"
    assert network_filesystem(pathlib.Path("/srv"), tmp_path / "missing") is None
