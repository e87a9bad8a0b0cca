"""What one key cannot say alone: checks across keys, and what ``serve`` cannot do.

Each check names the keys at fault through ``named``, so that a message about a key an
option set names the option instead (see :func:`dockyard.config.flags.namer`)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

from dockyard.config.schema import Dockyard, MirrorSync, Settings, Storage
from dockyard.config.value_checks import address_problem
from dockyard.config.values import ConfigError, kinds
from dockyard.forwarding import ForwardingError, parse_trusted
from dockyard.tls import policy

Named = Callable[..., tuple[str, ...]]
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token


def _chosen(section: object) -> list[str]:
    return [kind for kind in kinds(type(section)) if getattr(section, kind) is not None]


def _check_kinds(settings: Settings, named: Named) -> None:
    drivers = _chosen(settings.storage)
    if not drivers:
        raise ConfigError(f"storage: no driver; name one of {', '.join(Storage.KINDS)}")
    if len(drivers) > 1:
        raise ConfigError(f"storage: more than one driver ({', '.join(drivers)}); keep one (REGISTRY_STORAGE={drivers[-1]} replaces the file's)")
    auth = _chosen(settings.auth)
    if len(auth) > 1:
        raise ConfigError(f"auth: more than one kind ({', '.join(auth)}); keep one")
    if settings.auth.silly is not None:
        raise ConfigError("auth.silly: refused: it lets in anyone who sends any Authorization header; use auth.htpasswd or auth.token")
    token = settings.auth.token
    if token is not None and not (token.rootcertbundle or token.jwks):
        raise ConfigError("auth.token.rootcertbundle: missing (or auth.token.jwks): the keys that sign the issuer's tokens")
    own = settings.dockyard
    if token is not None and (own.token_service, own.token_issuer) != (Dockyard.token_service, Dockyard.token_issuer):
        service, issuer = named("dockyard.token_service", "dockyard.token_issuer")
        raise ConfigError(
            f"{service if own.token_service != Dockyard.token_service else issuer}: names the built-in token service's; "
            "an external issuer's are auth.token.service and auth.token.issuer (REGISTRY_AUTH_TOKEN_SERVICE, REGISTRY_AUTH_TOKEN_ISSUER)"
        )


def _check_tls(settings: Settings, named: Named) -> None:
    tls = settings.http.tls
    if bool(tls.certificate) != bool(tls.key):
        certificate, key = named("http.tls.certificate", "http.tls.key")
        raise ConfigError(f"{key if tls.certificate else certificate}: missing; {certificate} and {key} go together")
    if settings.dockyard.insecure_http and (tls.certificate or tls.clientcas):
        insecure, given = named("dockyard.insecure_http", "http.tls.certificate" if tls.certificate else "http.tls.clientcas")
        raise ConfigError(f"{insecure}: serves no TLS, but {given if given.startswith('-') else 'http.tls'} is set; drop one of them")
    if tls.clientauth is not None and not tls.clientcas:
        # registry:2 ignores it then, and lets in every client: not what whoever wrote it meant
        raise ConfigError(f"http.tls.clientauth: {tls.clientauth} needs http.tls.clientcas, the CAs that issue client certificates")
    if tls.clientauth in policy.REFUSED_CLIENT_AUTH:
        raise ConfigError(f"http.tls.clientauth: {tls.clientauth} cannot be honoured: {policy.REFUSED_CLIENT_AUTH[tls.clientauth]}")
    for index, name in enumerate(tls.ciphersuites):
        if (problem := policy.suite_problem(name)) is not None:
            raise ConfigError(f"http.tls.ciphersuites.{index}: {name}: {problem}")


def _check_letsencrypt(settings: Settings, named: Named) -> None:
    letsencrypt = settings.http.tls.letsencrypt
    if letsencrypt is None:
        return
    if settings.http.tls.certificate:
        (certificate,) = named("http.tls.certificate")
        raise ConfigError(f"http.tls.letsencrypt: set with {certificate}; keep one (registry:2 refuses both too)")
    if settings.dockyard.insecure_http:
        (insecure,) = named("dockyard.insecure_http")
        raise ConfigError(f"{insecure}: serves no TLS, but http.tls.letsencrypt is set; drop one of them")
    if not letsencrypt.hosts:
        raise ConfigError("http.tls.letsencrypt.hosts: missing: the names to get certificates for")
    if settings.http.net == "unix" and not settings.dockyard.acme_http_addr:
        raise ConfigError(
            "http.tls.letsencrypt: TLS-ALPN-01 challenges are answered on the serving port, which no ACME server reaches on a unix socket; "
            "set dockyard.acme_http_addr (HOST:PORT, port 80) to answer HTTP-01 there"
        )


def _check_serving(settings: Settings, named: Named) -> None:
    http = settings.http
    if http.net == "tcp" and (problem := address_problem(http.addr)) is not None:
        (addr,) = named("http.addr")
        raise ConfigError(f"{addr}: {problem}")
    if http.net == "unix" and not http.addr:
        raise ConfigError("http.addr: missing: with http.net unix, the path of the socket")
    if http.debug.prometheus.enabled and not http.debug.addr:
        metrics, debug_addr = named("http.debug.prometheus.enabled", "http.debug.addr")
        raise ConfigError(f"{metrics}: metrics are served on the debug server; set {debug_addr} too")
    if settings.storage.inmemory is not None and settings.dockyard.workers > 1:
        (workers,) = named("dockyard.workers")
        raise ConfigError(f"{workers}: the inmemory driver cannot be shared by several workers")
    for index, value in enumerate(settings.dockyard.trusted_proxies):
        try:
            parse_trusted([value])
        except ForwardingError as error:
            (key,) = named(f"dockyard.trusted_proxies.{index}")
            raise ConfigError(f"{key}: {error}") from None
    for name, values in http.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"http.headers.{name}: not a header name")
        for index, value in enumerate(values):
            if any(character in value for character in "\r\n\0"):
                raise ConfigError(f"http.headers.{name}.{index}: a header value holds no line break or NUL")
    _check_redis(settings)


def _check_redis(settings: Settings) -> None:
    redis = settings.redis
    if redis is None:
        if settings.storage.cache.kind == "redis":
            raise ConfigError(f"redis.addr: missing: storage.cache.{'blobdescriptor' if settings.storage.cache.blobdescriptor else 'layerinfo'} is redis")
        return
    if redis.addr and redis.addrs:
        raise ConfigError("redis.addrs: set with redis.addr (registry:2.8's name); keep one")
    if len(redis.addrs) > 1:
        raise ConfigError(f"redis.addrs: {len(redis.addrs)} addresses name a Redis cluster or sentinels, which dockyard does not support; name one server")
    if redis.mastername:
        raise ConfigError("redis.mastername: Redis Sentinel is not supported; name the server in redis.addrs")
    if settings.storage.cache.kind != "redis":
        return
    if not redis.address:
        raise ConfigError("redis.addrs: missing (or redis.addr): storage.cache is redis")
    if (problem := address_problem(redis.address)) is not None:
        raise ConfigError(f"redis.{'addr' if redis.addr else 'addrs.0'}: {problem}")
    tls = redis.tls
    if bool(tls.certificate) != bool(tls.key):
        raise ConfigError(f"redis.tls.{'key' if tls.certificate else 'certificate'}: missing; redis.tls.certificate and redis.tls.key go together")
    named_files = [("certificate", tls.certificate), ("key", tls.key)]
    named_files += [(f"{name}.{index}", path) for name in ("rootcas", "clientcas") for index, path in enumerate(getattr(tls, name))]
    for name, path in named_files:
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"redis.tls.{name}: cannot read {path}")


def _check_validation(settings: Settings) -> None:
    validation = settings.validation
    if validation.disabled and not validation.enabled:
        raise ConfigError(
            "validation.disabled: refused: registry:2 would then accept layers naming any URL and indexes whose manifests "
            "are missing; allow URLs with validation.manifests.urls.allow and choose validation.manifests.indexes.platforms instead"
        )
    urls = validation.manifests.urls
    for name, patterns in (("allow", urls.allow), ("deny", urls.deny)):
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as error:
                raise ConfigError(f"validation.manifests.urls.{name}.{index}: not a regular expression: {error}") from None


def _check_proxy(settings: Settings) -> None:
    ca_file = settings.dockyard.proxy.ca_file
    if ca_file and not os.access(ca_file, os.R_OK):
        raise ConfigError(f"dockyard.proxy.ca_file: cannot read {ca_file}")
    if ca_file and settings.proxy is None:
        raise ConfigError("dockyard.proxy.ca_file: set without a proxy section, whose upstream it verifies")
    if settings.dockyard.proxy.sync and settings.proxy is None:
        raise ConfigError("dockyard.proxy.sync: set without a proxy section, whose upstream it syncs from")
    _check_sync("dockyard.proxy.sync", settings.dockyard.proxy.sync)


def _check_sync(key: str, entries: Sequence[MirrorSync]) -> None:
    repositories: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not entry.tags or not all(entry.tags):
            raise ConfigError(f"{key}.{index}.tags: expected tag globs, such as latest or '3.*'")
        if entry.repository in repositories:
            # Each repository's last run is kept under its name: list all its tags in one entry.
            raise ConfigError(f"{key}.{index}.repository: {entry.repository!r} is also {key}.{repositories[entry.repository]}'s; give it one entry")
        repositories[entry.repository] = index


def _check_mirrors(settings: Settings) -> None:
    mirrors = settings.dockyard.mirrors
    if mirrors and settings.proxy is not None:
        raise ConfigError("dockyard.mirrors: set with a proxy section, which mirrors the whole registry; move its upstream into dockyard.mirrors")
    prefixes: dict[str, int] = {}
    for index, mirror in enumerate(mirrors):
        key = f"dockyard.mirrors.{index}"
        if mirror.password and mirror.password_file:
            raise ConfigError(f"{key}: password and password_file both set; keep one")
        for name, path in (("password_file", mirror.password_file), ("ca_file", mirror.ca_file)):
            if path and not os.access(path, os.R_OK):
                raise ConfigError(f"{key}.{name}: cannot read {path}")
        prefix = mirror.prefix.removesuffix("/")
        for other, other_index in prefixes.items():
            # One repository would belong to both: which upstream it came from would depend on the order.
            if f"{prefix}/".startswith(f"{other}/") or f"{other}/".startswith(f"{prefix}/"):
                raise ConfigError(f"{key}.prefix: {prefix!r} overlaps dockyard.mirrors.{other_index}.prefix {other!r}")
        prefixes[prefix] = index
        _check_sync(f"{key}.sync", mirror.sync)


def _check_events(settings: Settings) -> None:
    names = [endpoint.name for endpoint in settings.notifications.endpoints]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(f"notifications.endpoints.{index}.name: {name!r} names two endpoints; each keeps its own backlog by name")
    for index, options in enumerate(settings.dockyard.events.endpoints):
        key = f"dockyard.events.endpoints.{index}"
        if options.name not in names:
            raise ConfigError(f"{key}.name: no endpoint of notifications.endpoints is named {options.name!r}")
        if options.secret_file and not os.access(options.secret_file, os.R_OK):
            raise ConfigError(f"{key}.secret_file: cannot read {options.secret_file}")


def _check_ldap(settings: Settings) -> None:
    ldap = settings.dockyard.ldap
    if ldap is None:
        return
    if ldap.bind_password and ldap.bind_password_file:
        raise ConfigError("dockyard.ldap: bind_password and bind_password_file both set; keep one")
    if ldap.start_tls and ldap.url.startswith("ldaps://"):
        raise ConfigError("dockyard.ldap.start_tls: set with an ldaps:// url, which is TLS from the start; use ldap:// or drop start_tls")
    for name, path in (("bind_password_file", ldap.bind_password_file), ("ca_file", ldap.ca_file)):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"dockyard.ldap.{name}: cannot read {path}")


def _check_unbuilt(settings: Settings) -> None:
    """Sections that change what the registry does but are not built yet: refused, never ignored."""
    if settings.compatibility.schema1.enabled:
        raise ConfigError(
            "compatibility.schema1.enabled: refused: schema1 manifests are not served, so pushes registry:2 accepts would be refused"
        )
    if settings.auth.token is not None and settings.auth.token.autoredirect:
        raise ConfigError(
            "auth.token.autoredirect: refused: the token realm would be built from each request's Host header; "
            "set auth.token.realm to the token service's URL"
        )


def check(settings: Settings, named: Named) -> None:
    """Raise :class:`ConfigError` for the first thing ``settings`` cannot serve."""
    _check_kinds(settings, named)
    _check_tls(settings, named)
    _check_letsencrypt(settings, named)
    _check_serving(settings, named)
    _check_validation(settings)
    _check_proxy(settings)
    _check_mirrors(settings)
    _check_events(settings)
    _check_ldap(settings)
    _check_unbuilt(settings)


def notices(settings: Settings) -> list[str]:
    """Sections read but not acted on, and settings that accept less checked pushes."""
    said = []
    if settings.validation.manifests.indexes.platforms == "none":
        said.append("validation.manifests.indexes.platforms: none: an index is accepted with its manifests missing")
    for name, service in (("bugsnag", "Bugsnag"), ("newrelic", "New Relic")):
        if getattr(settings.reporting, name) is not None:
            said.append(f"reporting.{name}: nothing is reported to {service}, ignored")
    ldap = settings.dockyard.ldap
    if ldap is not None and ldap.url.startswith("ldap://") and not ldap.start_tls:
        said.append("dockyard.ldap: ldap:// without start_tls: passwords cross the network in clear; use ldaps:// or start_tls")
    return said + _tls_notices(settings)



def _tls_notices(settings: Settings) -> list[str]:
    """Where dockyard serves stricter TLS than the file asks for, or where the file asks what Go ignores too."""
    tls, said = settings.http.tls, []
    if policy.TLS_VERSIONS[tls.minimumtls] < policy.TLS_VERSIONS[policy.FLOOR]:
        said.append(f"http.tls.minimumtls: {tls.minimumtls} raised to {policy.FLOOR}: dockyard serves no older TLS")
    if tls.ciphersuites and tls.minimumtls == "tls1.3":
        said.append("http.tls.ciphersuites: ignored with minimumtls tls1.3, as registry:2 does: TLS 1.3 suites are not configurable")
    elif policy.names_no_tls12_suite(tls.ciphersuites):
        said.append("http.tls.ciphersuites: names no TLS 1.2 suite, so TLS 1.2 is refused, as registry:2 does (it finds no suite for it)")
    elif any(name in policy.TLS13_SUITES for name in tls.ciphersuites):
        said.append(f"http.tls.ciphersuites: TLS 1.3 suites are not configurable, in registry:2's Go neither: {', '.join(policy.TLS13_SUITES)} all stay on")
    return said
