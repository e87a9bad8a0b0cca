"""registry:2's configuration file (``version: 0.1``) and ``REGISTRY_*`` variables,
read into typed settings, and turned into ``dockyard serve``'s arguments.

The file is read as registry:2 (CNCF distribution) reads it, then every ``REGISTRY_*``
variable overrides one key, in sorted order: ``REGISTRY_HTTP_ADDR=:5001`` sets
``http.addr``; the value is read as a YAML scalar (``true``, ``5000``, ``/data``).
A variable naming a whole section replaces it, so ``REGISTRY_STORAGE=s3`` or
``REGISTRY_AUTH=htpasswd`` selects a driver or kind in place of the file's (and, as in
registry:2, drops the rest of that section). Where dockyard differs from registry:2:

- a list item is set with ``_N`` (``REGISTRY_HTTP_TLS_CLIENTCAS_0``); the variables of a
  list replace the file's whole list, from ``_0`` on without gaps (registry:2 ignores them);
- a variable that matches no key (``REGISTRY_AUTH_FILE``, which podman and skopeo read)
  is ignored with a warning, where registry:2 would add it to the configuration;
- an unknown key in the file is ignored with a warning naming its dotted path;
- a plain integer where a duration goes is nanoseconds, as in registry:2, with a warning.

Durations are Go's (``300s``, ``10m``, ``1h30m``) and are kept as seconds. Dockyard's
own settings live under ``dockyard:``. Every error is a :class:`ConfigError` whose
one-line message names the dotted key (or the variable, or the file) at fault.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from dockyard.address import Address

Duration = typing.NewType("Duration", float)
"""Seconds; written in the file as a Go duration."""

ENV_PREFIX = "REGISTRY_"
MASK = "********"
SECRET_KEYS = frozenset({"password", "secret", "secretkey", "apikey", "licensekey", "authorization"})
SERVE_ROOT = "./data"
# What ``dockyard serve`` uses when no file is given: its own defaults.
SERVE_DEFAULTS: dict[str, object] = {
    "version": "0.1",
    "storage": {"filesystem": {"rootdirectory": SERVE_ROOT}, "delete": {"enabled": True}},
    # registry:2 stops at once on SIGTERM and checks no storage unless told; dockyard
    # drains for 30s and checks its root (both apply only with a debug address).
    "http": {"draintimeout": "30s"},
    "health": {"storagedriver": {"enabled": True}},
    # Without a file, HTTPS with the generated CA; a registry:2 file decides by http.tls.
    "dockyard": {"insecure_http": False},
}
# ``serve`` arguments set only by the file or REGISTRY_* variables: a secret does not belong on a command line.
CONFIG_ONLY_ARGUMENTS = ("http_secret", "redis", "gc", "retention", "upload_purging", "s3", "redirect")
SERVE_LOG_LEVELS = {"error": "error", "warn": "warning", "info": "info", "debug": "debug"}
REGISTRY2_UNSUPPORTED = {
    "loglevel": "deprecated in registry:2; write log.level",
    "log.hooks": "mail hooks",
    "middleware": "storage, registry and repository middleware",
    "storage.tag": "tag lookup concurrency",
    "http.tls.letsencrypt": "certificates from Let's Encrypt",
    "http.tls.minimumtls": "dockyard always requires TLS 1.2 or later",
    "http.tls.ciphersuites": "dockyard picks forward-secret AEAD suites itself",
    "http.http2": "turning HTTP/2 off",
    "health.file": "file health checks",
    "health.http": "HTTP health checks",
    "health.tcp": "TCP health checks",
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NANOSECONDS_PER = (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9))


class ConfigError(Exception):
    """A one-line message naming the dotted key, the variable or the file at fault."""


def _one_of(default: str, allowed: tuple[str, ...]) -> Any:
    return field(default=default, metadata={"choices": allowed})


def _within(default: float, minimum: float, maximum: float | None = None) -> Any:
    return field(default=default, metadata={"minimum": minimum, "maximum": maximum})


def _required() -> Any:
    return field(default="", metadata={"required": True})


def _section(cls: type) -> Any:
    return field(default_factory=cls)


def _address_problem(value: str) -> str | None:
    try:
        Address.parse(value)
    except ValueError:
        return "expected HOST:PORT"
    return None


# ---- the schema ----


@dataclass(frozen=True)
class AccessLog:
    disabled: bool = False


@dataclass(frozen=True)
class Log:
    level: str = _one_of("info", ("error", "warn", "info", "debug"))
    formatter: str = _one_of("text", ("text", "json", "logstash"))
    fields: dict[str, object] = field(default_factory=dict)
    accesslog: AccessLog = _section(AccessLog)


@dataclass(frozen=True)
class Filesystem:
    rootdirectory: str = "/var/lib/registry"
    maxthreads: int = _within(100, 25)


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
    loglevel: str = _one_of("off", ("off", "debug", "debugwithsigning", "debugwithhttpbody", "debugwithrequestretries", "debugwithrequesterrors", "debugwitheventstreambody"))


@dataclass(frozen=True)
class Delete:
    enabled: bool = False


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
    enabled: bool = False


@dataclass(frozen=True)
class Maintenance:
    uploadpurging: UploadPurging = _section(UploadPurging)
    readonly: ReadOnly = _section(ReadOnly)


@dataclass(frozen=True)
class Cache:
    blobdescriptor: str = _one_of("", ("", "inmemory", "redis"))


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


@dataclass(frozen=True)
class Tls:
    certificate: str = ""
    key: str = ""
    clientcas: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Prometheus:
    enabled: bool = False
    path: str = "/metrics"


@dataclass(frozen=True)
class Debug:
    addr: str = ""
    prometheus: Prometheus = _section(Prometheus)


@dataclass(frozen=True)
class Http:
    addr: str = field(default=":5000", metadata={"check": _address_problem})
    net: str = _one_of("tcp", ("tcp", "unix"))
    host: str = ""
    prefix: str = ""
    secret: str = ""
    relativeurls: bool = False
    draintimeout: Duration = _within(0.0, 0)
    headers: dict[str, list[str]] = field(default_factory=dict)
    tls: Tls = _section(Tls)
    debug: Debug = _section(Debug)


@dataclass(frozen=True)
class Htpasswd:
    realm: str = _required()
    path: str = _required()


@dataclass(frozen=True)
class Token:
    realm: str = _required()
    service: str = _required()
    issuer: str = _required()
    rootcertbundle: str = ""
    jwks: str = ""
    autoredirect: bool = False


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
    enabled: bool = False
    interval: Duration = _within(10.0, 0)
    threshold: int = _within(1, 1)


@dataclass(frozen=True)
class Health:
    storagedriver: StorageDriverHealth = _section(StorageDriverHealth)


@dataclass(frozen=True)
class Urls:
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Platform:
    architecture: str = _required()
    os: str = _required()


@dataclass(frozen=True)
class Indexes:
    platforms: str = _one_of("all", ("all", "none", "list"))
    platformlist: list[Platform] = field(default_factory=list)


@dataclass(frozen=True)
class Manifests:
    urls: Urls = _section(Urls)
    indexes: Indexes = _section(Indexes)


@dataclass(frozen=True)
class Validation:
    disabled: bool = False
    manifests: Manifests = _section(Manifests)


@dataclass(frozen=True)
class Catalog:
    maxentries: int = _within(1000, 1)


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
    maxidle: int = _within(16, 0)
    maxactive: int = _within(64, 0)
    idletimeout: Duration = _within(300.0, 0)


@dataclass(frozen=True)
class RedisTls:
    enabled: bool = False


@dataclass(frozen=True)
class Redis:
    addr: str = _required()
    password: str = ""
    db: int = _within(0, 0)
    dialtimeout: Duration = _within(0.0, 0)
    readtimeout: Duration = _within(0.0, 0)
    writetimeout: Duration = _within(0.0, 0)
    pool: RedisPool = _section(RedisPool)
    tls: RedisTls = _section(RedisTls)


@dataclass(frozen=True)
class Proxy:
    remoteurl: str = _required()
    username: str = ""
    password: str = ""
    ttl: Duration = _within(168 * 3600.0, 0)


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
    max_failures: int = _within(10, 1)
    failure_window: Duration = _within(60.0, 0.1)


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
class Dockyard:
    tls_dir: str | None = None
    hostnames: list[str] = field(default_factory=list)
    # None: as registry:2 does, plain HTTP unless http.tls names a certificate.
    insecure_http: bool | None = None
    access_policy: str | None = None
    token_auth: bool = False
    workers: int = _within(1, 1, 64)
    login: Login = _section(Login)
    trusted_proxies: list[str] = field(default_factory=list)  # CIDRs whose X-Forwarded-* are honoured
    gc: Gc = _section(Gc)
    retention: list[Retention] = field(default_factory=list)
    ui: bool = True  # the web page at / (under http.prefix)
    header_timeout: Duration = _within(30.0, 0.001)  # for a request line and headers, from their first byte
    idle_timeout: Duration = _within(120.0, 0.001)  # for a connection waiting for a request


@dataclass(frozen=True)
class Config:
    version: str = field(default="", metadata={"required": True, "choices": ("0.1",)})
    log: Log = _section(Log)
    storage: Storage = _section(Storage)
    http: Http = _section(Http)
    auth: Auth = _section(Auth)
    health: Health = _section(Health)
    validation: Validation = _section(Validation)
    catalog: Catalog = _section(Catalog)
    notifications: Notifications = _section(Notifications)
    redis: Redis | None = None
    proxy: Proxy | None = None
    reporting: Reporting = _section(Reporting)
    compatibility: Compatibility = _section(Compatibility)
    dockyard: Dockyard = _section(Dockyard)


@dataclass(frozen=True)
class Loaded:
    config: Config
    warnings: tuple[str, ...]


# ---- durations ----


def parse_duration(text: str) -> float:
    """Seconds in a Go duration: ``300s``, ``1h30m``, ``1.5s``, ``500ms``, ``0``."""
    if text in ("0", "+0"):
        return 0.0
    body = text.removeprefix("+")
    if not body or body.startswith("-") or _DURATION_PART.sub("", body):
        raise ValueError(text)
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(body))


def format_duration(seconds: float) -> str:
    """The shortest Go duration for ``seconds``: ``168h``, ``1h30m``, ``10s``, ``500ms``."""
    nanoseconds = round(seconds * 10**9)
    if nanoseconds == 0:
        return "0s"
    if nanoseconds % 10**9:
        for unit, size in (("ms", 10**6), ("us", 10**3), ("ns", 1)):
            if nanoseconds % size == 0:
                return f"{nanoseconds // size}{unit}"
    parts = []
    for unit, size in _NANOSECONDS_PER:
        count, nanoseconds = divmod(nanoseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# ---- reading values ----


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "nothing" if value is None else str(value)


def _string(value: object, key: str, warnings: list[str]) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{key}: expected a string, got {_shown(value)}")


def _boolean(value: object, key: str, warnings: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"{key}: expected true or false, got {_shown(value)}")


def _integer(value: object, key: str, warnings: list[str]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{key}: expected an integer, got {_shown(value)}")


def _duration(value: object, key: str, warnings: list[str]) -> float:
    if isinstance(value, int) and not isinstance(value, bool):
        if value:
            warnings.append(f"{key}: {value} is read as nanoseconds, as registry:2 does; write {value}s for seconds")
        return value / 10**9
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise ConfigError(f"{key}: expected a duration like 300s, 10m or 1h30m, got {_shown(value)}")


def _anything(value: object, key: str, warnings: list[str]) -> object:
    return value


_SCALARS: dict[object, Callable[[object, str, list[str]], object]] = {
    str: _string,
    bool: _boolean,
    int: _integer,
    Duration: _duration,
    object: _anything,
}


def _without_none(hint: object) -> object:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:  # Duration | None is a typing.Union
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _check(value: object, key: str, metadata: Mapping[str, Any]) -> None:
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(repr(c) if not c else c for c in choices)}, got {_shown(value)}")
    shown: Callable[[Any], str] = format_duration if isinstance(value, float) else str
    minimum, maximum = metadata.get("minimum"), metadata.get("maximum")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}: expected at least {shown(minimum)}, got {shown(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key}: expected at most {shown(maximum)}, got {shown(value)}")
    problem = metadata["check"](value) if "check" in metadata else None
    if problem:
        raise ConfigError(f"{key}: {problem}, got {_shown(value)}")


def _convert(hint: object, value: object, key: str, metadata: Mapping[str, Any], warnings: list[str]) -> object:
    hint = _without_none(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _load_section(hint, value, key, warnings)
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return _list(arguments[0], value, key, warnings)
    if origin is dict:
        return _mapping(arguments[1], value, key, warnings)
    converted = _SCALARS[hint](value, key, warnings)
    _check(converted, key, metadata)
    return converted


def _list(item: object, value: object, key: str, warnings: list[str]) -> list[object]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list, got {_shown(value)}")
    return [_convert(item, element, f"{key}.{index}", {}, warnings) for index, element in enumerate(value)]


def _mapping(item: object, value: object, key: str, warnings: list[str]) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {_shown(value)}")
    return {str(name): _convert(item, element, _join(key, str(name)), {}, warnings) for name, element in value.items()}


def _kinds(cls: type) -> tuple[str, ...]:
    return getattr(cls, "KINDS", ())


def _unknown_key(cls: type, key: str, warnings: list[str]) -> None:
    if key in REGISTRY2_UNSUPPORTED:
        warnings.append(f"{key}: a registry:2 setting dockyard does not support ({REGISTRY2_UNSUPPORTED[key]}), ignored")
    elif _kinds(cls):
        section = key.rpartition(".")[0]
        raise ConfigError(f"{key}: unknown {section} kind; dockyard knows {', '.join(_kinds(cls))}")
    else:
        warnings.append(f"{key}: unknown key, ignored")


def _load_section(cls: type, raw: object, key: str, warnings: list[str]) -> Any:
    if isinstance(raw, str) and _kinds(cls):
        raw = {raw: None}  # ``storage: s3``, as REGISTRY_STORAGE=s3 writes it
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a mapping, got {_shown(raw)}")
    known = {spec.name: spec for spec in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for name, value in raw.items():
        dotted = _join(key, str(name))
        if name not in known:
            _unknown_key(cls, dotted, warnings)
        elif value is not None or dataclasses.is_dataclass(_without_none(hints[name])):
            values[name] = _convert(hints[name], value, dotted, known[name].metadata, warnings)
    for name, spec in known.items():
        if spec.metadata.get("required") and values.get(name) in (None, ""):
            raise ConfigError(f"{_join(key, name)}: missing")
    return cls(**values)


# ---- the environment ----


def _resolve(hint: object, segments: list[str]) -> list[str | int] | None:
    """The path of keys that the rest of a variable's name addresses, or None."""
    if not segments:
        return []
    hint = _without_none(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _resolve_field(hint, segments)
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and segments[0].isdigit():
        rest = _resolve(arguments[0], segments[1:])
        return None if rest is None else [int(segments[0]), *rest]
    if origin is dict and segments[0]:
        rest = _resolve(arguments[1], segments[1:])
        return None if rest is None else [segments[0].lower(), *rest]
    if hint is object and all(segments):
        return [segment.lower() for segment in segments]
    return None


def _resolve_field(cls: type, segments: list[str]) -> list[str | int] | None:
    hints = typing.get_type_hints(cls)
    names = {spec.name for spec in dataclasses.fields(cls)}
    for taken in range(len(segments), 0, -1):  # dockyard's own keys hold underscores
        name = "_".join(segments[:taken]).lower()
        rest = _resolve(hints[name], segments[taken:]) if name in names else None
        if rest is not None:
            return [name, *rest]
    return None


def _existing_key(node: dict[str, object], name: str) -> str:
    return next((key for key in node if str(key).lower() == name), name)


def _child(node: dict[str, object] | list[object], step: str | int, empty: object, variable: str) -> object:
    """The child at ``step``, made ``empty`` (a new dict or list) where missing or of another shape."""
    if isinstance(node, list):
        assert isinstance(step, int)
        _store(node, step, empty, variable, keep=True)
        return node[step]
    assert isinstance(step, str)
    key = _existing_key(node, step)
    if not isinstance(node.get(key), type(empty)):
        node[key] = empty
    return node[key]


def _store(node: dict[str, object] | list[object], step: str | int, value: object, variable: str, keep: bool = False) -> None:
    if isinstance(node, dict):
        assert isinstance(step, str)
        node[_existing_key(node, step)] = value
        return
    assert isinstance(step, int)
    if step > len(node):
        raise ConfigError(f"{variable}: list items are set from _0 on without gaps; _{len(node)} is missing")
    if step == len(node):
        node.append(value)
    elif not (keep and isinstance(node[step], type(value))):
        node[step] = value


def _place(raw: dict[str, object], path: list[str | int], value: object, variable: str, lists_set: set[tuple[str | int, ...]]) -> None:
    node: Any = raw
    for depth, step in enumerate(path[:-1]):
        following = path[depth + 1]
        node = _child(node, step, [] if isinstance(following, int) else {}, variable)
        if isinstance(following, int) and tuple(path[: depth + 1]) not in lists_set:
            node.clear()  # the variables of a list replace the file's whole list
            lists_set.add(tuple(path[: depth + 1]))
    _store(node, path[-1], value, variable)


def _payload(variable: str, text: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{variable}: not a YAML value: {getattr(error, 'problem', error)}") from None


def _replaced_section_warning(raw: dict[str, object], path: list[str | int], value: object, variable: str) -> str | None:
    if len(path) != 1 or not isinstance(value, str):
        return None
    cls = typing.get_type_hints(Config).get(str(path[0]))
    before = raw.get(str(path[0]))
    if cls is None or not _kinds(cls) or not isinstance(before, dict):
        return None
    dropped = [f"{path[0]}.{key}" for key in before if key not in _kinds(cls)]
    if not dropped:
        return None
    return f"{variable}={value} replaces the whole {path[0]} section, as in registry:2: {', '.join(dropped)} no longer apply"


def _variable_order(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in name.split("_")]


def apply_environment(raw: dict[str, object], environ: Mapping[str, str], warnings: list[str]) -> None:
    """Override keys of ``raw`` with ``REGISTRY_*`` variables, in sorted order."""
    lists_set: set[tuple[str | int, ...]] = set()
    variables = sorted((name for name in environ if name.startswith(ENV_PREFIX)), key=_variable_order)
    for variable in variables:
        path = _resolve(Config, variable.removeprefix(ENV_PREFIX).split("_"))
        if path is None:
            warnings.append(f"{variable}: matches no configuration key, ignored")
            continue
        value = _payload(variable, environ[variable])
        replaced = _replaced_section_warning(raw, path, value, variable)
        if replaced:
            warnings.append(replaced)
        _place(raw, path, value, variable, lists_set)


# ---- the whole ----


def _read_file(path: pathlib.Path) -> dict[str, object]:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror}") from None
    except yaml.MarkedYAMLError as error:
        line = f" at line {error.problem_mark.line + 1}" if error.problem_mark else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {error.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected registry:2's settings (version: 0.1, storage, http, ...), got {_shown(raw)}")
    return raw


def _chosen(section: object) -> list[str]:
    return [kind for kind in _kinds(type(section)) if getattr(section, kind) is not None]


def _validate(config: Config) -> None:
    drivers = _chosen(config.storage)
    if not drivers:
        raise ConfigError(f"storage: no driver; name one of {', '.join(Storage.KINDS)}")
    if len(drivers) > 1:
        raise ConfigError(f"storage: more than one driver ({', '.join(drivers)}); keep one (REGISTRY_STORAGE={drivers[-1]} replaces the file's)")
    kinds = _chosen(config.auth)
    if len(kinds) > 1:
        raise ConfigError(f"auth: more than one kind ({', '.join(kinds)}); keep one")
    if config.auth.silly is not None:
        raise ConfigError("auth.silly: refused: it lets in anyone who sends any Authorization header; use auth.htpasswd or auth.token")
    token = config.auth.token
    if token is not None and not (token.rootcertbundle or token.jwks):
        raise ConfigError("auth.token.rootcertbundle: missing (or auth.token.jwks): the keys that sign the issuer's tokens")
    tls = config.http.tls
    if bool(tls.certificate) != bool(tls.key):
        raise ConfigError(f"http.tls.{'key' if tls.certificate else 'certificate'}: missing; http.tls.certificate and http.tls.key go together")
    if config.dockyard.insecure_http and (tls.certificate or tls.clientcas):
        raise ConfigError("dockyard.insecure_http: serves no TLS, but http.tls is set; drop one of them")


def _notices(config: Config) -> list[str]:
    notices = []
    if config.notifications.endpoints:
        notices.append("notifications: not implemented yet, no events are sent")
    if config.proxy is not None:
        notices.append("proxy: not supported, dockyard is not a pull-through cache; ignored")
    if config.reporting.bugsnag is not None or config.reporting.newrelic is not None:
        notices.append("reporting: not supported, ignored")
    return notices


def load(path: pathlib.Path | None, environ: Mapping[str, str]) -> Loaded:
    """Read ``path`` (or, without one, ``dockyard serve``'s defaults) with ``environ``'s overrides."""
    raw = _read_file(path) if path is not None else copy.deepcopy(SERVE_DEFAULTS)
    warnings: list[str] = []
    apply_environment(raw, environ, warnings)
    config = _load_section(Config, raw, "", warnings)
    _validate(config)
    return Loaded(config, tuple(warnings + _notices(config)))


# ---- what it means for ``serve`` ----


def _optional_path(text: str | None) -> pathlib.Path | None:
    return pathlib.Path(text) if text else None


def _storage_arguments(storage: Storage) -> dict[str, object]:
    root = storage.filesystem.rootdirectory if storage.filesystem is not None else SERVE_ROOT
    driver = _chosen(storage)[0]
    return {
        "root": pathlib.Path(root),
        "storage": driver,
        "s3": storage.s3,
        "redirect": not storage.redirect.disable,
        "no_delete": not storage.delete.enabled,
        "read_only": storage.maintenance.readonly.enabled,
    }


def _http_arguments(http: Http) -> dict[str, object]:
    from dockyard.api.forwarding import ForwardingError, parse_prefix

    if http.net != "tcp":
        raise ConfigError(f"http.net: dockyard listens on tcp only, got {http.net}")
    if http.debug.prometheus.enabled and not http.debug.addr:
        raise ConfigError("http.debug.prometheus.enabled: metrics are served on the debug server; set http.debug.addr too")
    if http.debug.addr and _address_problem(http.debug.addr):
        raise ConfigError(f"http.debug.addr: expected HOST:PORT, got {http.debug.addr}")
    try:
        parse_prefix(http.prefix)
    except ForwardingError as error:
        raise ConfigError(f"http.prefix: {error}") from None
    if len(http.tls.clientcas) > 1:
        raise ConfigError(f"http.tls.clientcas: dockyard takes one client CA file, got {len(http.tls.clientcas)} (put them in one PEM file)")
    return {
        "addr": http.addr,
        "tls_cert": _optional_path(http.tls.certificate),
        "tls_key": _optional_path(http.tls.key),
        "tls_key_passphrase_file": None,
        "debug_addr": http.debug.addr or None,
        "metrics": http.debug.prometheus.enabled,
        "metrics_path": http.debug.prometheus.path,
        "drain_timeout": http.draintimeout,
        "tls_client_ca": _optional_path(http.tls.clientcas[0] if http.tls.clientcas else None),
        "public_url": _public_url(http.host),
        "prefix": http.prefix,
        "http_secret": http.secret,
    }


def _auth_arguments(auth: Auth) -> dict[str, object]:
    token = auth.token
    return {
        "htpasswd": _optional_path(auth.htpasswd.path if auth.htpasswd else None),
        "auth_realm": auth.htpasswd.realm if auth.htpasswd else "Dockyard",
        "token_service": token.service if token else "dockyard",
        "token_issuer": token.issuer if token else "dockyard",
        "token_realm": token.realm if token else None,
        "token_rootcertbundle": _optional_path(token.rootcertbundle if token else None),
        "token_jwks": _optional_path(token.jwks if token else None),
    }


def _public_url(host: str) -> str | None:
    from dockyard.api.forwarding import ForwardingError, parse_public_url

    if not host:
        return None
    try:
        parse_public_url(host)
    except ForwardingError as error:
        raise ConfigError(f"http.host: {error}") from None
    return host


def _trusted_proxies(values: list[str]) -> tuple[str, ...]:
    from dockyard.api.forwarding import ForwardingError, parse_trusted

    for index, value in enumerate(values):
        try:
            parse_trusted([value])
        except ForwardingError as error:
            raise ConfigError(f"dockyard.trusted_proxies.{index}: {error}") from None
    return tuple(values)


def _dockyard_arguments(own: Dockyard, tls_absent: bool) -> dict[str, object]:
    return {
        "workers": own.workers,
        "insecure_http": own.insecure_http if own.insecure_http is not None else tls_absent,
        "tls_dir": _optional_path(own.tls_dir),
        "hostnames": tuple(own.hostnames),
        "access_policy": _optional_path(own.access_policy),
        "token_auth": own.token_auth,
        "login_max_failures": own.login.max_failures,
        "login_failure_window": own.login.failure_window,
        "trusted_proxies": _trusted_proxies(own.trusted_proxies),
        "no_ui": not own.ui,
        "header_timeout": own.header_timeout,
        "idle_timeout": own.idle_timeout,
    }


def _health_arguments(health: Health) -> dict[str, object]:
    check = health.storagedriver
    return {
        "storage_health": check.enabled,
        "storage_health_interval": check.interval or 10.0,  # registry:2: 0 is its default, 10s
        "storage_health_threshold": check.threshold,
    }


def _redis_arguments(config: Config) -> Redis | None:
    """The Redis that caches blob descriptors and tags, as registry:2 uses it: only with ``blobdescriptor: redis``."""
    if config.storage.cache.blobdescriptor != "redis":
        return None  # inmemory: each replica would cache on its own; dockyard reads storage instead
    if config.redis is None:
        raise ConfigError("redis.addr: missing: storage.cache.blobdescriptor is redis")
    if _address_problem(config.redis.addr):
        raise ConfigError(f"redis.addr: expected HOST:PORT, got {config.redis.addr}")
    return config.redis


def serve_arguments(config: Config) -> dict[str, object]:
    """``dockyard serve``'s arguments, by parameter name, as ``config`` sets them."""
    return {
        **_storage_arguments(config.storage),
        **_http_arguments(config.http),
        **_auth_arguments(config.auth),
        **_dockyard_arguments(config.dockyard, tls_absent=not config.http.tls.certificate),
        **_health_arguments(config.health),
        "redis": _redis_arguments(config),
        "gc": config.dockyard.gc,
        "retention": tuple(config.dockyard.retention),
        "upload_purging": config.storage.maintenance.uploadpurging,
        "log_level": SERVE_LOG_LEVELS[config.log.level],
        # registry:2's logstash formatter writes JSON objects too: json here.
        "log_format": "text" if config.log.formatter == "text" else "json",
        "log_fields": dict(config.log.fields),
        "no_access_log": config.log.accesslog.disabled,
    }


# ---- showing it ----


def _masked(value: object) -> object:
    return [MASK for _ in value] if isinstance(value, list) else MASK


def _plain(value: object, hint: object, name: str) -> object:
    """``value`` as YAML writes it: durations as Go writes them, secrets masked."""
    if name.lower() in SECRET_KEYS and value:
        return _masked(value)
    if dataclasses.is_dataclass(value):
        hints = typing.get_type_hints(type(value))
        present = (spec.name for spec in dataclasses.fields(value) if getattr(value, spec.name) is not None)
        return {key: _plain(getattr(value, key), hints[key], key) for key in present}
    hint = _without_none(hint)
    arguments = typing.get_args(hint)
    if hint is Duration:
        return format_duration(typing.cast(Duration, value))
    if isinstance(value, list):
        return [_plain(element, arguments[0] if arguments else object, "") for element in value]
    if isinstance(value, dict):
        return {key: _plain(element, arguments[1] if arguments else object, str(key)) for key, element in value.items()}
    return value


def to_yaml(config: Config) -> str:
    """The whole effective configuration, secrets masked; it reads back as the same."""
    return yaml.safe_dump(_plain(config, Config, ""), sort_keys=False, default_flow_style=False, allow_unicode=True)
