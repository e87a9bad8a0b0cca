"""LDAP users against a real OpenLDAP (``slapd``, one for the module): sign-in in Basic and
token mode and on the web page, their directory groups in the access policy, wrong
passwords and filter injection, TLS with a CA, and the directory going away."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from aiohttp import encode_basic_auth

from dockyard.api.app import create_app
from dockyard.api.auth_setup import AuthSettings, AuthSetupError
from dockyard.auth import htpasswd as htpasswd_module
from dockyard.auth import policy as policies
from dockyard.config import MASK, ConfigError, load, to_yaml
from dockyard.config.schema import Ldap
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.registry import Registry
from dockyard.ui import session_key
from tests.support.auth import USERS, make_app, robots_of, settings, write_policy
from tests.support.ldap import PEOPLE_PASSWORDS, POLICY, Slapd, ldap_settings, start_slapd


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()


def auth_settings(tmp_path: pathlib.Path, slapd: Slapd, mode: str = "basic", **ldap: Any) -> AuthSettings:
    """The matrix htpasswd users, :data:`POLICY`, and ``slapd``'s people."""
    return settings(tmp_path, mode, policy_file=write_policy(tmp_path / "ldap-policy.yaml", POLICY), ldap=Ldap(**ldap_settings(slapd, **ldap)))


def app(tmp_path: pathlib.Path, auth: AuthSettings) -> Any:
    access, token_service = auth.build()
    return create_app(Registry(InMemoryDriver()), access=access, token_service=token_service, ui_session_key=session_key(""))


async def answer(client: Any, method: str, path: str, user: str, password: str) -> tuple[int, str]:
    """The status and the first error code (``""`` for none) of a Basic request."""
    response = await client.request(method, path, headers={"Authorization": encode_basic_auth(user, password)})
    body = await response.json() if response.content_type == "application/json" else {}
    return response.status, (body.get("errors") or [{}])[0].get("code", "")


PULLED = (404, "NAME_UNKNOWN")  # let in to pull from an empty repository
DENIED = (403, "DENIED")
UNAUTHORIZED = (401, "UNAUTHORIZED")
UNAVAILABLE = (503, "UNAVAILABLE")


async def test_directory_users_and_their_groups_in_the_policy(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd) -> None:
    client = await aiohttp_client(app(tmp_path, auth_settings(tmp_path, slapd)))
    tags, uploads = "/v2/dev/app/tags/list", "/v2/dev/pushed/blobs/uploads/"  # pushes elsewhere: dev/app stays empty
    # alice is in developers, bob in readers, carol in operators (named by no rule).
    assert await answer(client, "GET", tags, "alice", PEOPLE_PASSWORDS["alice"]) == PULLED
    assert (await answer(client, "POST", uploads, "alice", PEOPLE_PASSWORDS["alice"]))[0] == 202
    assert await answer(client, "GET", tags, "bob", PEOPLE_PASSWORDS["bob"]) == PULLED
    assert await answer(client, "POST", uploads, "bob", PEOPLE_PASSWORDS["bob"]) == DENIED
    assert await answer(client, "GET", tags, "carol", PEOPLE_PASSWORDS["carol"]) == DENIED
    # htpasswd users beside them, with the file's groups.
    assert (await answer(client, "POST", uploads, "writer", USERS["writer"]))[0] == 202
    assert await answer(client, "GET", tags, "reader", USERS["reader"]) == DENIED


