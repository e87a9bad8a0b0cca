"""The settings tree: registry:2's configuration (``version: 0.1``) and dockyard's own
``dockyard:`` section, as frozen dataclasses. Field metadata carries what the readers
check (``choices``, ``minimum``, ``maximum``, ``required``, ``check``)."""

from __future__ import annotations

import pathlib
import urllib.parse
from dataclasses import dataclass, field
from typing import ClassVar

from dockyard.config.events import EventDelivery
from dockyard.config.fields import ByteSize as ByteSize  # re-exported: the readers take them from here
from dockyard.config.fields import Duration as Duration
from dockyard.config.fields import Flag as Flag
from dockyard.config.fields import _flagged, _listed, _one_of, _plain, _required, _section, _within
from dockyard.config.value_checks import (
    https_url_problem,
    metrics_path_problem,
    optional_address_problem,
    prefix_problem,
    private_acl_problem,
    public_url_problem,
    repository_name_problem,
)
from dockyard.reference import NAME_PATTERN
from dockyard.tls.policy import CLIENT_AUTH_MODES, FLOOR, TLS_VERSIONS

SERVE_ROOT = "./data"
# What ``dockyard serve`` uses when no file is given: its own defaults.
SERVE_DEFAULTS: dict[str, object] = {
    "version": "0.1",
    "storage": {"filesystem": {"rootdirectory": SERVE_ROOT}, "delete": {"enabled": True}},
    # registry:2 stops at once on SIGTERM and checks no storage unless told; dockyard
    # drains for 30s and checks its root (both apply only with a debug address). Its
    # Location headers are relative: right behind any proxy, where registry:2's absolute ones need http.host.
    "http": {"draintimeout": "30s", "relativeurls": True},
    "health": {"storagedriver": {"enabled": True}},
    # Without a file, HTTPS with the generated CA; a registry:2 file decides by http.tls.
    "dockyard": {"insecure_http": False},
}
LOG_LEVELS = {"error": "error", "warn": "warning", "info": "info", "debug": "debug"}  # registry:2's, Python's




def _log_field(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return name, value


# ---- the schema ----


@dataclass(frozen=True)
class AccessLog:
    disabled: bool = _plain(False, Flag("--no-access-log", "Log no line per request (registry:2's log.accesslog.disabled); the audit log stays."))


@dataclass(frozen=True)
class Log:
    level: str = _one_of("info", tuple(LOG_LEVELS), Flag(
        "--log-level", choices=("debug", "info", "warning", "error"), value=lambda level: "warn" if level == "warning" else level,
    ))
    formatter: str = _one_of("text", ("text", "json", "logstash"), Flag(
        "--log-format", "text, or one JSON object per line (registry:2's log.formatter; its logstash is json here).", choices=("text", "json"),
    ))
    fields: dict[str, object] = field(default_factory=dict, metadata=_flagged(Flag(
        "--log-field", "Add this field to every log record (repeatable; registry:2's log.fields).",
        multiple=True, metavar="KEY=VALUE", value=lambda items: dict(_log_field(item) for item in items),
    )))
    accesslog: AccessLog = _section(AccessLog)

    @property
    def python_level(self) -> str:
        return LOG_LEVELS[self.level]

    @property
    def output_format(self) -> str:
        return "text" if self.formatter == "text" else "json"  # registry:2's logstash writes JSON objects too


@dataclass(frozen=True)
class Filesystem:
    FLAG_DEFAULTS: ClassVar[dict[str, object]] = {"rootdirectory": SERVE_ROOT}  # when options alone make the section
    rootdirectory: str = _plain("/var/lib/registry", Flag(
        "--root", "Storage root for the filesystem driver (registry:2's rootdirectory layout); ignored for another driver.",
    ))
    maxthreads: int = _within(100, 25)  # the threads that do blocking file I/O; registry:2's minimum and default


@dataclass(frozen=True)
class InMemory:
    pass


@dataclass(frozen=True)
class S3:
    region: str = _required()
    bucket: str = _required()
    regionendpoint: str = ""
    forcepathstyle: bool = False
    accesskey: str = ""
    secretkey: str = ""
    rootdirectory: str = ""
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    chunksize: int = _within(10 << 20, 5 << 20)
    multipartcopychunksize: int = _within(32 << 20, 5 << 20)
    multipartcopymaxconcurrency: int = _within(100, 1)
    multipartcopythresholdsize: int = _within(32 << 20, 0)
    storageclass: str = _one_of("STANDARD", ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "INTELLIGENT_TIERING", "NONE"))
    encrypt: bool = False
    keyid: str = ""
    objectacl: str = field(default="private", metadata={"check": private_acl_problem})
    # Read and kept, as registry:2 does, but botocore has no such levels: its own logging follows log.level.
    loglevel: str = _one_of("off", (
        "off", "debug", "debugwithsigning", "debugwithhttpbody", "debugwithrequestretries", "debugwithrequesterrors", "debugwitheventstreambody",
    ))


