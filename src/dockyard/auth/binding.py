"""Tokens tied to the account of the user they were issued to.

Every token the built-in service issues to a signed-in user (access and refresh tokens),
and every web session, carries a stamp: an HMAC of the user's name and of what their
credential source says of them (:attr:`~dockyard.auth.sources.Account.stamp_material`),
prefixed with the source's name (``ldap.``, ``robot.``; an htpasswd stamp has no prefix,
as stamps had before there were other sources). Whoever checks a token asks that source for the
user as they are now and recomputes the stamp, so a token ends when the source stops
vouching for its user, on every replica at once: replicas share the sources and the
signing key the HMAC key comes from, and need no list of revoked tokens.

- htpasswd: the material is the user's stored hash. Removing a user, or a new password,
  ends their tokens at the next request (one ``stat`` of the file).
- LDAP: the material is the DN of the user's entry (the directory does not show the
  service account a password hash). The entry gone, renamed, or no longer found by
  ``user_filter`` (which can leave locked accounts out) ends their tokens. Access
  tokens (five minutes) and sessions are checked against a lookup cached for
  ``cache_ttl``; a refresh token (it lives for weeks) asks the directory itself, and is
  refused when the directory says no. The groups the lookup finds are the ones a request
  is judged with. A password changed in the directory does not end tokens issued before.
- robots: the material is the hash of the robot's secret, from its record in storage (see
  :mod:`dockyard.auth.robots`, read at most ``CACHE_SECONDS`` before). Removing a robot,
  or its expiry, ends its tokens.

An HMAC rather than a plain hash: whoever holds a token can read it, and a plain hash of
an unsalted entry (``{SHA}``) would let them test password guesses offline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from dockyard.auth.sources import HTPASSWD, Account, CredentialSource

_PURPOSE = b"dockyard token credential binding"


class CredentialBinding:
    def __init__(self, sources: Sequence[CredentialSource], key: bytes) -> None:
        self.sources = {source.name: source for source in sources}
        self.key = key

    @classmethod
    def for_signing_key(cls, sources: Sequence[CredentialSource], signing_key: Any) -> CredentialBinding:
        """With a key of its own derived from the token signing key (the same on every replica)."""
        from cryptography.hazmat.primitives import serialization  # only token auth needs it

        private = signing_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(sources, hmac.new(private, _PURPOSE, hashlib.sha256).digest())

    def stamp(self, account: Account) -> str:
        """The stamp for ``account``'s tokens."""
        digest = hmac.new(self.key, f"{account.name}\0{account.stamp_material}".encode(), hashlib.sha256).digest()
        mac = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()  # no "." in this alphabet
        return mac if account.source == HTPASSWD else f"{account.source}.{mac}"

    async def current(self, user: str, stamp: str | None, *, fresh: bool = False) -> Account | None:
        """``user``'s account now, if a token of theirs carrying ``stamp`` still holds (else ``None``).

        Raises :class:`~dockyard.errors.DirectoryUnavailable` when the source cannot say.
        """
        if stamp is None:
            return None
        name, dot, _ = stamp.rpartition(".")
        source = self.sources.get(name if dot else HTPASSWD)
        account = await source.lookup(user, fresh=fresh) if source is not None else None
        if account is None or not hmac.compare_digest(self.stamp(account), stamp):
            return None
        return account