async def test_directory_users_pay_no_bcrypt_of_the_htpasswd_file(
    aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The file is asked first: a name it lacks must not cost each request a bcrypt before the directory's cached answer."""
    client = await aiohttp_client(app(tmp_path, auth_settings(tmp_path, slapd)))
    checked: list[str] = []
    real = htpasswd_module._check_bcrypt
    monkeypatch.setattr(htpasswd_module, "_check_bcrypt", lambda password, hashed: checked.append(hashed) or real(password, hashed))
    for _ in range(3):
        assert await answer(client, "GET", "/v2/dev/app/tags/list", "alice", PEOPLE_PASSWORDS["alice"]) == PULLED
    assert checked == []
    assert await answer(client, "GET", "/v2/dev/app/tags/list", "writer", "wrong-pw") == UNAUTHORIZED
    assert len(checked) == 1  # the file's own users: checked as before


@pytest.mark.parametrize(("user", "password"), [
    ("alice", "wrong-pw"),
    ("alice", ""),  # an empty password is an anonymous bind to LDAP, which succeeds: refused before
    ("nobody", "alice-pw"),
    ("ali*", PEOPLE_PASSWORDS["alice"]),  # unescaped, (uid=ali*) would find alice
    ("*)(uid=*", PEOPLE_PASSWORDS["alice"]),
    ("*", PEOPLE_PASSWORDS["alice"]),
    ("alice)(|(uid=*", PEOPLE_PASSWORDS["alice"]),
    ("uid=alice,ou=people,dc=example,dc=org", PEOPLE_PASSWORDS["alice"]),  # a DN is no user name
], ids=["wrong-password", "empty-password", "unknown-user", "wildcard", "filter-injection", "star", "or-injection", "dn"])
async def test_wrong_credentials_and_injections_find_nobody(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd, user: str, password: str) -> None:
    client = await aiohttp_client(app(tmp_path, auth_settings(tmp_path, slapd)))
    assert await answer(client, "GET", "/v2/dev/app/tags/list", user, password) == UNAUTHORIZED
    assert await answer(client, "GET", "/v2/dev/app/tags/list", "alice", PEOPLE_PASSWORDS["alice"]) == PULLED


@pytest.mark.parametrize("transport", ["ldaps", "start_tls"])
async def test_tls_to_the_directory_is_verified_against_the_ca(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd, transport: str) -> None:
    tls = {"url": slapd.tls_url} if transport == "ldaps" else {"url": slapd.url, "start_tls": True}
    trusted = await aiohttp_client(app(tmp_path / "trusted", auth_settings(tmp_path, slapd, ca_file=str(slapd.ca_file), **tls)))
    assert await answer(trusted, "GET", "/v2/dev/app/tags/list", "alice", PEOPLE_PASSWORDS["alice"]) == PULLED
    # Without the CA (the system's CAs do not know it): the directory is not trusted, so nobody gets in.
    untrusted = await aiohttp_client(app(tmp_path / "untrusted", auth_settings(tmp_path, slapd, **tls)))
    assert await answer(untrusted, "GET", "/v2/dev/app/tags/list", "alice", PEOPLE_PASSWORDS["alice"]) == UNAVAILABLE


async def test_the_directory_stopped_refuses_new_sign_ins_with_503(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd) -> None:
    basic = await aiohttp_client(app(tmp_path / "basic", auth_settings(tmp_path, slapd)))
    token = await aiohttp_client(app(tmp_path / "token", auth_settings(tmp_path, slapd, "token")))
    tags = "/v2/dev/app/tags/list"
    assert await answer(basic, "GET", tags, "alice", PEOPLE_PASSWORDS["alice"]) == PULLED  # now in the cache
    slapd.stop()
    try:
        assert await answer(basic, "GET", tags, "alice", PEOPLE_PASSWORDS["alice"]) == PULLED  # the cached sign-in
        # Not in the cache: no answer from the directory, so nobody is let in, and the client is told why.
        response = await basic.get(tags, headers={"Authorization": encode_basic_auth("alice", "wrong-pw")})
        assert response.status == 503
        error = (await response.json())["errors"][0]
        assert error["code"] == "UNAVAILABLE" and "directory" in error["message"]
        assert await answer(basic, "GET", tags, "bob", PEOPLE_PASSWORDS["bob"]) == UNAVAILABLE
        assert await answer(token, "GET", "/auth/token?scope=repository:dev/app:pull", "bob", PEOPLE_PASSWORDS["bob"]) == UNAVAILABLE
        assert (await answer(basic, "POST", "/v2/dev/pushed/blobs/uploads/", "writer", USERS["writer"]))[0] == 202  # htpasswd users go on
    finally:
        slapd.start()
    # Back: the pool's broken connections are replaced.
    assert await answer(basic, "GET", tags, "bob", PEOPLE_PASSWORDS["bob"]) == PULLED
    assert await answer(basic, "GET", tags, "alice", "wrong-pw") == UNAUTHORIZED


async def test_connections_the_directory_closed_are_replaced(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd) -> None:
    client = await aiohttp_client(app(tmp_path, auth_settings(tmp_path, slapd)))
    assert await answer(client, "GET", "/v2/dev/app/tags/list", "bob", PEOPLE_PASSWORDS["bob"]) == PULLED  # one connection pooled
    slapd.stop()
    slapd.start()
    # Not cached, and the pooled connection is dead: a new one answers (carol is let in, and denied by the policy).
    assert await answer(client, "GET", "/v2/dev/app/tags/list", "carol", PEOPLE_PASSWORDS["carol"]) == DENIED


# --- tokens -------------------------------------------------------------------------------------


async def sign_in(client: Any, user: str, password: str, scope: str) -> dict[str, Any]:
    response = await client.get("/auth/token", params={"scope": scope, "offline_token": "true"}, headers={"Authorization": encode_basic_auth(user, password)})
    assert response.status == 200, await response.text()
    return await response.json()


async def refresh(client: Any, refresh_token: str, scope: str) -> Any:
    return await client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope})


