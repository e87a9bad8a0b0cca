"""Bearer tokens: what the built-in issuer signs, what the verifier accepts, external issuers."""

from __future__ import annotations

import base64
import json
import pathlib
import re
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from dockyard.api.auth_setup import AuthSettings, AuthSetupError
from dockyard.auth import scopes
from dockyard.auth.htpasswd import read_entries, write_entries
from dockyard.auth.tokens import (
    ACCESS_TOKEN_SECONDS,
    LEEWAY_SECONDS,
    Grant,
    InvalidToken,
    TokenIssuer,
    TokenVerifier,
    key_id,
    load_or_create_signing_key,
)
from dockyard.tls import certificates
from dockyard.tls.certificates import CertificateAuthority, create_ca, generate_key
from tests.support.auth import USERS, basic, fast_hash, make_app, settings

ISSUER = "test-issuer"
SERVICE = "test-registry"
PULL_A = scopes.repository("a/app", "pull")
PUSH_A = scopes.repository("a/app", "pull", "push")


@pytest.fixture(scope="module")
def key() -> Any:
    return generate_key("ecdsa-p256")


@pytest.fixture
def issuer(key: Any) -> TokenIssuer:
    return TokenIssuer(key, ISSUER, SERVICE)


@pytest.fixture
def verifier(key: Any) -> TokenVerifier:
    return TokenVerifier([key.public_key()], ISSUER, SERVICE)


