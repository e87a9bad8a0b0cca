"""Who is asking and what they may do: an :class:`Identity`, and an :class:`Authenticator`
that checks credentials against its sources (:mod:`dockyard.auth.sources`: robot accounts,
an htpasswd file, an LDAP directory) under the failed-login limits. The HTTP side (reading
the ``Authorization`` header, challenging) is :mod:`dockyard.api.access`."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from dockyard.auth.limiter import FailureLimiter
from dockyard.auth.policy import ACTIONS, Policy
from dockyard.auth.scopes import Scope
from dockyard.auth.sources import Account, CredentialSource
from dockyard.errors import TooManyFailedLogins
from dockyard.logs import audit

log = logging.getLogger("dockyard.auth")


@dataclass(frozen=True)
class Identity:
    """Who made a request, and what they may do."""

    user: str | None
    policy: Policy | None
    grants: tuple[Scope, ...] | None = None
    """With token authentication: what the token grants (the policy was applied when it was issued)."""
    groups: frozenset[str] = frozenset()
    """Groups the user's credential source puts them in (LDAP's), beside the policy's own."""

    @classmethod
    def of(cls, user: str | None, policy: Policy | None, account: Account | None, grants: tuple[Scope, ...] | None = None) -> Identity:
        """``user``, judged by ``policy`` or, signed in as ``account``, by its own if it has one (a robot's), with its groups."""
        if account is None:
            return cls(user, policy, grants)
        return cls(user, account.judged_by(policy), grants, account.groups)

    def allowed(self, repository: str) -> frozenset[str]:
        if self.grants is not None:
            return frozenset().union(*(
                ACTIONS if "*" in grant.actions else grant.actions
                for grant in self.grants
                if grant.type == "repository" and grant.name == repository
            ))
        if self.policy is None:
            return ACTIONS
        return self.policy.allowed(self.user, repository, self.groups)

    def may(self, action: str, repository: str) -> bool:
        return action in self.allowed(repository)

    def is_admin(self) -> bool:
        """An admin of the policy; without a policy file, any signed-in user (and with no authentication, anyone)."""
        return self.policy is None or self.policy.is_admin(self.user)

    def may_list_catalog(self) -> bool:
        if self.grants is not None:
            return any(grant.type == "registry" and grant.name == "catalog" for grant in self.grants)
        return self.policy is None or self.policy.may_list_catalog(self.user, self.groups)

    def catalog_filter(self) -> Callable[[str], bool] | None:
        """Which repositories the catalog shows this caller (``None``: all of them).

        The policy decides, with tokens too: a catalog token grants no repository scopes.
        """
        policy = self.policy
        if policy is None or not policy.defined or policy.is_admin(self.user):
            return None
        return lambda name: "pull" in policy.allowed(self.user, name, self.groups)


def parse_basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


# What skopeo, podman and buildah answer a Basic challenge with when they have no credentials
# (``Basic Og==``), and docker and podman send the token service: an anonymous request, not a login.
ANONYMOUS = ("", "")


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


class Authenticator:
    """Checks credentials against its sources in turn (the first that vouches for the user wins),
    with the failed-login limits (basic mode, the token service and the web page)."""

    def __init__(self, sources: Sequence[CredentialSource], limiter: FailureLimiter) -> None:
        self.sources = tuple(sources)
        self.limiter = limiter

    async def check(self, request: web.Request, user: str, password: str) -> Account | None:
        """The account signed in as, or ``None``; raises :class:`~dockyard.errors.DirectoryUnavailable`
        when a source that might know the user cannot answer (not counted as a failure)."""
        keys = (f"address:{client_address(request)}", f"user:{user}")
        wait = self.limiter.retry_after(*keys)
        if wait is not None:
            raise TooManyFailedLogins(wait, "too many failed logins: try again later")
        for source in self.sources:
            account = await source.verify(user, password)
            if account is not None:
                return account
        self.limiter.failed(*keys)
        log.warning("failed login for user %r from %s", user, client_address(request))
        audit("login_failed", request, user=user)
        return None