@dataclass(frozen=True)
class Delete:
    enabled: bool = _plain(False, Flag("--no-delete", "Refuse every DELETE with 405 UNSUPPORTED.", inverted=True))


@dataclass(frozen=True)
class Redirect:
    disable: bool = False


@dataclass(frozen=True)
class UploadPurging:
    enabled: bool = True
    age: Duration = _within(168 * 3600.0, 0)
    interval: Duration = _within(24 * 3600.0, 0)
    dryrun: bool = False


@dataclass(frozen=True)
class ReadOnly:
    enabled: bool = _plain(False, Flag("--read-only", "Refuse every write (push, upload, delete) with 405 UNSUPPORTED; pulls still work."))


@dataclass(frozen=True)
class Maintenance:
    uploadpurging: UploadPurging = _section(UploadPurging)
    readonly: ReadOnly = _section(ReadOnly)


@dataclass(frozen=True)
class Cache:
    blobdescriptor: str = _one_of("", ("", "inmemory", "redis"))
    layerinfo: str = _one_of("", ("", "inmemory", "redis"))  # registry:2's old name of blobdescriptor, read when that is unset

    @property
    def kind(self) -> str:
        return self.blobdescriptor or self.layerinfo


@dataclass(frozen=True)
class Tag:
    # registry:3's limit on concurrent tag lookups (when a manifest is deleted, every tag is read to find those naming
    # it); dockyard reads a repository's tags in one listing, so any limit is met: checked, nothing to apply.
    concurrencylimit: int = _within(0, 0)


@dataclass(frozen=True)
class Storage:
    KINDS: ClassVar[tuple[str, ...]] = ("filesystem", "inmemory", "s3")
    filesystem: Filesystem | None = None
    inmemory: InMemory | None = None
    s3: S3 | None = None
    delete: Delete = _section(Delete)
    redirect: Redirect = _section(Redirect)
    maintenance: Maintenance = _section(Maintenance)
    cache: Cache = _section(Cache)
    tag: Tag = _section(Tag)

    @property
    def kind(self) -> str:
        return next(kind for kind in self.KINDS if getattr(self, kind) is not None)

    @property
    def root(self) -> pathlib.Path:
        return pathlib.Path(self.filesystem.rootdirectory if self.filesystem is not None else SERVE_ROOT)


@dataclass(frozen=True)
class LetsEncrypt:
    """Certificates from an ACME server, renewed while serving (dockyard.tls.acme)."""

    cachefile: str = _required()  # the account key, the certificate and its key
    email: str = ""  # the account's contact
    hosts: list[str] = _listed()  # the names certificates are ordered for; no other
    directoryurl: str = field(default="https://acme-v02.api.letsencrypt.org/directory", metadata={"check": https_url_problem})


@dataclass(frozen=True)
class Tls:
    certificate: str = _plain("", Flag("--tls-cert", "Serve this PEM certificate (chain after it) instead of a generated one.", existing_file=True))
    key: str = _plain("", Flag("--tls-key", "The PEM key of --tls-cert.", existing_file=True))
    clientcas: list[str] = _listed(Flag(
        "--tls-client-ca", "Require client certificates issued by this CA (mutual TLS).", existing_file=True, value=lambda path: [path],
    ))
    letsencrypt: LetsEncrypt | None = None
    # None: registry:2's default, require-and-verify-client-cert; set, it needs clientcas.
    clientauth: str | None = field(default=None, metadata={"choices": CLIENT_AUTH_MODES})
    minimumtls: str = _one_of(FLOOR, tuple(TLS_VERSIONS))
    ciphersuites: list[str] = _listed()


