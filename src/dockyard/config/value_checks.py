"""Checks of single settings' values, named by the schema's fields (``check``): each answers what is
wrong with a value, or ``None``."""

from __future__ import annotations

from dockyard.address import Address
from dockyard.forwarding import ForwardingError, parse_prefix, parse_public_url
from dockyard.reference import NAME_PATTERN


def address_problem(value: str) -> str | None:
    try:
        Address.parse(value)
    except ValueError:
        return f"expected HOST:PORT, got {value}"
    return None


def optional_address_problem(value: str) -> str | None:
    return address_problem(value) if value else None


def prefix_problem(value: str) -> str | None:
    try:
        parse_prefix(value)
    except ForwardingError as error:
        return str(error)
    return None


def public_url_problem(value: str) -> str | None:
    try:
        parse_public_url(value) if value else None
    except ForwardingError as error:
        return str(error)
    return None


def https_url_problem(value: str) -> str | None:
    return None if value.startswith("https://") else f"expected an https:// URL, got {value!r}"


def metrics_path_problem(value: str) -> str | None:
    from dockyard.ops.health import HEALTH_PATH

    return None if value.startswith("/") and value != HEALTH_PATH else f"expected an absolute path other than {HEALTH_PATH}, got {value!r}"


def private_acl_problem(value: str) -> str | None:
    # objects are written with the bucket's own permissions: what private asks, and nothing else
    return None if value == "private" else f"refused: only private is supported; objects would not get the {value} ACL"


def repository_name_problem(value: str) -> str | None:
    return None if NAME_PATTERN.fullmatch(value) else f"expected a repository name, such as library/alpine, got {value!r}"
