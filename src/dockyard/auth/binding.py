"""Tokens tied to the htpasswd entry of the user they were issued to.

Every token the built-in service issues to a signed-in user (access and refresh tokens)
carries a stamp: an HMAC of the user's name and stored hash. Whoever checks a token
recomputes the stamp from the htpasswd file as it is now, so removing a user, or changing
their password (a new hash), voids every token issued before, on every replica at once:
replicas share the htpasswd file and the signing key the HMAC key comes from, and need
no list of revoked tokens.

A robot's tokens are bound the same way to its record in storage (see
:mod:`dockyard.auth.robots`): removing it, or its expiry, voids them.

An HMAC rather than a plain hash: whoever holds a token can read it, and a plain hash of
an unsalted entry (``{SHA}``) would let them test password guesses offline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from cryptography.hazmat.primitives import serialization

from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.robots import RobotAccounts, is_robot_user

_PURPOSE = b"dockyard token credential binding"


class CredentialBinding:
    def __init__(self, htpasswd: Htpasswd, key: bytes, robots: RobotAccounts | None = None) -> None:
        self.htpasswd = htpasswd
        self.key = key
        self.robots = robots

    @classmethod
    def for_signing_key(cls, htpasswd: Htpasswd, signing_key: Any, robots: RobotAccounts | None = None) -> CredentialBinding:
        """With a key of its own derived from the token signing key (the same on every replica)."""
        private = signing_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(htpasswd, hmac.new(private, _PURPOSE, hashlib.sha256).digest(), robots)

    def _stamp_of(self, user: str, hashed: str | None) -> str | None:
        if hashed is None:
            return None
        digest = hmac.new(self.key, f"{user}\0{hashed}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def stamp(self, user: str) -> str | None:
        """The stamp for ``user``'s tokens now; ``None`` if there is no such user."""
        return self._stamp_of(user, self.htpasswd.entry(user))

    def holds(self, user: str, stamp: str | None) -> bool:
        """Whether a token of ``user`` carrying ``stamp`` still matches the htpasswd file."""
        return _same(self.stamp(user), stamp)

    async def current_stamp(self, user: str) -> str | None:
        """:meth:`stamp`, robots included (their record as storage says, within its cache time)."""
        if self.robots is not None and is_robot_user(user):
            robot = await self.robots.find(user)
            return self._stamp_of(user, robot.secret_sha256 if robot else None)
        return self.stamp(user)

    async def still_holds(self, user: str, stamp: str | None) -> bool:
        """:meth:`holds`, robots included: a robot removed or expired holds no token."""
        return _same(await self.current_stamp(user), stamp)


def _same(current: str | None, stamp: str | None) -> bool:
    return current is not None and stamp is not None and hmac.compare_digest(current, stamp)
