"""Building the access controller and the token service from ``serve``'s settings."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.api.access import AccessController
from dockyard.auth import policy as policies
from dockyard.auth.access import Authenticator
from dockyard.auth.binding import CredentialBinding
from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.limiter import FailureLimiter
from dockyard.auth.robots import RobotAccounts, RobotSource
from dockyard.auth.sources import CredentialSource, HtpasswdSource
from dockyard.config import Settings
from dockyard.config.schema import Ldap
from dockyard.secrets import token_signing_key
from dockyard.tls.errors import CertificateError

if TYPE_CHECKING:  # token auth alone builds one, with its jwt and cryptography
    from dockyard.api.token import TokenService


class AuthSetupError(Exception):
    pass


@dataclass(frozen=True)
class AuthSettings:
    htpasswd: pathlib.Path | None = None
    realm: str = "Dockyard"
    policy_file: pathlib.Path | None = None
    token_auth: bool = False
    token_service: str = "dockyard"
    token_issuer: str = "dockyard"
    token_realm: str | None = None
    token_rootcertbundle: pathlib.Path | None = None
    token_jwks: pathlib.Path | None = None
    signing_key: pathlib.Path | None = None
    # http.secret: when set, the signing key is derived from it (the same on every replica) instead of the file.
    http_secret: str = ""
    max_failures: int = 10
    failure_window: float = 60.0
    ldap: Ldap | None = None

    @classmethod
    def of(cls, settings: Settings, signing_key: pathlib.Path) -> AuthSettings:
        """As ``settings`` say; ``signing_key`` is the built-in token service's key file (without http.secret)."""
        htpasswd, token, own = settings.auth.htpasswd, settings.auth.token, settings.dockyard
        return cls(
            htpasswd=pathlib.Path(htpasswd.path) if htpasswd else None,
            realm=htpasswd.realm if htpasswd else cls.realm,
            policy_file=pathlib.Path(own.access_policy) if own.access_policy else None,
            token_auth=own.token_auth,
            token_service=token.service if token else own.token_service,
            token_issuer=token.issuer if token else own.token_issuer,
            token_realm=token.realm if token else None,
            token_rootcertbundle=pathlib.Path(token.rootcertbundle) if token and token.rootcertbundle else None,
            token_jwks=pathlib.Path(token.jwks) if token and token.jwks else None,
            signing_key=signing_key,
            http_secret=settings.http.secret,
            max_failures=own.login.max_failures,
            failure_window=own.login.failure_window,
            ldap=own.ldap,
        )

    @property
    def external_tokens(self) -> bool:
        return self.token_rootcertbundle is not None or self.token_jwks is not None

    def describe(self) -> str:
        users = " and ".join(([f"users from {self.htpasswd}"] if self.htpasswd else []) + ([f"LDAP users at {self.ldap.url}"] if self.ldap else []))
        if self.external_tokens:
            mode = f"Bearer tokens from {self.token_realm} (issuer {self.token_issuer}, service {self.token_service})"
        elif self.token_auth:
            mode = f"Bearer tokens from the built-in token service (service {self.token_service})" + (f", {users}" if users else "")
        elif users:
            mode = f"Basic, {users}"
        else:
            return "authentication: none, anyone who reaches the registry may pull, push and delete" + (
                f" as {self.policy_file} allows anonymous users" if self.policy_file else ""
            )
        rules = f"access policy {self.policy_file}" if self.policy_file else "no access policy: every signed-in user may do everything"
        return f"authentication: {mode}; {rules}"

    def build(self, robots: RobotAccounts | None = None) -> tuple[AccessController, TokenService | None]:
        """``robots``: the storage's robot accounts, who sign in beside the htpasswd file's and the directory's users."""
        try:
            # A directory's groups are the policy's too, without being listed in it.
            policy = policies.load(self.policy_file, outside_groups=self.ldap is not None) if self.policy_file else None
        except policies.PolicyError as error:
            raise AuthSetupError(str(error)) from None
        sources = self._sources(robots)
        authenticator = Authenticator(sources, FailureLimiter(self.max_failures, self.failure_window)) if sources else None
        if self.external_tokens:
            if not self.token_realm:
                raise AuthSetupError("an external token issuer needs --token-realm, the URL clients get tokens from")
            from dockyard.auth.tokens import TokenVerifier  # token auth alone needs jwt and cryptography

            try:
                verifier = TokenVerifier.from_files(self.token_issuer, self.token_service, self.token_rootcertbundle, self.token_jwks)
            except (CertificateError, OSError, ValueError) as error:
                raise AuthSetupError(f"cannot read the token issuer's keys: {error}") from None
            return AccessController(policy, None, verifier, self.realm, self.token_realm), None
        if self.token_auth:
            from dockyard.api.token import TokenService
            from dockyard.auth.tokens import TokenIssuer, TokenVerifier

            key = self._signing_key()
            issuer = TokenIssuer(key, self.token_issuer, self.token_service)
            verifier = TokenVerifier([key.public_key()], self.token_issuer, self.token_service)
            binding = CredentialBinding.for_signing_key(authenticator.sources, key) if authenticator else None
            controller = AccessController(policy, authenticator, verifier, self.realm, self.token_realm, binding)
            assert controller.policy is not None  # with a verifier it falls back to OPEN_TO_USERS
            return controller, TokenService(issuer, controller.policy, authenticator, binding)
        return AccessController(policy, authenticator, None, self.realm), None

    def _sources(self, robots: RobotAccounts | None) -> list[CredentialSource]:
        """Where users come from, asked in this order: robots (by their ``robot$`` names alone, so a
        robot's sign-in pays no bcrypt of the htpasswd file's), the htpasswd file, the directory.
        Robots only where there are users: they never turn authentication on by themselves."""
        sources: list[CredentialSource] = []
        if self.htpasswd:
            try:
                sources.append(HtpasswdSource(Htpasswd(self.htpasswd), equalize_unknown=self.ldap is None))
            except OSError as error:
                raise AuthSetupError(f"cannot read {self.htpasswd}: {error.strerror}") from None
        if self.ldap:
            password = self.ldap.bind_password
            if self.ldap.bind_password_file:
                try:
                    password = pathlib.Path(self.ldap.bind_password_file).read_text().rstrip("\r\n")
                except OSError as error:
                    raise AuthSetupError(f"cannot read dockyard.ldap.bind_password_file {self.ldap.bind_password_file}: {error.strerror}") from None
            # Imported only here: ldap3 costs every process ~5 MiB that a registry without LDAP never uses.
            from dockyard.auth.ldap import LdapDirectory

            sources.append(LdapDirectory(self.ldap, password))
        return [RobotSource(robots), *sources] if sources and robots is not None else sources

    def _signing_key(self) -> Any:
        if self.http_secret:
            return token_signing_key(self.http_secret)
        assert self.signing_key is not None
        from dockyard.auth.tokens import load_or_create_signing_key

        try:
            return load_or_create_signing_key(self.signing_key)
        except (CertificateError, OSError) as error:
            raise AuthSetupError(f"cannot use the token signing key {self.signing_key}: {error}") from None
