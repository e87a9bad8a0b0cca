"""Deciding, for each API request, who is asking and whether they may.

Three modes: open (no authentication configured: everyone may do everything the
policy allows, or everything without a policy), basic (credentials of an htpasswd or
LDAP user, or of a robot, on every request) and token (a Bearer token from the built-in
token service or an external one).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api import errors
from dockyard.api.errors import RegistryError
from dockyard.api.forwarding import path_prefix, public_base_url
from dockyard.auth import scopes
from dockyard.auth.access import ANONYMOUS, Authenticator, Identity, client_address, parse_basic
from dockyard.auth.policy import OPEN_TO_USERS, Policy
from dockyard.auth.robots import ROBOT
from dockyard.auth.scopes import Scope
from dockyard.logs import audit
from dockyard.memo import remembered
from dockyard.reference import NAME_MAX_LENGTH

if TYPE_CHECKING:  # token auth alone needs these, and their jwt and cryptography
    from dockyard.auth.binding import CredentialBinding
    from dockyard.auth.tokens import TokenVerifier

log = logging.getLogger("dockyard.auth")

TOKEN_PATH = "/auth/token"


def needed_scopes(route: str, method: str, name: str) -> tuple[Scope, ...]:
    return _needed_scopes((route, method, name))


# Built once for each of the last SCOPES_KEPT routes, methods and names asked for (any name fits).
SCOPES_KEPT = 1024


@remembered(SCOPES_KEPT, NAME_MAX_LENGTH + 32)
def _needed_scopes(request: tuple[str, str, str]) -> tuple[Scope, ...]:
    route, method, name = request
    if route == "base":
        return ()
    if route == "catalog":
        return (scopes.CATALOG,)
    if method in ("GET", "HEAD"):
        return (scopes.repository(name, "pull"),)
    if method == "DELETE":
        return (scopes.repository(name, "delete"),)
    return (scopes.repository(name, "pull", "push"),)


class AccessController:
    def __init__(
        self,
        policy: Policy | None = None,
        authenticator: Authenticator | None = None,
        verifier: TokenVerifier | None = None,
        realm: str = "Dockyard",
        token_realm: str | None = None,
        binding: CredentialBinding | None = None,
    ) -> None:
        """``binding``: the built-in token service's, whose users' tokens must still match their accounts."""
        self.policy = policy if policy is not None else (OPEN_TO_USERS if authenticator or verifier else None)
        self.authenticator = authenticator
        self.verifier = verifier
        self.realm = realm
        self.token_realm = token_realm
        self.binding = binding
        # Who an anonymous caller is: the same for every request, so built once.
        self._anonymous = Identity.of(None, self.policy, None)

    @property
    def mode(self) -> str:
        return "token" if self.verifier else "basic" if self.authenticator else "open"

    def _realm_url(self, request: web.Request) -> str:
        if self.token_realm:
            return self.token_realm
        # As the client reached us: behind a proxy, its scheme, host and port (see api/forwarding.py).
        return f"{public_base_url(request)}{path_prefix(request)}{TOKEN_PATH}"

    def _challenge(self, request: web.Request, needed: Sequence[Scope], error: str | None = None) -> dict[str, str]:
        if self.verifier is None:
            return {"WWW-Authenticate": f'Basic realm="{self.realm}"'}
        parts = [f'realm="{self._realm_url(request)}"', f'service="{self.verifier.service}"']
        if needed:
            parts.append(f'scope="{" ".join(map(str, needed))}"')
        if error:
            parts.append(f'error="{error}"')
        return {"WWW-Authenticate": "Bearer " + ",".join(parts)}

    def _unauthorized(self, request: web.Request, needed: Sequence[Scope], error: str | None = None, message: str = "authentication required") -> RegistryError:
        detail = [scope.claim() for scope in needed] or None
        return RegistryError(errors.UNAUTHORIZED, message, detail=detail, headers=self._challenge(request, needed, error))

    async def identify(self, request: web.Request, needed: Sequence[Scope]) -> Identity:
        """Who is asking; raises 401, 403 or 429 when they may not do what ``needed`` says."""
        if self.verifier is None and self.authenticator is None and self.policy is None:
            return self._anonymous  # open access: anyone may do anything, whatever they send
        header = request.headers.get("Authorization", "")
        if self.verifier is not None:
            from dockyard.auth.tokens import InvalidToken  # loaded by the verifier already: a lookup

            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise self._unauthorized(request, needed)
            try:
                grant = self.verifier.verify(token.strip())
            except InvalidToken as error:
                log.info("refused a token from %s: %s", client_address(request), error)
                raise self._unauthorized(request, needed, "invalid_token", "invalid or expired token") from None
            account = None
            if grant.subject and self.binding is not None:
                account = await self.binding.current(grant.subject, grant.credential)
                if account is None:
                    log.info("refused a token of %r from %s: the user was removed or their password changed", grant.subject, client_address(request))
                    raise self._unauthorized(request, needed, "invalid_token", "the token's user was removed or their password changed")
            identity = Identity.of(grant.subject or None, self.policy, account, grant.access)
            if not self._permits(identity, needed):
                raise self._unauthorized(request, needed, "insufficient_scope", "the token does not grant this access")
            return identity

        account = None
        if header and self.authenticator is not None:
            credentials = parse_basic(header)
            if credentials is None:
                raise self._unauthorized(request, needed, message="wrong user name or password")
            if credentials != ANONYMOUS:
                account = await self.authenticator.check(request, *credentials)
                if account is None:
                    raise self._unauthorized(request, needed, message="wrong user name or password")
                if account.source == ROBOT:
                    audit("login", request, user=account.name, via="basic")
        user = account.name if account else None
        if user is None and self.authenticator is not None and not needed:
            # /v2/ must ask for credentials: ``docker login`` takes a 200 here as success.
            raise self._unauthorized(request, needed)
        identity = self._anonymous if account is None else Identity.of(user, self.policy, account)
        if self._permits(identity, needed):
            return identity
        if user is None and self.authenticator is not None:
            raise self._unauthorized(request, needed)
        raise RegistryError(errors.DENIED, detail=[scope.claim() for scope in needed])

    @staticmethod
    def _permits(identity: Identity, needed: Sequence[Scope]) -> bool:
        for scope in needed:
            if scope == scopes.CATALOG:
                if not identity.may_list_catalog():
                    return False
            elif not scope.actions <= identity.allowed(scope.name):
                return False
        return True
