"""Bearer tokens of the Docker token specification: issuing them (the built-in token
service) and verifying them (ours, or an external issuer's configured the registry:2 way).
"""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.auth.scopes import Scope
from dockyard.tls import certificates

ACCESS_TOKEN_SECONDS = 300
REFRESH_TOKEN_SECONDS = 30 * 24 * 3600
LEEWAY_SECONDS = 60
REFRESH_AUDIENCE_SUFFIX = "#refresh"
# The stamp binding a user's token to their htpasswd entry (see dockyard.auth.binding).
CREDENTIAL_CLAIM = "cred"


class InvalidToken(Exception):
    pass


def key_id(public_key: Any) -> str:
    """libtrust's key ID (what registry:2 matches a token's ``kid`` against)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, 48, 4))


def _algorithm(key: Any) -> str:
    return "ES256" if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) else "RS256"


def load_or_create_signing_key(path: pathlib.Path) -> Any:
    if not path.exists():
        certificates.write_key(path, certificates.generate_key("ecdsa-p256"))
    return certificates.load_key(path)


@dataclass(frozen=True)
class Grant:
    subject: str
    access: tuple[Scope, ...]
    credential: str | None = None
    """The token's credential stamp, if it has one."""


class TokenIssuer:
    def __init__(self, key: Any, issuer: str, service: str) -> None:
        self.key = key
        self.issuer = issuer
        self.service = service
        self.kid = key_id(key.public_key())

    def _sign(self, claims: dict[str, Any], credential: str | None) -> str:
        if credential is not None:
            claims[CREDENTIAL_CLAIM] = credential
        return jwt.encode(claims, self.key, algorithm=_algorithm(self.key), headers={"kid": self.kid, "typ": "JWT"})

    def issue(self, subject: str, access: list[Scope], credential: str | None = None) -> tuple[str, int, int]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": subject, "aud": self.service,
            "exp": now + ACCESS_TOKEN_SECONDS, "nbf": now - 1, "iat": now, "jti": uuid.uuid4().hex,
            "access": [scope.claim() for scope in access],
        }
        return self._sign(claims, credential), ACCESS_TOKEN_SECONDS, now

    def refresh_token(self, subject: str, credential: str | None = None) -> str:
        now = int(time.time())
        return self._sign({
            "iss": self.issuer, "sub": subject, "aud": self.service + REFRESH_AUDIENCE_SUFFIX,
            "exp": now + REFRESH_TOKEN_SECONDS, "iat": now, "jti": uuid.uuid4().hex,
        }, credential)

    def check_refresh_token(self, token: str) -> Grant:
        """The refresh token's subject and credential stamp (it grants no access itself)."""
        try:
            claims = jwt.decode(
                token, self.key.public_key(), algorithms=[_algorithm(self.key)],
                audience=self.service + REFRESH_AUDIENCE_SUFFIX, issuer=self.issuer, leeway=LEEWAY_SECONDS,
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
        return Grant(str(claims["sub"]), (), _credential(claims))


class TokenVerifier:
    """Accepts tokens signed by one of the given keys, for this service and issuer."""

    def __init__(
        self, keys: list[Any], issuer: str, service: str, roots: list[x509.Certificate] | None = None,
        named_keys: dict[str, Any] | None = None,
    ) -> None:
        """``named_keys``: keys by the ``kid`` their JWKS entry gives (each key is also known by its libtrust ID)."""
        self.keys = {key_id(key): key for key in keys}
        self.keys.update(named_keys or {})
        self.roots = roots or []
        self.issuer = issuer
        self.service = service

    @classmethod
    def from_files(cls, issuer: str, service: str, rootcertbundle: pathlib.Path | None, jwks: pathlib.Path | None) -> TokenVerifier:
        roots = certificates.load_certificates(rootcertbundle) if rootcertbundle else []
        keys = [root.public_key() for root in roots]
        named: dict[str, Any] = {}
        if jwks is not None:
            document = json.loads(jwks.read_text())
            for entry in document.get("keys", []):
                try:
                    jwk = jwt.PyJWK(entry)
                except jwt.PyJWTError as error:
                    raise ValueError(f"{jwks}: {error}") from None
                keys.append(jwk.key)
                if jwk.key_id:
                    named[jwk.key_id] = jwk.key
        return cls(keys, issuer, service, roots, named)

    def _key_for(self, header: dict[str, Any]) -> Any:
        chain = header.get("x5c")
        if chain:
            leaf = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
            for root in self.roots:
                try:
                    leaf.verify_directly_issued_by(root)
                except (ValueError, TypeError, InvalidSignature):
                    continue
                return leaf.public_key()
            raise InvalidToken("the token's certificate chain is not signed by a trusted root")
        key = self.keys.get(header.get("kid", ""))
        if key is None:
            raise InvalidToken("the token is signed by an unknown key")
        return key

    def verify(self, token: str) -> Grant:
        try:
            header = jwt.get_unverified_header(token)
            key = self._key_for(header)
            claims = jwt.decode(
                token, key, algorithms=["ES256", "ES384", "RS256", "RS384", "RS512", "PS256"],
                audience=self.service, issuer=self.issuer, leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as error:  # TypeError: an ES256 header on an RSA key
            raise InvalidToken(str(error)) from None
        access = []
        for entry in claims.get("access") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("actions"), list):
                access.append(Scope(str(entry.get("type", "")), entry["name"], frozenset(map(str, entry["actions"]))))
        return Grant(str(claims.get("sub", "")), tuple(access), _credential(claims))


def _credential(claims: dict[str, Any]) -> str | None:
    value = claims.get(CREDENTIAL_CLAIM)
    return value if isinstance(value, str) else None