async def with_token(client: Any, method: str, path: str, token: str) -> int:
    return (await client.request(method, path, headers={"Authorization": f"Bearer {token}"})).status


async def test_token_mode_grants_by_directory_groups(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd) -> None:
    client = await aiohttp_client(app(tmp_path, auth_settings(tmp_path, slapd, "token")))
    scope = "repository:dev/app:pull,push"
    alice = await sign_in(client, "alice", PEOPLE_PASSWORDS["alice"], scope)
    bob = await sign_in(client, "bob", PEOPLE_PASSWORDS["bob"], scope)
    assert await with_token(client, "GET", "/v2/dev/app/tags/list", alice["token"]) == 404
    assert await with_token(client, "GET", "/v2/dev/app/tags/list", bob["token"]) == 404  # let in to pull
    assert await with_token(client, "POST", "/v2/dev/app/blobs/uploads/", bob["token"]) == 401  # insufficient scope
    refreshed = await refresh(client, alice["refresh_token"], scope)
    assert refreshed.status == 200
    assert await with_token(client, "POST", "/v2/dev/app/blobs/uploads/", (await refreshed.json())["token"]) == 202
    wrong = await client.get("/auth/token", params={"scope": scope}, headers={"Authorization": encode_basic_auth("alice", "wrong-pw")})
    assert wrong.status == 401


async def test_refresh_tokens_end_when_the_directory_no_longer_finds_the_user(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd) -> None:
    # cache_ttl 0: every token is checked against the directory as it is now.
    client = await aiohttp_client(app(tmp_path, auth_settings(tmp_path, slapd, "token", cache_ttl=0)))
    cached = await aiohttp_client(app(tmp_path / "cached", auth_settings(tmp_path, slapd, "token")))
    scope = "repository:dev/app:pull"
    slapd.add_person("dave", "dave-pw")
    try:
        dave, dave_cached = await sign_in(client, "dave", "dave-pw", scope), await sign_in(cached, "dave", "dave-pw", scope)
        assert (await refresh(client, dave["refresh_token"], scope)).status == 200
        assert (await refresh(cached, dave_cached["refresh_token"], scope)).status == 200
    finally:
        slapd.remove_person("dave")
    response = await refresh(client, dave["refresh_token"], scope)
    assert response.status == 401 and (await response.json())["errors"][0]["code"] == "UNAUTHORIZED"
    assert await with_token(client, "GET", "/v2/dev/app/tags/list", dave["token"]) == 401
    # A refresh asks the directory past the cache of lookups.
    assert (await refresh(cached, dave_cached["refresh_token"], scope)).status == 401
    # Other users' tokens are untouched.
    alice = await sign_in(client, "alice", PEOPLE_PASSWORDS["alice"], scope)
    assert (await refresh(client, alice["refresh_token"], scope)).status == 200
    assert await with_token(client, "GET", "/v2/dev/app/tags/list", alice["token"]) == 404


