"""Where users and their passwords come from: credential sources, asked in turn by the
:class:`~dockyard.auth.access.Authenticator` (robot accounts, an htpasswd file, an LDAP directory).

A source answers a sign-in with the :class:`Account` it vouches for, or ``None`` (no such
user, or a wrong password: the caller cannot tell which). A source that cannot answer at
all (a directory down) raises :class:`~dockyard.errors.DirectoryUnavailable`: nobody is
let in on a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.policy import Policy


@dataclass(frozen=True)
class Account:
    """A signed-in user as their source knows them now."""

    name: str
    source: str
    """The name of the source that vouches for them (the prefix of their tokens' stamps)."""
    stamp_material: str
    """What their tokens' stamp is made of (see :mod:`dockyard.auth.binding`): when it changes, their tokens end."""
    groups: frozenset[str] = frozenset()
    """Groups the source puts them in (the access policy's ``group:NAME``), beside the policy's own."""
    policy: Policy | None = None
    """What decides their access instead of the access policy (a robot's own globs); ``None``: the access policy."""

    def judged_by(self, policy: Policy | None) -> Policy | None:
        """What decides this account's access where ``policy`` decides everyone else's."""
        return self.policy if self.policy is not None else policy


class CredentialSource(Protocol):
    name: str

    async def verify(self, user: str, password: str) -> Account | None:
        """The account ``user`` signs in as with ``password``, or ``None``."""
        ...

    async def lookup(self, user: str, *, fresh: bool = False) -> Account | None:
        """``user``'s account as the source has it now (``None``: gone), for tokens and sessions issued
        before; ``fresh``: ask past any cache (for a refresh token, which may live for weeks)."""
        ...


HTPASSWD = "htpasswd"


class HtpasswdSource:
    """The users of an htpasswd file; their stamp is their stored hash (a new password ends their tokens)."""

    name = HTPASSWD

    def __init__(self, htpasswd: Htpasswd, equalize_unknown: bool = True) -> None:
        """``equalize_unknown``: a name the file lacks costs a bcrypt too, as a wrong password does; off when
        another source is asked next (its users would pay a bcrypt at every request, uncached)."""
        self.htpasswd = htpasswd
        self.equalize_unknown = equalize_unknown

    async def verify(self, user: str, password: str) -> Account | None:
        if not self.equalize_unknown and self.htpasswd.entry(user) is None:
            return None
        hashed = await self.htpasswd.verified_entry(user, password)
        return Account(user, self.name, hashed) if hashed is not None else None

    async def lookup(self, user: str, *, fresh: bool = False) -> Account | None:
        hashed = self.htpasswd.entry(user)  # one stat of the file: always fresh
        return Account(user, self.name, hashed) if hashed is not None else None