@dataclass(frozen=True)
class Prometheus:
    enabled: bool = _plain(False, Flag("--metrics", "Serve Prometheus metrics on the debug server (needs --debug-addr)."))
    path: str = field(
        default="/metrics", metadata={"check": metrics_path_problem, **_flagged(Flag("--metrics-path", "Where on the debug server the metrics are."))},
    )


@dataclass(frozen=True)
class Debug:
    addr: str = field(default="", metadata={"check": optional_address_problem, **_flagged(Flag(
        "--debug-addr", "Serve /debug/health (and --metrics) on this HOST:PORT, apart from the registry (registry:2's http.debug.addr).",
    ))})
    prometheus: Prometheus = _section(Prometheus)


@dataclass(frozen=True)
class Http:
    # checked with net: HOST:PORT for tcp, a path for unix
    addr: str = _plain(":5000", Flag("--addr", "Address to listen on: HOST:PORT, :PORT (every interface) or [IPv6]:PORT."))
    net: str = _one_of("tcp", ("tcp", "unix"))
    host: str = field(default="", metadata={"check": public_url_problem, **_flagged(Flag(
        "--public-url",
        "The URL clients use (e.g. https://registry.example.com); written in the token realm, over any X-Forwarded-* header (registry:2's http.host).",
        metavar="URL",
    ))})
    prefix: str = field(default="", metadata={"check": prefix_problem, **_flagged(Flag(
        "--prefix", "Serve the registry under this path, e.g. /registry (registry:2's http.prefix).", metavar="PATH",
    ))})
    secret: str = ""  # not an option: a secret does not belong on a command line
    relativeurls: bool = False
    draintimeout: Duration = _within(0.0, 0, flag=Flag(
        "--drain-timeout", "On SIGTERM, stop accepting and let running requests (uploads) finish for up to this many seconds; 0 stops at once.",
    ))
    headers: dict[str, list[str]] = field(default_factory=dict)
    tls: Tls = _section(Tls)
    debug: Debug = _section(Debug)


@dataclass(frozen=True)
class Htpasswd:
    FLAG_DEFAULTS: ClassVar[dict[str, object]] = {"realm": "Dockyard"}
    realm: str = _required(Flag("--auth-realm", "The realm of Basic authentication."))
    path: str = _required(Flag("--htpasswd", "Require a user and password from this htpasswd file (bcrypt, apr1, SHA-1 or crypt).", existing_file=True))


@dataclass(frozen=True)
class Token:
    FLAG_DEFAULTS: ClassVar[dict[str, object]] = {"service": "dockyard", "issuer": "dockyard"}
    realm: str = _required(Flag("--token-realm", "An external token service's URL (with --token-rootcertbundle or --token-jwks)."))
    service: str = _required()  # the built-in service's are dockyard.token_service and token_issuer
    issuer: str = _required()
    rootcertbundle: str = _plain("", Flag("--token-rootcertbundle", "Certificates whose keys sign an external issuer's tokens.", existing_file=True))
    jwks: str = _plain("", Flag("--token-jwks", "A JWKS file of an external issuer's keys.", existing_file=True))
    autoredirect: bool = False  # refused (see checks): the realm would come from the request's Host header
    autoredirectpath: str = "/auth/token"


@dataclass(frozen=True)
class Silly:
    realm: str = ""
    service: str = ""


@dataclass(frozen=True)
class Auth:
    KINDS: ClassVar[tuple[str, ...]] = ("htpasswd", "token", "silly")
    htpasswd: Htpasswd | None = None
    token: Token | None = None
    silly: Silly | None = None