def sign(key: Any, claims: dict[str, Any], headers: dict[str, Any] | None = None, algorithm: str = "ES256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def claims(now: int | None = None, **changes: Any) -> dict[str, Any]:
    now = int(time.time()) if now is None else now
    base = {
        "iss": ISSUER, "sub": "bob", "aud": SERVICE, "exp": now + 300, "nbf": now - 1, "iat": now,
        "jti": uuid.uuid4().hex, "access": [PULL_A.claim()],
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def test_key_id_is_libtrust_shaped(key: Any) -> None:
    kid = key_id(key.public_key())
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", kid), kid
    assert kid == key_id(key.public_key())
    assert kid != key_id(generate_key("ecdsa-p256").public_key())


def test_issue_claims_and_header(issuer: TokenIssuer, key: Any) -> None:
    before = int(time.time())
    token, expires_in, issued_at = issuer.issue("bob", [PUSH_A, scopes.CATALOG])
    after = int(time.time())
    assert expires_in == ACCESS_TOKEN_SECONDS == 300
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": key_id(key.public_key())}
    body = jwt.decode(token, key.public_key(), algorithms=["ES256"], audience=SERVICE, issuer=ISSUER)
    assert set(body) == {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"}
    assert body["iss"] == ISSUER
    assert body["sub"] == "bob"
    assert body["aud"] == SERVICE
    assert before <= body["iat"] == issued_at <= after
    assert body["exp"] == body["iat"] + 300
    assert body["nbf"] == body["iat"] - 1
    assert re.fullmatch(r"[0-9a-f]{32}", body["jti"])
    assert body["access"] == [
        {"type": "repository", "name": "a/app", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    second, _, _ = issuer.issue("bob", [PUSH_A])
    assert jwt.decode(second, options={"verify_signature": False})["jti"] != body["jti"]


def test_verify_round_trip(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _, _ = issuer.issue("bob", [PUSH_A, scopes.CATALOG])
    grant = verifier.verify(token)
    assert grant.subject == "bob"
    assert grant.access == (PUSH_A, scopes.CATALOG)
    stamped, _, _ = issuer.issue("bob", [PULL_A], "stamp-of-bob")
    assert verifier.verify(stamped).credential == "stamp-of-bob"
    assert verifier.verify(token).credential is None
    anonymous, _, _ = issuer.issue("", [])
    assert verifier.verify(anonymous).subject == ""
    assert verifier.verify(anonymous).access == ()


def test_expiry_leeway(key: Any, verifier: TokenVerifier) -> None:
    assert LEEWAY_SECONDS == 60
    now = int(time.time())
    kid = {"kid": key_id(key.public_key())}
    # Expired 20 s ago: inside the 60 s leeway for clock skew.
    assert verifier.verify(sign(key, claims(now - 400, exp=now - 20), kid)).subject == "bob"
    # Expired 200 s ago: refused.
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(sign(key, claims(now - 500, exp=now - 200), kid))
    # Not valid until 20 s from now (the issuer's clock is ahead): accepted; 200 s: refused.
    assert verifier.verify(sign(key, claims(now, nbf=now + 20), kid)).subject == "bob"
    with pytest.raises(InvalidToken, match="not yet valid"):
        verifier.verify(sign(key, claims(now, nbf=now + 200), kid))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"aud": "another-registry"}, "(?i)audience"),
        ({"iss": "someone-else"}, "issuer"),
        ({"exp": None}, 'exp'),
        ({"aud": None}, "aud"),
        ({"iss": None}, "iss"),
    ],
)
def test_wrong_or_missing_claims_are_refused(key: Any, verifier: TokenVerifier, change: dict[str, Any], message: str) -> None:
    token = sign(key, claims(**change), {"kid": key_id(key.public_key())})
    with pytest.raises(InvalidToken, match=message):
        verifier.verify(token)


def test_wrong_key_is_refused(key: Any, verifier: TokenVerifier) -> None:
    other = generate_key("ecdsa-p256")
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(sign(other, claims(), {"kid": key_id(other.public_key())}))
    # Another key claiming our kid: the signature does not check out.
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        verifier.verify(sign(other, claims(), {"kid": key_id(key.public_key())}))
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(sign(key, claims()))  # no kid at all


def test_unsigned_and_hmac_tokens_are_refused(key: Any, verifier: TokenVerifier) -> None:
    kid = key_id(key.public_key())
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": kid})
    with pytest.raises(InvalidToken):
        verifier.verify(unsigned)
    # The public key's PEM used as an HMAC secret (the classic key-confusion forgery).
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(InvalidToken):
        verifier.verify((header + b"." + payload + b"." + signature).decode())
    for garbage in ["", "abc", "a.b.c", "x" * 5000]:
        with pytest.raises(InvalidToken):
            verifier.verify(garbage)


def test_malformed_access_entries_are_dropped(key: Any, verifier: TokenVerifier) -> None:
    access = [
        PULL_A.claim(),
        "repository:b/app:pull",
        {"type": "repository", "name": 5, "actions": ["pull"]},
        {"type": "repository", "name": "c/app", "actions": "pull"},
    ]
    grant = verifier.verify(sign(key, claims(access=access), {"kid": key_id(key.public_key())}))
    assert grant.access == (PULL_A,)


def test_refresh_tokens(issuer: TokenIssuer, verifier: TokenVerifier, key: Any) -> None:
    refresh = issuer.refresh_token("bob")
    body = jwt.decode(refresh, options={"verify_signature": False})
    assert body["aud"] == SERVICE + "#refresh"
    assert body["sub"] == "bob"
    assert body["exp"] - body["iat"] == 30 * 24 * 3600
    assert issuer.check_refresh_token(refresh) == Grant("bob", ())
    stamped = issuer.check_refresh_token(issuer.refresh_token("bob", "stamp-of-bob"))
    assert (stamped.subject, stamped.credential) == ("bob", "stamp-of-bob")
    # A refresh token is no access token, and an access token no refresh token.
    with pytest.raises(InvalidToken, match="(?i)audience"):
        verifier.verify(refresh)
    access, _, _ = issuer.issue("bob", [PULL_A])
    with pytest.raises(InvalidToken, match="(?i)audience"):
        issuer.check_refresh_token(access)
    # Another issuer's (same names, another key) refresh token is refused.
    other = TokenIssuer(generate_key("ecdsa-p256"), ISSUER, SERVICE)
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        issuer.check_refresh_token(other.refresh_token("bob"))
    now = int(time.time())
    expired = sign(key, {"iss": ISSUER, "sub": "bob", "aud": SERVICE + "#refresh", "exp": now - 200, "iat": now - 1000})
    with pytest.raises(InvalidToken, match="expired"):
        issuer.check_refresh_token(expired)


def test_signing_key_is_created_once(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "keys" / "token-signing.key"
    path.parent.mkdir()
    first = load_or_create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    second = load_or_create_signing_key(path)
    assert key_id(first.public_key()) == key_id(second.public_key())


# --- external issuers: registry:2's rootcertbundle, and JWKS ---------------------------------------


def test_rootcertbundle_with_kid(tmp_path: pathlib.Path) -> None:
    ca_key, other_key = generate_key("ecdsa-p256"), generate_key("rsa-2048")
    bundle = tmp_path / "bundle.pem"
    certificates.write_certificates(bundle, create_ca(other_key), create_ca(ca_key))
    verifier = TokenVerifier.from_files(ISSUER, SERVICE, bundle, None)
    token = sign(ca_key, claims(), {"kid": key_id(ca_key.public_key())})
    assert verifier.verify(token).access == (PULL_A,)
    rsa_token = sign(other_key, claims(), {"kid": key_id(other_key.public_key())}, algorithm="RS256")
    assert verifier.verify(rsa_token).subject == "bob"
    # An ES256 token naming the RSA certificate's key: refused, not a crash.
    with pytest.raises(InvalidToken):
        verifier.verify(sign(ca_key, claims(), {"kid": key_id(other_key.public_key())}))
    stranger = generate_key("ecdsa-p256")
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(sign(stranger, claims(), {"kid": key_id(stranger.public_key())}))


def test_rootcertbundle_with_x5c(tmp_path: pathlib.Path) -> None:
    root_key = generate_key("ecdsa-p256")
    authority = CertificateAuthority(create_ca(root_key), root_key)
    bundle = tmp_path / "bundle.pem"
    certificates.write_certificates(bundle, authority.certificate)
    verifier = TokenVerifier.from_files(ISSUER, SERVICE, bundle, None)

    leaf_key = generate_key("ecdsa-p256")
    leaf = authority.issue(leaf_key, ["token-signer"])
    chain = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()]
    assert verifier.verify(sign(leaf_key, claims(), {"x5c": chain})).subject == "bob"

    # A leaf from a CA that is not in the bundle, and a self-made one, are refused.
    rogue_key = generate_key("ecdsa-p256")
    rogue = CertificateAuthority(create_ca(rogue_key), rogue_key).issue(leaf_key, ["token-signer"])
    rogue_chain = [base64.b64encode(rogue.public_bytes(serialization.Encoding.DER)).decode()]
    with pytest.raises(InvalidToken, match="not signed by a trusted root"):
        verifier.verify(sign(leaf_key, claims(), {"x5c": rogue_chain}))
    # The right certificate, but the token signed by another key.
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        verifier.verify(sign(rogue_key, claims(), {"x5c": chain}))
    with pytest.raises(InvalidToken):
        verifier.verify(sign(leaf_key, claims(), {"x5c": ["bm90IGEgY2VydA=="]}))


def test_jwks(tmp_path: pathlib.Path) -> None:
    ec_key, rsa_key = generate_key("ecdsa-p256"), generate_key("rsa-2048")
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    ec_jwk.update(kid="ec-key-1", use="sig", alg="ES256")
    rsa_jwk.update(kid="rsa-key-1", use="sig", alg="RS256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [ec_jwk, rsa_jwk]}))
    verifier = TokenVerifier.from_files(ISSUER, SERVICE, None, jwks)
    # The kid of the JWKS entry, as an OIDC-style issuer sets it.
    assert verifier.verify(sign(ec_key, claims(), {"kid": "ec-key-1"})).subject == "bob"
    assert verifier.verify(sign(rsa_key, claims(), {"kid": "rsa-key-1"}, algorithm="RS256")).subject == "bob"
    # The libtrust-style kid of the same key, as registry:2's token servers set it.
    assert verifier.verify(sign(ec_key, claims(), {"kid": key_id(ec_key.public_key())})).subject == "bob"
    # One entry's kid with the other's key.
    with pytest.raises(InvalidToken):
        verifier.verify(sign(ec_key, claims(), {"kid": "rsa-key-1"}))
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(sign(ec_key, claims(), {"kid": "nope"}))


def test_external_issuer_settings(tmp_path: pathlib.Path) -> None:
    ca_key = generate_key("ecdsa-p256")
    bundle = tmp_path / "bundle.pem"
    certificates.write_certificates(bundle, create_ca(ca_key))
    with pytest.raises(AuthSetupError, match="needs --token-realm"):
        AuthSettings(token_rootcertbundle=bundle).build()
    access, service = AuthSettings(token_rootcertbundle=bundle, token_realm="https://auth.example/token", token_issuer=ISSUER, token_service=SERVICE).build()
    assert service is None
    assert access.mode == "token"
    assert access.verifier is not None
    assert access.verifier.verify(sign(ca_key, claims(), {"kid": key_id(ca_key.public_key())})).subject == "bob"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(AuthSetupError, match="cannot read the token issuer's keys"):
        AuthSettings(token_rootcertbundle=junk, token_realm="https://auth.example/token").build()
    bad_jwks = tmp_path / "bad.json"
    bad_jwks.write_text("{not json")
    with pytest.raises(AuthSetupError, match="cannot read the token issuer's keys"):
        AuthSettings(token_jwks=bad_jwks, token_realm="https://auth.example/token").build()


# --- tokens bound to the htpasswd entry they were issued against -----------------------------------

SCOPE = "repository:a/app:pull,push"


def change_user(path: pathlib.Path, user: str, password: str | None) -> None:
    """``user`` removed (``None``) or given ``password``; the file replaced, as ``dockyard user`` does."""
    entries = read_entries(path)
    if password is None:
        del entries[user]
    else:
        entries[user] = fast_hash(password)
    write_entries(path, entries)


async def sign_in(client, user: str, password: str) -> dict[str, Any]:
    response = await client.get("/auth/token", params={"scope": SCOPE, "offline_token": "true"}, headers={"Authorization": basic(user, password)})
    assert response.status == 200, await response.text()
    return await response.json()


async def refresh(client, refresh_token: str):
    return await client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": SCOPE})


async def registry_answer(client, token: str) -> tuple[int, str | None]:
    """a/app's tags with ``token``: (404 NAME_UNKNOWN, None) when let in, a/app being empty."""
    response = await client.get("/v2/a/app/tags/list", headers={"Authorization": f"Bearer {token}"})
    document = await response.json()
    return response.status, document["errors"][0]["code"] if response.status == 404 else response.headers.get("WWW-Authenticate")


LET_IN = (404, "NAME_UNKNOWN")


def refused(answer: tuple[int, str | None]) -> bool:
    return answer[0] == 401 and 'error="invalid_token"' in str(answer[1])


@pytest.mark.parametrize("new_password", [None, "new-write-pw", USERS["writer"]], ids=["removed", "new-password", "same-password-rehashed"])
async def test_tokens_die_with_the_htpasswd_entry(aiohttp_client, tmp_path: pathlib.Path, new_password: str | None) -> None:
    auth = settings(tmp_path, "token")
    assert auth.htpasswd is not None
    client = await aiohttp_client(make_app(tmp_path / "root", auth))
    writer, reader = await sign_in(client, "writer", USERS["writer"]), await sign_in(client, "reader", USERS["reader"])
    refreshed = await refresh(client, writer["refresh_token"])
    assert refreshed.status == 200
    writer_tokens = [writer["token"], (await refreshed.json())["token"]]
    assert [await registry_answer(client, token) for token in writer_tokens] == [LET_IN, LET_IN]

    change_user(auth.htpasswd, "writer", new_password)
    response = await refresh(client, writer["refresh_token"])
    assert response.status == 401
    assert (await response.json())["errors"][0]["code"] == "UNAUTHORIZED"
    for token in writer_tokens:  # the short-lived access tokens too, at once
        assert refused(await registry_answer(client, token))
    # Another user's tokens are untouched.
    assert (await refresh(client, reader["refresh_token"])).status == 200
    assert await registry_answer(client, reader["token"]) == LET_IN
    if new_password is not None:  # signing in again gives tokens that work
        again = await sign_in(client, "writer", new_password)
        assert (await refresh(client, again["refresh_token"])).status == 200
        assert await registry_answer(client, again["token"]) == LET_IN


async def test_a_removed_user_is_refused_by_every_replica(aiohttp_client, tmp_path: pathlib.Path) -> None:
    # Two replicas: the same htpasswd file and http.secret, nothing else shared.
    auth = settings(tmp_path, "token", http_secret="a-long-random-value-shared-by-replicas")
    assert auth.htpasswd is not None
    one, two = [await aiohttp_client(make_app(tmp_path / "root", auth)) for _ in range(2)]
    writer = await sign_in(one, "writer", USERS["writer"])
    assert (await refresh(two, writer["refresh_token"])).status == 200
    assert await registry_answer(two, writer["token"]) == LET_IN

    change_user(auth.htpasswd, "writer", None)
    for replica in (one, two):
        assert (await refresh(replica, writer["refresh_token"])).status == 401
        assert refused(await registry_answer(replica, writer["token"]))


async def test_a_user_token_without_a_stamp_is_refused(aiohttp_client, tmp_path: pathlib.Path) -> None:
    """As issued before tokens were bound: signed with the right key, but nothing ties them to the user's entry."""
    client = await aiohttp_client(make_app(tmp_path / "root", settings(tmp_path, "token")))
    issuer = TokenIssuer(certificates.load_key(tmp_path / "token-signing.key"), "dockyard", "dockyard")
    access, _, _ = issuer.issue("writer", [PUSH_A])
    assert refused(await registry_answer(client, access))
    assert (await refresh(client, issuer.refresh_token("writer"))).status == 401
    anonymous, _, _ = issuer.issue("", [scopes.repository("public/app", "pull")])
    response = await client.get("/v2/public/app/tags/list", headers={"Authorization": f"Bearer {anonymous}"})
    assert response.status == 404  # let in: anonymous tokens name no user to bind to
