"""The built-in token service (the Docker token specification and its OAuth2 form).

``GET /auth/token?service=&scope=...`` with optional Basic credentials, and
``POST /auth/token`` with ``grant_type=password`` or ``refresh_token``. What a token
grants is what was asked for, cut down to what the access policy allows (with the groups
the user's credential source gives; for a robot: its own globs). A signed-in user's tokens
carry a stamp of their account (see :mod:`dockyard.auth.binding`): a refresh token of a
user since removed, whose htpasswd password has changed, whom the directory no longer
finds, or of a robot removed or expired, gets nothing.
"""

from __future__ import annotations

import datetime
import json

from aiohttp import web

from dockyard.api import errors
from dockyard.api.errors import RegistryError
from dockyard.auth import scopes
from dockyard.auth.access import ANONYMOUS, Authenticator, parse_basic
from dockyard.auth.binding import CredentialBinding
from dockyard.auth.policy import ACTIONS, Policy
from dockyard.auth.scopes import Scope
from dockyard.auth.sources import Account
from dockyard.auth.tokens import InvalidToken, TokenIssuer
from dockyard.logs import USER_KEY, audit


def granted(policy: Policy, user: str | None, requested: list[Scope], groups: frozenset[str] = frozenset()) -> list[Scope]:
    result: list[Scope] = []
    for scope in requested:
        if scope.type == "repository":
            asked = ACTIONS if "*" in scope.actions else scope.actions & ACTIONS
            actions = asked & policy.allowed(user, scope.name, groups)
            if actions:
                result.append(Scope(scope.type, scope.name, frozenset(actions)))
        elif scope == scopes.CATALOG and policy.may_list_catalog(user, groups):
            result.append(scope)
    return result


def _scopes(values: list[str]) -> list[Scope]:
    requested = []
    for value in values:
        for item in value.split():
            try:
                requested.append(Scope.parse(item))
            except ValueError as error:
                raise RegistryError(errors.TOKEN_REQUEST_INVALID, str(error)) from None
    return requested


class TokenService:
    def __init__(
        self, issuer: TokenIssuer, policy: Policy, authenticator: Authenticator | None, binding: CredentialBinding | None
    ) -> None:
        self.issuer = issuer
        self.policy = policy
        self.authenticator = authenticator
        self.binding = binding

    def _respond(self, signed_in: Account | None, requested: list[Scope], offline: bool) -> web.Response:
        """Tokens for ``signed_in`` (``None``: anonymous)."""
        user = signed_in.name if signed_in else None
        credential = self.binding.stamp(signed_in) if signed_in and self.binding else None
        groups = signed_in.groups if signed_in else frozenset()
        policy = signed_in.judged_by(self.policy) if signed_in else self.policy
        assert policy is not None  # self.policy is one
        token, expires_in, issued_at = self.issuer.issue(user or "", granted(policy, user, requested, groups), credential)
        body: dict[str, object] = {
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": datetime.datetime.fromtimestamp(issued_at, datetime.UTC).isoformat().replace("+00:00", "Z"),
        }
        if offline and user:
            body["refresh_token"] = self.issuer.refresh_token(user, credential)
        return web.Response(body=json.dumps(body).encode(), content_type="application/json", headers={"Cache-Control": "no-store"})

    def _check_service(self, service: str | None) -> None:
        if service and service != self.issuer.service:
            raise RegistryError(errors.DENIED, f"this token service serves {self.issuer.service!r}, not {service[:100]!r}")

    async def _login(self, request: web.Request, user: str, password: str) -> Account:
        # The account is what the password was checked against (its stamp material included).
        account = await self.authenticator.check(request, user, password) if self.authenticator else None
        if account is None:
            raise RegistryError(errors.UNAUTHORIZED, "wrong user name or password", headers={"WWW-Authenticate": 'Basic realm="Dockyard token service"'})
        request[USER_KEY] = user
        audit("login", request, user=user, via="token_service")
        return account

    async def _refresh(self, request: web.Request, token: str) -> Account:
        try:
            signed_in = self.issuer.check_refresh_token(token)
        except InvalidToken:
            raise RegistryError(errors.UNAUTHORIZED, "invalid or expired refresh token") from None
        # Fresh: a refresh token lives for weeks, so its user is looked up past any cache.
        account = await self.binding.current(signed_in.subject, signed_in.credential, fresh=True) if self.binding else None
        if account is None:
            # Not a password guess: not counted by the failed-login limiter.
            audit("login_failed", request, user=signed_in.subject, via="refresh_token")
            raise RegistryError(errors.UNAUTHORIZED, "the refresh token's user was removed or their password changed: log in again")
        request[USER_KEY] = signed_in.subject
        audit("login", request, user=signed_in.subject, via="refresh_token")
        return account

    async def get(self, request: web.Request) -> web.StreamResponse:
        self._check_service(request.query.get("service"))
        signed_in = None
        header = request.headers.get("Authorization")
        if header:
            credentials = parse_basic(header)
            if credentials is None:
                raise RegistryError(errors.UNAUTHORIZED, "only Basic credentials are accepted here")
            if credentials != ANONYMOUS:
                signed_in = await self._login(request, *credentials)
        offline = request.query.get("offline_token", "").lower() == "true"
        return self._respond(signed_in, _scopes(request.query.getall("scope", [])), offline)

    async def post(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        self._check_service(str(form.get("service", "")) or None)
        grant_type = form.get("grant_type")
        if grant_type == "password":
            credentials = (str(form.get("username", "")), str(form.get("password", "")))
            signed_in = None if credentials == ANONYMOUS else await self._login(request, *credentials)
        elif grant_type == "refresh_token":
            signed_in = await self._refresh(request, str(form.get("refresh_token", "")))
        else:
            raise RegistryError(errors.TOKEN_REQUEST_INVALID, "grant_type must be password or refresh_token")
        offline = str(form.get("access_type", "")) == "offline"
        return self._respond(signed_in, _scopes([str(form.get("scope", ""))]), offline)
