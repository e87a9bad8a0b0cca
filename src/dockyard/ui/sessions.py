"""The web page's session cookie and CSRF tokens: signed with one key every worker and replica shares.

The cookie holds who signed in (or nobody), the stamp of their account (see
:mod:`dockyard.auth.binding`: a new password or a removed user ends the session), a
random nonce and an expiry, with an HMAC-SHA256 over them: nothing is kept on the server, so any worker or replica with
the same key accepts it. The CSRF token of a session is an HMAC of its nonce, sent in
every form and checked on every POST; a new nonce at login and logout retires the old
session's tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from dockyard.secrets import derive_key

COOKIE_NAME = "dockyard_session"
LIFETIME_SECONDS = 12 * 3600
KEY_PURPOSE = "web-session-cookies"
_BINDING_PURPOSE = b"web-session credential binding"


def session_key(http_secret: str) -> bytes:
    """With ``http.secret``: the same key on every replica. Without: a random key, made once
    in the parent process (so every forked worker has it) and new at each start."""
    return derive_key(http_secret, KEY_PURPOSE) if http_secret else secrets.token_bytes(32)


@dataclass(frozen=True)
class Session:
    user: str | None
    nonce: str
    expires: int
    credential: str | None = None  # the stamp of the user's account at sign-in


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    def __init__(self, key: bytes, lifetime: int = LIFETIME_SECONDS) -> None:
        self._key = key
        self.lifetime = lifetime
        self.binding_key = hmac.new(key, _BINDING_PURPOSE, hashlib.sha256).digest()
        """The key of the sessions' :class:`~dockyard.auth.binding.CredentialBinding`."""

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"\0" + data, hashlib.sha256).digest()

    def new(self, user: str | None, credential: str | None = None) -> Session:
        return Session(user, secrets.token_urlsafe(18), int(time.time()) + self.lifetime, credential)

    def encode(self, session: Session) -> str:
        payload = json.dumps({"u": session.user, "n": session.nonce, "e": session.expires, "c": session.credential}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(b'session', payload))}"

    def decode(self, text: str | None) -> Session | None:
        """The session a cookie holds, or ``None`` if it is missing, forged or expired."""
        if not text or "." not in text:
            return None
        body, _, mac = text.partition(".")
        try:
            payload, signature = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(signature, self._mac(b"session", payload)):
            return None
        try:
            fields = json.loads(payload)
            session = Session(fields["u"], fields["n"], int(fields["e"]), fields.get("c"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if not isinstance(session.nonce, str) or not all(value is None or isinstance(value, str) for value in (session.user, session.credential)):
            return None
        return session if session.expires > time.time() else None

    def csrf_token(self, session: Session) -> str:
        return _b64(self._mac(b"csrf", session.nonce.encode()))

    def check_csrf(self, session: Session, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())