# --- the web page -------------------------------------------------------------------------------


async def directory_only_app(aiohttp_client: Any, tmp_path: pathlib.Path, slapd: Slapd, mode: str) -> tuple[Any, str]:
    """A client of an app whose users are ``slapd``'s alone (no htpasswd file), with robot ``ci``
    (pull in ``dev/*``), and its secret."""
    auth = settings(tmp_path, mode, htpasswd=None, policy_file=write_policy(tmp_path / "ldap-policy.yaml", POLICY), ldap=Ldap(**ldap_settings(slapd)))
    client = await aiohttp_client(make_app(tmp_path / "root", auth, robot_cache_seconds=0))
    _, secret = await robots_of(client).add("ci", ["dev/*"], [], [], None)
    return client, secret


async def test_robots_sign_in_where_users_come_from_the_directory_alone(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd) -> None:
    client, secret = await directory_only_app(aiohttp_client, tmp_path, slapd, "basic")
    assert await answer(client, "GET", "/v2/dev/app/tags/list", "robot$ci", secret) == PULLED
    assert await answer(client, "POST", "/v2/dev/app/blobs/uploads/", "robot$ci", secret) == DENIED  # its globs, not the policy's
    assert await answer(client, "GET", "/v2/dev/app/tags/list", "robot$ci", "guess") == UNAUTHORIZED
    assert (await answer(client, "POST", "/v2/dev/app/blobs/uploads/", "alice", PEOPLE_PASSWORDS["alice"]))[0] == 202


async def test_robot_tokens_where_users_come_from_the_directory_alone(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd) -> None:
    client, secret = await directory_only_app(aiohttp_client, tmp_path, slapd, "token")
    scope = "repository:dev/app:pull,push"
    robot = await sign_in(client, "robot$ci", secret, scope)
    assert await with_token(client, "GET", "/v2/dev/app/tags/list", robot["token"]) == 404  # let in to pull
    assert await with_token(client, "POST", "/v2/dev/app/blobs/uploads/", robot["token"]) == 401  # push not granted
    assert (await refresh(client, robot["refresh_token"], scope)).status == 200
    alice = await sign_in(client, "alice", PEOPLE_PASSWORDS["alice"], scope)
    assert await with_token(client, "POST", "/v2/dev/app/blobs/uploads/", alice["token"]) == 202


async def test_web_sign_in_as_a_directory_user(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd) -> None:
    client = await aiohttp_client(app(tmp_path, auth_settings(tmp_path, slapd)))

    async def sign_in_form(user: str, password: str) -> int:
        form = await client.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', await form.text()).group(1)
        response = await client.post("/ui/login", data={"csrf": csrf, "user": user, "password": password, "next": "/"}, allow_redirects=False)
        return response.status

    assert await sign_in_form("alice", "wrong-pw") == 401
    assert await sign_in_form("*)(uid=*", PEOPLE_PASSWORDS["alice"]) == 401
    assert await sign_in_form("alice", PEOPLE_PASSWORDS["alice"]) == 303
    page = await (await client.get("/")).text()
    assert '<span class="who" title="Signed in">alice</span>' in page
    # The page judges by the directory's groups: alice (developers) may see dev/app; it is empty, so 404, not a sign-in redirect.
    assert (await client.get("/ui/r/dev/app", allow_redirects=False)).status == 404
    slapd.stop()
    try:
        assert await sign_in_form("bob", PEOPLE_PASSWORDS["bob"]) == 503
    finally:
        slapd.start()


