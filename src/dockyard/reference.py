"""The grammar of repository names, tags and digests (OCI Distribution Spec v1.1).

Everything that reaches a storage path is checked here first, so that no request can
name a path outside the layout (``..``, NUL, upper case, percent escapes).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dockyard.errors import DigestInvalid, NameInvalid, TagInvalid, UploadUnknown
from dockyard.memo import remembered

NAME_MAX_LENGTH = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_PATTERN = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

# Algorithms the registry can verify, with the exact length of their hex encoding.
DIGEST_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+")


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def parse_digest(text: str) -> Digest:
    """Parse ``algorithm:hex`` strictly; anything else is :class:`DigestInvalid`."""
    algorithm, sep, encoded = text.partition(":")
    length = DIGEST_ALGORITHMS.get(algorithm)
    if not sep or length is None:
        raise DigestInvalid("unsupported or malformed digest", detail={"digest": text[:200]})
    if len(encoded) != length or not _HEX.fullmatch(encoded):
        raise DigestInvalid("malformed digest", detail={"digest": text[:200]})
    return Digest(algorithm, encoded)


def is_digest(text: str) -> bool:
    """Whether a manifest reference is a digest (it has a colon) rather than a tag."""
    return ":" in text


def check_name(name: str) -> str:
    if not _valid_name(name):
        raise NameInvalid(detail={"name": name[:300]})
    return name


# Every API request checks its repository's name, most of them one of a few names: each is
# matched against the grammar once while it is among the last NAMES_KEPT checked.
NAMES_KEPT = 1024


@remembered(NAMES_KEPT, NAME_MAX_LENGTH)
def _valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX_LENGTH and NAME_PATTERN.fullmatch(name) is not None


def check_tag(tag: str) -> str:
    if not TAG_PATTERN.fullmatch(tag):
        raise TagInvalid("invalid tag", detail={"tag": tag[:200]})
    return tag


_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_upload_id(upload_id: str) -> str:
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise UploadUnknown(detail={"upload": upload_id[:100]})
    return upload_id