@dataclass(frozen=True)
class StorageDriverHealth:
    enabled: bool = _plain(False, Flag(
        "--storage-health/--no-storage-health", "Check the storage root for /debug/health (registry:2's health.storagedriver.enabled).",
    ))
    interval: Duration = _within(10.0, 0, flag=Flag("--storage-health-interval", "Seconds between storage checks."))
    threshold: int = _within(1, 1, flag=Flag("--storage-health-threshold", "Failed storage checks in a row before /debug/health answers 503."))

    @property
    def every(self) -> float:
        return self.interval or 10.0  # registry:2: 0 is its default, 10s


@dataclass(frozen=True)
class Health:
    storagedriver: StorageDriverHealth = _section(StorageDriverHealth)


@dataclass(frozen=True)
class Urls:
    """Regular expressions (searched, as Go's MatchString does) for the URLs of pushed layers; as in
    registry:2, with neither set no layer may name URLs (the OCI specs leave this to the registry)."""

    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Platform:
    architecture: str = _required()
    os: str = _required()


@dataclass(frozen=True)
class Indexes:
    """Which manifests of a pushed index must be in the repository: all, none, or those of ``platformlist``'s
    platforms (all of them when the list is empty, as in registry:2)."""

    platforms: str = _one_of("all", ("all", "none", "list"))
    platformlist: list[Platform] = field(default_factory=list)


@dataclass(frozen=True)
class Manifests:
    urls: Urls = _section(Urls)
    indexes: Indexes = _section(Indexes)


@dataclass(frozen=True)
class Validation:
    enabled: bool = False  # registry:2's old switch: true keeps the checks on whatever disabled says
    disabled: bool = False  # refused (see checks): it drops the URL and index checks
    manifests: Manifests = _section(Manifests)


@dataclass(frozen=True)
class Catalog:
    maxentries: int = _within(1000, 1)  # the largest page of /v2/_catalog, and the page without n


@dataclass(frozen=True)
class Tags:
    # registry:3.1's clamp on n; without n it lists every tag, dockyard pages at this size (as with catalog.maxentries)
    maxtags: int = _within(10_000, 1)  # the largest page of /v2/<name>/tags/list, and the page without n


@dataclass(frozen=True)
class Ignore:
    mediatypes: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Endpoint:
    name: str = _required()
    url: str = _required()
    disabled: bool = False
    headers: dict[str, list[str]] = field(default_factory=dict)
    timeout: Duration = _within(1.0, 0)
    threshold: int = _within(10, 1)
    backoff: Duration = _within(1.0, 0)
    ignoredmediatypes: list[str] = field(default_factory=list)
    ignore: Ignore = _section(Ignore)


@dataclass(frozen=True)
class Events:
    includereferences: bool = False


@dataclass(frozen=True)
class Notifications:
    events: Events = _section(Events)
    endpoints: list[Endpoint] = field(default_factory=list)


@dataclass(frozen=True)
class RedisPool:
    """registry:2.8's pool; registry:3 names these maxidleconns, poolsize and connmaxidletime."""

    maxidle: int = _within(0, 0)
    maxactive: int = _within(0, 0)
    idletimeout: Duration = _within(0.0, 0)


@dataclass(frozen=True)
class RedisTls:
    enabled: bool = False  # TLS with the system's CAs; certificate, key or rootcas turn it on too (registry:3)
    certificate: str = ""  # a client certificate (with key), for mutual TLS
    key: str = ""
    rootcas: list[str] = field(default_factory=list)  # the CAs the server's certificate is checked against
    clientcas: list[str] = field(default_factory=list)  # registry:3.0's name for rootcas

    @property
    def on(self) -> bool:
        return self.enabled or bool(self.certificate or self.key or self.rootcas or self.clientcas)

    @property
    def cas(self) -> list[str]:
        return self.rootcas + self.clientcas


