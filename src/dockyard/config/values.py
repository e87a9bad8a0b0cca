"""Reading a raw YAML tree into the settings tree: Go durations, typed scalars, the
checks that field metadata names, and unknown keys (warned about, by dotted path)."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from dockyard.config.schema import ByteSize, Duration
from dockyard.sizes import parse_size


class ConfigError(Exception):
    """A one-line message naming the dotted key, the variable, the option or the file at fault."""


# registry:2 and registry:3 keys that dockyard does not build, and what ignoring them would do: in use
# (see _in_use) they stop the start, since the registry would serve otherwise than the file says.
REGISTRY2_REFUSED = {
    "log.hooks": "mail hooks are not built: nobody would be mailed about errors; feed the log (log.formatter: json) to your alerting",
    "middleware": "registry, repository and storage middleware (cloudfront, redirect, ...) is not built: clients would not be sent where it says",
    "http.h2c": "HTTP/2 without TLS is not served: a proxy speaking h2c to the registry would get no answer",
    "health.file": "file health checks are not built: the registry would answer where registry:2 answers 503",
    "health.http": "HTTP health checks are not built: the registry would answer where registry:2 answers 503",
    "health.tcp": "TCP health checks are not built: the registry would answer where registry:2 answers 503",
    "policy": "policy.repository.classes is not built: manifests of every class would be accepted",
    "auth.token.signingalgorithms": "not built: tokens signed with algorithms the list leaves out would be accepted",
    "storage.s3.usefipsendpoint": "FIPS endpoints are not built: objects would go through the standard endpoint",
    "proxy.exec": "credential helper programs are not run: the upstream would be asked without credentials; set proxy.username and proxy.password",
}
# Keys that cannot change what the registry serves or who may use it: in use, warned about and ignored.
REGISTRY2_IGNORED = {
    "log.reportcaller": "the caller's file and line in each record are not logged",
    "storage.s3.accelerate": "S3 Transfer Acceleration is not used; the regional endpoint serves",
    "storage.s3.usedualstack": "dual-stack endpoints are not used; the regional endpoint serves",
    "storage.s3.useragent": "the S3 client sends its own User-Agent",
    "proxy.cachewritetimeout": "a blob fetched from the upstream is stored when it has arrived whole and verified, with no time limit of its own",
    **{f"redis.{name}": "client tuning dockyard's Redis client does not offer (its defaults apply)" for name in (
        "protocol", "maxretries", "minretrybackoff", "maxretrybackoff", "contexttimeoutenabled", "poolfifo", "pooltimeout",
        "minidleconns", "maxactiveconns", "connmaxlifetime", "disableidentity", "identitysuffix",
    )},
}
# Keys that do nothing where dockyard serves, as in registry:2 in the same setup: read, nothing to do.
REGISTRY2_MET = {
    "http.http2": "dockyard serves HTTP/1.1 only, which TLS clients negotiate: disabled: true is what it does",
    "storage.cache.blobdescriptorsize": "the size of an in-memory cache, and dockyard keeps none (blobdescriptor: inmemory reads storage)",
    **{f"redis.{name}": "a cluster's, and dockyard talks to one server (several addrs are refused), where go-redis ignores it too"
       for name in ("readonly", "routebylatency", "routerandomly", "maxredirects")},
    **{f"redis.{name}": "a sentinel's, and redis.mastername is refused" for name in ("sentinelusername", "sentinelpassword")},
    "redis.unstableresp3": "it changes replies only of search commands, which a registry never sends",
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NANOSECONDS_PER = (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9))



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


def shown(value: object) -> str:
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
    raise ConfigError(f"{key}: expected a string, got {shown(value)}")


def _boolean(value: object, key: str, warnings: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"{key}: expected true or false, got {shown(value)}")


def _integer(value: object, key: str, warnings: list[str]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{key}: expected an integer, got {shown(value)}")


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
    raise ConfigError(f"{key}: expected a duration like 300s, 10m or 1h30m, got {shown(value)}")


def _size(value: object, key: str, warnings: list[str]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError:
            pass
    raise ConfigError(f"{key}: expected a size like 40MiB, 10GiB or a number of bytes, got {shown(value)}")


def _anything(value: object, key: str, warnings: list[str]) -> object:
    return value


_SCALARS: dict[object, Callable[[object, str, list[str]], object]] = {
    str: _string,
    bool: _boolean,
    int: _integer,
    Duration: _duration,
    ByteSize: _size,
    object: _anything,
}


def without_none(hint: object) -> object:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:  # Duration | None is a typing.Union
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _check(value: object, key: str, metadata: Mapping[str, Any]) -> None:
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(repr(c) if not c else c for c in choices)}, got {shown(value)}")
    written: Callable[[Any], str] = format_duration if isinstance(value, float) else str
    minimum, maximum = metadata.get("minimum"), metadata.get("maximum")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}: expected at least {written(minimum)}, got {written(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key}: expected at most {written(maximum)}, got {written(value)}")
    problem = metadata["check"](value) if "check" in metadata else None
    if problem:
        raise ConfigError(f"{key}: {problem}")


def _convert(hint: object, value: object, key: str, metadata: Mapping[str, Any], warnings: list[str]) -> object:
    hint = without_none(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return read_section(hint, value, key, warnings)
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
        raise ConfigError(f"{key}: expected a list, got {shown(value)}")
    return [_convert(item, element, f"{key}.{index}", {}, warnings) for index, element in enumerate(value)]


def _mapping(item: object, value: object, key: str, warnings: list[str]) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {shown(value)}")
    return {str(name): _convert(item, element, _join(key, str(name)), {}, warnings) for name, element in value.items()}


def kinds(cls: type) -> tuple[str, ...]:
    return getattr(cls, "KINDS", ())


def _in_use(value: object) -> bool:
    """Set to something: not empty, not false, and not only entries that say ``disabled: true``."""
    if isinstance(value, dict):
        return value.get("disabled") is not True and any(_in_use(item) for item in value.values())
    if isinstance(value, list):
        return any(_in_use(item) for item in value)
    return bool(value)


def _unknown_key(cls: type, key: str, value: object, warnings: list[str]) -> None:
    if key in REGISTRY2_REFUSED:
        if _in_use(value):
            raise ConfigError(f"{key}: refused: {REGISTRY2_REFUSED[key]}")
    elif key in REGISTRY2_IGNORED:
        if _in_use(value):
            warnings.append(f"{key}: {REGISTRY2_IGNORED[key]}, ignored")
    elif key in REGISTRY2_MET:
        pass
    elif kinds(cls):
        section = key.rpartition(".")[0]
        raise ConfigError(f"{key}: unknown {section} kind; dockyard knows {', '.join(kinds(cls))}")
    else:
        warnings.append(f"{key}: unknown key, ignored")


def read_section(cls: type, raw: object, key: str, warnings: list[str]) -> Any:
    if isinstance(raw, str) and kinds(cls):
        raw = {raw: None}  # ``storage: s3``, as REGISTRY_STORAGE=s3 writes it
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a mapping, got {shown(raw)}")
    known = {spec.name: spec for spec in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for name, value in raw.items():
        dotted = _join(key, str(name))
        if name not in known:
            _unknown_key(cls, dotted, value, warnings)
        elif value is not None or dataclasses.is_dataclass(without_none(hints[name])):
            values[name] = _convert(hints[name], value, dotted, known[name].metadata, warnings)
    for name, spec in known.items():
        if spec.metadata.get("required") and values.get(name) in (None, ""):
            raise ConfigError(f"{_join(key, name)}: missing")
    return cls(**values)

