"""Reading a blob GET's ``Range`` (RFC 9110 §14.2) and an upload chunk's ``Content-Range``.

Only ASCII digits count: ``int()``, ``str.isdigit()`` and a ``\\d`` pattern would also read
other scripts' digits (``١٠`` as 10), which no HTTP grammar allows.
"""

from __future__ import annotations

import itertools
import re
import sys

from dockyard.api import errors
from dockyard.api.errors import RegistryError

_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")

# The most ranges one request is answered part by part; past it, the whole body.
# containers/storage asks for up to 1024 in one zstd:chunked partial pull.
MAX_RANGES = 1024

# What a position too long for int() stands for: any blob ends long before it (sizes are int64).
_BEYOND_ANY_SIZE = 1 << 63


def _position(digits: str) -> int:
    significant = digits.lstrip("0") or "0"
    limit = sys.get_int_max_str_digits()  # int() refuses longer strings (0: no limit)
    return _BEYOND_ANY_SIZE if limit and len(significant) > limit else int(significant)


def requested_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """The first and last byte of each range of a ``Range`` header, in the order asked.

    ``None`` means the header is ignored and the whole body sent: a unit other than
    bytes (RFC 9110 requires ignoring it), more than ``MAX_RANGES`` ranges, or ranges
    that overlap or go backwards (the RFC lets a server ignore those; answered part by
    part they could repeat the blob many times over, and clients such as
    containers/image expect exactly one part per range, so they are not merged).
    Malformed headers and ones with no satisfiable range are ``RANGE_INVALID`` (416).
    Unsatisfiable ranges next to satisfiable ones are left out, as the RFC says.
    """
    unsatisfiable = RegistryError(
        errors.RANGE_INVALID, "requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
    )
    unit, equals, range_set = header.partition("=")
    if not equals:
        raise unsatisfiable
    if unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip(" \t") for spec in range_set.split(",")]
    ranges = []
    for spec in filter(None, specs):  # a list may hold empty elements (RFC 9110 §5.6.1)
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None or match.group(1) == match.group(2) == "":
            raise unsatisfiable
        first, last = match.groups()
        if first == "":
            suffix = _position(last)
            if suffix > 0 and size > 0:
                ranges.append((max(size - suffix, 0), size - 1))
            continue
        start = _position(first)
        if last != "" and _position(last) < start:
            raise unsatisfiable  # an invalid range-spec makes the whole header invalid
        if start < size:
            ranges.append((start, size - 1 if last == "" else min(_position(last), size - 1)))
    if not ranges:
        raise unsatisfiable
    if len(ranges) > MAX_RANGES:
        return None
    if any(following[0] <= previous[1] for previous, following in itertools.pairwise(ranges)):
        return None
    return ranges


def content_range(header: str) -> tuple[int, int]:
    """The first and last byte of an upload chunk's ``Content-Range``, or ``RANGE_INVALID``."""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise RegistryError(errors.RANGE_INVALID, f"malformed Content-Range {header[:100]!r}")
    return _position(match.group(1)), _position(match.group(2))