# --- settings -----------------------------------------------------------------------------------


def test_a_policy_names_groups_it_does_not_list_only_with_a_directory(tmp_path: pathlib.Path, slapd: Slapd) -> None:
    policy = write_policy(tmp_path / "directory-groups.yaml", POLICY)
    with pytest.raises(policies.PolicyError, match="no group 'developers'"):
        policies.load(policy)
    assert policies.load(policy, outside_groups=True).allowed("alice", "dev/app", frozenset({"developers"})) == policies.ACTIONS
    with pytest.raises(AuthSetupError, match="no group 'developers'"):
        settings(tmp_path, "basic", policy_file=policy).build()
    auth_settings(tmp_path, slapd).build()


async def test_bind_password_file(aiohttp_client, tmp_path: pathlib.Path, slapd: Slapd) -> None:
    secret = tmp_path / "bind-password"
    secret.write_text(ldap_settings(slapd)["bind_password"] + "\n")
    client = await aiohttp_client(app(tmp_path, auth_settings(tmp_path, slapd, bind_password="", bind_password_file=str(secret))))
    assert await answer(client, "GET", "/v2/dev/app/tags/list", "alice", PEOPLE_PASSWORDS["alice"]) == PULLED
    with pytest.raises(AuthSetupError, match="bind_password_file"):
        auth_settings(tmp_path, slapd, bind_password="", bind_password_file=str(tmp_path / "missing")).build()


def config_file(tmp_path: pathlib.Path, **ldap: Any) -> pathlib.Path:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": "0.1", "storage": {"inmemory": None}, "dockyard": {"ldap": ldap}}))
    return path


def test_the_ldap_keys(tmp_path: pathlib.Path) -> None:
    keys = {
        "url": "ldaps://ldap.example.org", "ca_file": "", "bind_dn": "uid=search,ou=people,dc=example,dc=org",
        "bind_password": "bind-secret-value", "user_base": "ou=people,dc=example,dc=org", "user_filter": "(&(uid={username})(objectClass=person))",
        "group_base": "ou=groups,dc=example,dc=org", "group_filter": "(memberUid={username})", "group_name_attribute": "gid",
        "timeout": "3s", "pool_size": 2, "page_size": 100, "cache_ttl": "30s",
    }
    settings = load(config_file(tmp_path, **keys), {}).settings
    ldap = settings.dockyard.ldap
    assert ldap is not None and ldap.timeout == 3.0 and ldap.cache_ttl == 30.0 and ldap.group_filter == "(memberUid={username})"
    assert AuthSettings.of(settings, tmp_path / "key").ldap == ldap
    assert "Basic, LDAP users at ldaps://ldap.example.org;" in AuthSettings.of(settings, tmp_path / "key").describe()
    shown = to_yaml(settings)
    assert "bind-secret-value" not in shown and f"bind_password: '{MASK}'" in shown


@pytest.mark.parametrize(("keys", "message"), [
    ({"url": "http://ldap.example.org"}, "dockyard.ldap.url: expected ldap://HOST[:PORT] or ldaps://HOST[:PORT]"),
    ({"url": "ldaps://ldap.example.org", "start_tls": True}, "dockyard.ldap.start_tls: set with an ldaps:// url"),
    ({"bind_password": "a", "bind_password_file": "/dev/null"}, "bind_password and bind_password_file both set"),
    ({"user_filter": "(uid=alice)"}, "dockyard.ldap.user_filter: expected a filter naming {username}"),
    ({"user_base": ""}, "dockyard.ldap.user_base"),
])
def test_ldap_keys_refused(tmp_path: pathlib.Path, keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(config_file(tmp_path, **{"url": "ldap://127.0.0.1", "user_base": "ou=people,dc=example,dc=org", **keys}), {})