@dataclass(frozen=True)
class Redis:
    """registry:2.8's layout (``addr``, ``pool``) or registry:3's (``addrs``, ``poolsize``, ...); 0 keeps the client's default."""

    addr: str = ""
    addrs: list[str] = field(default_factory=list)  # registry:3; several name a cluster or sentinels, refused (see checks)
    mastername: str = ""  # registry:3's sentinel master: refused
    clientname: str = ""
    username: str = ""
    password: str = ""
    db: int = _within(0, 0)
    dialtimeout: Duration = _within(0.0, 0)
    readtimeout: Duration = _within(0.0, 0)
    writetimeout: Duration = _within(0.0, 0)
    poolsize: int = _within(0, 0)
    maxidleconns: int = _within(0, 0)
    connmaxidletime: Duration = _within(0.0, 0)
    pool: RedisPool = _section(RedisPool)
    tls: RedisTls = _section(RedisTls)

    @property
    def address(self) -> str:
        return self.addr or (self.addrs[0] if self.addrs else "")

    @property
    def max_connections(self) -> int:
        return self.poolsize or self.pool.maxactive

    @property
    def max_idle(self) -> int:
        return self.maxidleconns or self.pool.maxidle

    @property
    def idle_timeout(self) -> float:
        return self.connmaxidletime or self.pool.idletimeout


def _remote_url_problem(value: str) -> str | None:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        return f"expected the upstream's http:// or https:// URL, got {value!r}"
    return None


@dataclass(frozen=True)
class Proxy:
    """registry:2's pull-through cache: the whole registry mirrors ``remoteurl``, read-only."""

    remoteurl: str = field(default="", metadata={"required": True, "check": _remote_url_problem})
    username: str = ""
    password: str = ""
    ttl: Duration = _within(168 * 3600.0, 0)  # registry:3's: a cached image not pulled for this long goes; 0 keeps it


def _mirrorprefix_problem(value: str) -> str | None:
    if not NAME_PATTERN.fullmatch(value.removesuffix("/")):
        return f"expected the start of repository names, such as docker.io or ghcr.io, got {value!r}"
    return None


@dataclass(frozen=True)
class MirrorSync:
    """Tags of an upstream repository fetched into the cache every ``interval``, ahead of any pull."""

    repository: str = field(default="", metadata={"required": True, "check": repository_name_problem})  # as the upstream names it
    tags: list[str] = field(default_factory=list, metadata={"required": True})  # globs (fnmatch), such as 3.* or latest
    interval: Duration = _within(3600.0, 1.0)


@dataclass(frozen=True)
class Mirror:
    """One upstream cached under a prefix: ``<prefix>/<name>`` here is ``<name>`` there, read-only;
    the keys of registry:2's ``proxy`` section, and of ``dockyard.proxy``, for that upstream."""

    prefix: str = field(default="", metadata={"required": True, "check": _mirrorprefix_problem})
    remoteurl: str = field(default="", metadata={"required": True, "check": _remote_url_problem})
    username: str = ""
    password: str = ""
    password_file: str = ""  # the password, read at start (a trailing newline dropped), where it is not in this file
    ttl: Duration = _within(168 * 3600.0, 0)
    ca_file: str = ""
    tag_check_interval: Duration = _within(60.0, 0)
    sync: list[MirrorSync] = field(default_factory=list)


@dataclass(frozen=True)
class Bugsnag:
    apikey: str = _required()
    releasestage: str = ""
    endpoint: str = ""


@dataclass(frozen=True)
class NewRelic:
    licensekey: str = _required()
    name: str = ""
    verbose: bool = False


@dataclass(frozen=True)
class Reporting:
    bugsnag: Bugsnag | None = None
    newrelic: NewRelic | None = None


@dataclass(frozen=True)
class Schema1:
    signingkeyfile: str = ""
    enabled: bool = False


@dataclass(frozen=True)
class Compatibility:
    schema1: Schema1 = _section(Schema1)


@dataclass(frozen=True)
class Login:
    max_failures: int = _within(10, 1, flag=Flag("--login-max-failures", "Failed logins per address or user before 429."))
    failure_window: Duration = _within(60.0, 0.1, flag=Flag("--login-failure-window", "Seconds a failed login counts."))


def _ldap_url_problem(value: str) -> str | None:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("ldap", "ldaps") or not parsed.hostname or parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        return f"expected ldap://HOST[:PORT] or ldaps://HOST[:PORT], got {value!r}"
    return None


def _user_filter_problem(value: str) -> str | None:
    return None if "{username}" in value else f"expected a filter naming {{username}}, such as (uid={{username}}), got {value!r}"


