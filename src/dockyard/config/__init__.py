"""The settings tree, read from registry:2's configuration file (``version: 0.1``), then
``REGISTRY_*`` variables, then ``dockyard serve``'s options, each layer overriding keys of
the one before, and checked once.

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
one-line message names the dotted key (or the variable, the option or the file) at fault.

The modules: :mod:`.schema` (the tree, and each key's checks and option; :mod:`.fields`
holds what its fields are built with, :mod:`.events` the ``dockyard.events`` section),
:mod:`.values` (reading a raw tree into it), :mod:`.environment` (``REGISTRY_*``),
:mod:`.flags` (the options), :mod:`.checks` (across keys) and :mod:`.show` (as YAML).
"""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from dockyard.config.checks import check, notices
from dockyard.config.environment import apply_environment
from dockyard.config.events import EventDelivery
from dockyard.config.flags import apply_options, by_option, namer
from dockyard.config.schema import (
    S3,
    SERVE_DEFAULTS,
    Gc,
    ImmutableTags,
    MirrorSync,
    Quota,
    Redis,
    RedisPool,
    RedisTls,
    Retention,
    Settings,
    Storage,
    UploadPurging,
    Validation,
)
from dockyard.config.show import MASK, to_yaml
from dockyard.config.values import ConfigError, format_duration, parse_duration, read_section, shown

__all__ = [
    "MASK", "S3", "ConfigError", "EventDelivery", "Gc", "ImmutableTags", "Loaded", "MirrorSync", "Quota", "Redis", "RedisPool", "RedisTls", "Retention",
    "Settings", "Storage",
    "UploadPurging", "Validation",
    "format_duration", "load", "parse_duration", "to_yaml",
]


@dataclass(frozen=True)
class Loaded:
    settings: Settings
    warnings: tuple[str, ...]


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
        raise ConfigError(f"{path}: expected registry:2's settings (version: 0.1, storage, http, ...), got {shown(raw)}")
    return raw


def _read_old_log_level(raw: dict[str, object]) -> None:
    """registry:2's top-level ``loglevel`` (deprecated, still applied) sets ``log.level`` when the file and
    the variables leave it unset; an option (``--log-level``) overrides both."""
    log = raw.get("log") or {}
    if raw.get("loglevel") and isinstance(log, dict) and not log.get("level"):
        raw["log"] = {**log, "level": raw["loglevel"]}


def load(path: pathlib.Path | None, environ: Mapping[str, str], options: Mapping[str, Any] | None = None) -> Loaded:
    """Read ``path`` (or, without one, ``dockyard serve``'s defaults), override its keys with
    ``environ``'s ``REGISTRY_*`` variables and then with ``options`` (serve's, by parameter
    name, as given on the command line), and check the whole once."""
    raw = _read_file(path) if path is not None else copy.deepcopy(SERVE_DEFAULTS)
    warnings: list[str] = []
    apply_environment(raw, environ, warnings)
    _read_old_log_level(raw)
    given = apply_options(raw, options or {})
    try:
        settings = read_section(Settings, raw, "", warnings)
        check(settings, namer(given))
    except ConfigError as error:
        raise ConfigError(by_option(str(error), given)) from None
    return Loaded(settings, tuple(warnings + notices(settings)))
