"""The built-in token service (the Docker token specification and its OAuth2 form).

``GET /auth/token?service=&scope=...`` with optional Basic credentials, and
``POST /auth/token`` with ``grant_type=password`` or ``refresh_token``. What a token
grants is what was asked for, cut down to what the access policy allows (for a robot:
its own globs). A signed-in user's tokens carry a stamp of their htpasswd entry (a
robot's, of its record; see :mod:`dockyard.auth.binding`): a refresh token of a user
since removed, or whose password has changed, gets nothing.
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
from dockyard.auth.tokens import Grant, InvalidToken, TokenIssuer
from dockyard.logs import USER_KEY, audit


def granted(policy: Policy, user: str | None, requested: list[Scope]) -> list[Scope]:
    result: list[Scope] = []
    for scope in requested:
        if scope.type == "repository":
            asked = ACTIONS if "*" in scope.actions else scope.actions & ACTIONS
            actions = asked & policy.allowed(user, scope.name)
            if actions:
                result.append(Scope(scope.type, scope.name, frozenset(actions)))
        elif scope == scopes.CATALOG and policy.may_list_catalog(user):
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

    async def _respond(self, signed_in: Grant | None, requested: list[Scope], offline: bool) -> web.Response:
        """Tokens for ``signed_in`` (its subject and credential stamp; ``None``: anonymous)."""
        user, credential = (signed_in.subject, signed_in.credential) if signed_in else (None, None)
        policy = await self.authenticator.policy_for(user, self.policy) if self.authenticator else self.policy
        assert policy is not None
        token, expires_in, issued_at = self.issuer.issue(user or "", granted(policy, user, requested), credential)
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

    async def _login(self, request: web.Request, user: str, password: str) -> Grant:
        # Stamped before the check: should the file change meanwhile, the tokens are bound to the
        # older entry (and refused), never to one the password was not checked against.
        credential = await self.binding.current_stamp(user) if self.binding else None
        if self.authenticator is None or not await self.authenticator.check(request, user, password):
            raise RegistryError(errors.UNAUTHORIZED, "wrong user name or password", headers={"WWW-Authenticate": 'Basic realm="Dockyard token service"'})
        request[USER_KEY] = user
        audit("login", request, user=user, via="token_service")
        return Grant(user, (), credential)

    async def _refresh(self, request: web.Request, token: str) -> Grant:
        try:
            signed_in = self.issuer.check_refresh_token(token)
        except InvalidToken:
            raise RegistryError(errors.UNAUTHORIZED, "invalid or expired refresh token") from None
        if self.binding is None or not await self.binding.still_holds(signed_in.subject, signed_in.credential):
            # Not a password guess: not counted by the failed-login limiter.
            audit("login_failed", request, user=signed_in.subject, via="refresh_token")
            raise RegistryError(errors.UNAUTHORIZED, "the refresh token's user was removed or their password changed: log in again")
        request[USER_KEY] = signed_in.subject
        audit("login", request, user=signed_in.subject, via="refresh_token")
        return signed_in

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
        return await self._respond(signed_in, _scopes(request.query.getall("scope", [])), offline)

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
        return await self._respond(signed_in, _scopes([str(form.get("scope", ""))]), offline)