@dataclass(frozen=True)
class Ldap:
    """Users of an LDAP directory, beside htpasswd's: a search as ``bind_dn`` finds the user's entry,
    a bind as that entry checks the password, and the groups found are the access policy's ``group:NAME``."""

    url: str = field(default="", metadata={"required": True, "check": _ldap_url_problem})
    start_tls: bool = False  # upgrade an ldap:// connection to TLS before binding
    ca_file: str = ""  # the CAs the directory's certificate is verified against (else the system's)
    bind_dn: str = ""  # the service account that searches; empty: anonymous searches
    bind_password: str = ""
    bind_password_file: str = ""  # the password, read at start (a trailing newline dropped), where it is not in this file
    user_base: str = _required()
    user_filter: str = field(default="(uid={username})", metadata={"check": _user_filter_problem})
    group_base: str = ""  # empty: no groups are looked up
    group_filter: str = "(member={dn})"  # {dn}: the user's entry, {username}: the name signed in with (memberUid)
    group_name_attribute: str = "cn"
    timeout: Duration = _within(5.0, 1.0)  # to connect, and for each answer
    pool_size: int = _within(4, 1, 64)  # connections kept open per worker, each used by one thread at a time
    page_size: int = _within(500, 1)  # group search results per page
    cache_ttl: Duration = _within(60.0, 0)  # how long a successful sign-in, and a user's groups, are reused


@dataclass(frozen=True)
class Gc:
    """Garbage collection run by the server (one worker at a time); ``interval: 0`` runs none."""

    interval: Duration = _within(0.0, 0)
    grace_period: Duration = _within(3600.0, 0)
    dry_run: bool = False
    delete_untagged: bool = False


@dataclass(frozen=True)
class Retention:
    """Applied by every collection to the repositories ``repositories`` (a glob) matches."""

    repositories: str = _required()
    keep_last: int | None = None  # the N most recently pushed tags stay, with those matching keep_tags
    keep_tags: list[str] = field(default_factory=list)
    untagged_older_than: Duration | None = None


@dataclass(frozen=True)
class Quota:
    """The blobs linked by the repositories ``repositories`` (a glob) matches, each counted once, stay within ``max_bytes``."""

    repositories: str = _required()
    max_bytes: ByteSize = field(default=ByteSize(0), metadata={"required": True, "minimum": 0})


@dataclass(frozen=True)
class ImmutableTags:
    """Tags matching ``tags`` (globs) in the repositories ``repositories`` (a glob) matches: once one
    exists it never moves to another manifest and is never deleted (see :mod:`dockyard.storage.immutable`)."""

    repositories: str = _required()
    tags: list[str] = field(default_factory=list, metadata={"required": True})


@dataclass(frozen=True)
class ProxyOptions:
    """What registry:2's ``proxy`` section cannot say."""

    ca_file: str = ""  # the CAs the upstream's certificate is verified against (else the system's)
    # registry:2 asks the upstream at every pull of a tag; a tag is served from the cache for this long after a check.
    tag_check_interval: Duration = _within(60.0, 0)
    sync: list[MirrorSync] = field(default_factory=list)  # of the proxy section's upstream


