"""The command line as the last layer of overrides: ``dockyard serve``'s options.

Each option is declared once, as a :class:`~dockyard.config.schema.Flag` in the metadata
of the key it sets; its click option is made from it here, and a value given on the
command line is written into the raw tree over the file and the ``REGISTRY_*`` variables,
before the tree is read and checked like any other. An option for one kind of a section
(``--root`` for ``storage.filesystem``, ``--htpasswd`` for ``auth.htpasswd``) applies when
the section names that kind or none; where it makes the kind, ``FLAG_DEFAULTS`` fill it.
An error about a key an option set names the option.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import click

from dockyard.config.checks import Named
from dockyard.config.environment import existing_key
from dockyard.config.schema import Duration, Flag, Settings
from dockyard.config.values import ConfigError, format_duration, kinds, without_none


@dataclass(frozen=True)
class Option:
    """One option: the dotted key it sets, and how."""

    key: str
    flag: Flag
    hint: Any  # the key's type
    choices: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.flag.name.split("/")[0]

    @property
    def parameter(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    @property
    def selects_kind(self) -> bool:
        return bool(kinds(self.hint))

    def raw_value(self, given: Any) -> object:
        """What the key holds in the raw tree (as the file would write it) for the option's value."""
        if self.flag.value is not None:
            try:
                return self.flag.value(given)
            except ValueError as error:
                raise ConfigError(f"{self.name}: {error}") from None
        if self.flag.inverted:
            return not given
        if self.hint is Duration:  # an option takes seconds; a plain number in the file would be nanoseconds
            return format_duration(given) if given >= 0 else f"{given}s"
        return list(given) if isinstance(given, tuple) else given


def _options(cls: type, prefix: str) -> Iterator[Option]:
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        key = f"{prefix}{spec.name}"
        hint = without_none(hints[spec.name])
        flag = spec.metadata.get("flag")
        if flag is not None:
            yield Option(key, flag, hint, flag.choices or spec.metadata.get("choices", ()))
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield from _options(hint, f"{key}.")


OPTIONS: tuple[Option, ...] = tuple(_options(Settings, ""))
BY_PARAMETER = {option.parameter: option for option in OPTIONS}
BY_KEY = {option.key: option for option in OPTIONS}


def _default(settings: Settings, key: str) -> object:
    node: object = settings
    for name in key.split("."):
        node = getattr(node, name, None)
    return node


def click_options(defaults: Settings) -> list[click.Option]:
    """The click options of every flag; ``defaults`` (serve's, without a file) are shown in the help."""
    made = []
    for option in OPTIONS:
        flag = option.flag
        settings: dict[str, Any] = {"help": flag.help or None, "metavar": flag.metavar}
        default = _default(defaults, option.key)
        if option.hint is bool:
            # a switch pair (--a/--no-a) shows the default; a lone switch is off unless given
            settings.update({"default": default} if "/" in flag.name else {"is_flag": True, "default": False})
        elif flag.multiple:
            settings["multiple"] = True
        elif flag.existing_file:
            settings["type"] = click.Path(dir_okay=False, exists=True)
        elif option.choices:
            settings["type"] = click.Choice(option.choices)
            settings["default"] = default if default in option.choices else None
        else:
            settings["type"] = {int: click.INT, Duration: click.FLOAT}.get(option.hint, click.STRING)
            settings["default"] = default if default not in (None, "") else None
        settings["show_default"] = settings.get("default") not in (None, False)
        made.append(click.Option([flag.name, option.parameter], **settings))
    return made


def _section(node: dict[str, Any], name: str) -> dict[str, Any]:
    """``node[name]`` as a mapping: ``storage: s3`` (as REGISTRY_STORAGE=s3 writes it) names a kind."""
    key = existing_key(node, name)
    section = node.get(key)
    if isinstance(section, str):
        section = {section: None}
    if not isinstance(section, dict):
        section = {}
    node[key] = section
    return section


def _write(raw: dict[str, Any], option: Option, value: object) -> bool:
    """Set the option's key in ``raw``; False where it is for a kind the section does not name."""
    node: dict[str, Any] = raw
    cls: Any = Settings
    *parents, last = option.key.split(".")
    for name in parents:
        hint = without_none(typing.get_type_hints(cls)[name])
        if name in kinds(cls):
            if any(other in node for other in kinds(cls) if other != name):
                return False
            if not isinstance(node.get(name), dict):
                node[name] = dict(getattr(hint, "FLAG_DEFAULTS", {}))
        node, cls = _section(node, name), hint
    if option.selects_kind:
        section = _section(node, last)
        for other in kinds(option.hint):
            if other != value:
                section.pop(other, None)
        kind = without_none(typing.get_type_hints(option.hint)[str(value)])
        if not isinstance(section.get(str(value)), dict):
            section[str(value)] = dict(getattr(kind, "FLAG_DEFAULTS", {}))
    else:
        node[existing_key(node, last)] = value
    return True


def apply_options(raw: dict[str, Any], given: Mapping[str, Any]) -> frozenset[str]:
    """Write the options given on the command line (by parameter name) into ``raw``; the keys they set."""
    chosen = sorted((BY_PARAMETER[name] for name in given), key=lambda option: not option.selects_kind)
    return frozenset(option.key for option in chosen if _write(raw, option, option.raw_value(given[option.parameter])))


def _given(key: str, given: frozenset[str]) -> bool:
    return any(key == set_key or key.startswith(f"{set_key}.") for set_key in given)


def _option_of(key: str) -> Option | None:
    """The option of a key, or of the list a key like ``dockyard.trusted_proxies.0`` is an item of."""
    return BY_KEY.get(key) or BY_KEY.get(key.rsplit(".", 1)[0])


def namer(given: frozenset[str]) -> Named:
    """Names for the keys of a message: their options, where an option set any of them."""

    def named(*keys: str) -> tuple[str, ...]:
        if not any(_given(key, given) for key in keys):
            return keys
        return tuple(option.name if (option := _option_of(key)) is not None else key for key in keys)

    return named


def by_option(message: str, given: frozenset[str]) -> str:
    """``message`` (``key: problem``) naming the option where an option set the key."""
    key, separator, problem = message.partition(": ")
    option = _option_of(key) if separator and _given(key, given) else None
    return f"{option.name}: {problem}" if option is not None else message