@dataclass(frozen=True)
class Dockyard:
    tls_dir: str | None = _plain(None, Flag("--tls-dir", "Where the generated CA and server certificate live.  [default: beside the root, ROOT-tls]"))
    tls_key_passphrase_file: str | None = _plain(None, Flag(
        "--tls-key-passphrase-file", "File holding the passphrase of --tls-key (or set DOCKYARD_TLS_KEY_PASSPHRASE).", existing_file=True,
    ))
    hostnames: list[str] = _listed(Flag(
        "--hostname", "A name or IP address clients use to reach the registry (repeatable); the generated certificate covers it.", multiple=True,
    ))
    # None: as registry:2 does, plain HTTP unless http.tls names a certificate.
    insecure_http: bool | None = _plain(None, Flag("--insecure-http", "Serve plain HTTP (for a TLS-terminating proxy in front)."))
    access_policy: str | None = _plain(None, Flag(
        "--access-policy", "YAML access policy: who may pull, push and delete where.  [default: every signed-in user may do everything]", existing_file=True,
    ))
    token_auth: bool = _plain(False, Flag("--token-auth", "Use Bearer tokens from the built-in token service (at /auth/token) instead of Basic."))
    token_service: str = _plain("dockyard", Flag("--token-service", "The service name the built-in token service issues tokens for (their audience)."))
    token_issuer: str = _plain("dockyard", Flag("--token-issuer", "The issuer the built-in token service names in its tokens."))
    workers: int = _within(0, 0, 64, flag=Flag("--workers", "Worker processes sharing the port; 0: one per usable CPU core (as registry:2 uses every core)."))
    login: Login = _section(Login)
    ldap: Ldap | None = None
    trusted_proxies: list[str] = _listed(Flag(  # CIDRs whose X-Forwarded-* are honoured
        "--trusted-proxy", "Honour X-Forwarded-Proto/-Host/-Port from this address or network (repeatable). None is trusted by default, not even loopback.",
        multiple=True, metavar="CIDR",
    ))
    gc: Gc = _section(Gc)
    retention: list[Retention] = field(default_factory=list)
    quotas: list[Quota] = field(default_factory=list)  # every rule matching a pushed-to repository must hold
    immutable_tags: list[ImmutableTags] = field(default_factory=list)
    ui: bool = _plain(True, Flag("--no-ui", "Serve no web page at / (only the API).", inverted=True))  # the web page at / (under http.prefix)
    # HTTP-01 challenges of http.tls.letsencrypt are answered here (HOST:PORT, port 80 for a public ACME server);
    # unset, TLS-ALPN-01 is answered on the serving port, as registry:2 does.
    acme_http_addr: str = field(default="", metadata={"check": optional_address_problem})
    header_timeout: Duration = _within(30.0, 0.001, flag=Flag(  # for a request line and headers, from their first byte
        "--header-timeout", "Close a connection whose request line and headers are not all in this many seconds after their first byte.",
    ))
    idle_timeout: Duration = _within(120.0, 0.001, flag=Flag(  # for a connection waiting for a request
        "--idle-timeout", "Close a connection that sends no request for this many seconds (after it opens or after a response); never during a request.",
    ))
    proxy: ProxyOptions = _section(ProxyOptions)
    # Upstreams cached under repository prefixes; every other repository is an ordinary, writable one.
    mirrors: list[Mirror] = field(default_factory=list)
    events: EventDelivery = _section(EventDelivery)  # beyond notifications: signatures, formats, the backlog's bounds


@dataclass(frozen=True)
class Settings:
    """The whole tree, as `load` builds it from the file, the variables and the options."""

    version: str = field(default="", metadata={"required": True, "choices": ("0.1",)})
    loglevel: str = _one_of("", ("", *LOG_LEVELS))  # registry:2's old name of log.level, read when that is unset (see load)
    log: Log = _section(Log)
    storage: Storage = field(default_factory=Storage, metadata=_flagged(Flag("--storage", "Storage driver.", choices=("filesystem", "inmemory"))))
    http: Http = _section(Http)
    auth: Auth = _section(Auth)
    health: Health = _section(Health)
    validation: Validation = _section(Validation)
    catalog: Catalog = _section(Catalog)
    tags: Tags = _section(Tags)
    notifications: Notifications = _section(Notifications)
    redis: Redis | None = None
    proxy: Proxy | None = None
    reporting: Reporting = _section(Reporting)
    compatibility: Compatibility = _section(Compatibility)
    dockyard: Dockyard = _section(Dockyard)

    @property
    def plain_http(self) -> bool:
        """``dockyard.insecure_http``, or as registry:2 decides: plain HTTP unless http.tls names a certificate or letsencrypt."""
        tls = self.http.tls
        return self.dockyard.insecure_http if self.dockyard.insecure_http is not None else not (tls.certificate or tls.letsencrypt)

    @property
    def redis_cache(self) -> Redis | None:
        """The Redis that caches blob descriptors and tags, as registry:2 uses it: only with ``blobdescriptor: redis``
        (inmemory: each replica would cache on its own; dockyard reads storage instead)."""
        return self.redis if self.storage.cache.kind == "redis" else None

