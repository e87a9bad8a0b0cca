"""The grammar of repository names, tags, digests and upload ids."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from dockyard.api import errors
from dockyard.api.errors import from_domain
from dockyard.errors import DigestInvalid, NameInvalid, TagInvalid, UploadUnknown
from dockyard.reference import (
    NAME_MAX_LENGTH,
    Digest,
    check_name,
    check_tag,
    check_upload_id,
    is_digest,
    parse_digest,
)

SHA256_HEX = hashlib.sha256(b"hello").hexdigest()
SHA512_HEX = hashlib.sha512(b"hello").hexdigest()


# -- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "a/b",
        "a-b",
        "a__b",
        "a_b",
        "a.b",
        "a---b",
        "0",
        "library/ubuntu",
        "my-org/team.x/image_name-2",
        "a/b/c/d/e/f/g",
        "a" * 255,
        "/".join(["ab"] * 85),  # 254 characters, many components
    ],
)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "Library/ubuntu",
        "library/Ubuntu",
        "..",
        ".",
        "a/../b",
        "a/./b",
        "../a",
        "a/..",
        "/a",
        "a/",
        "-a",
        "a-",
        "_a",
        "a_",
        ".a",
        "a.",
        "a//b",
        "a\0b",
        "a\0",
        "%2e",
        "a/%2e%2e/b",
        "a%2fb",
        "a___b",
        "a..b",
        "a.-b",
        "a b",
        "a\n",
        "a\\b",
        "a:b",
        "a@b",
        "é",
        "a" * 256,
        "a/" * 127 + "ab",  # 256 characters
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(NameInvalid) as caught:
        check_name(name)
    answer = from_domain(caught.value)
    assert answer.error is errors.NAME_INVALID
    assert answer.status == 400
    assert answer.error.code == "NAME_INVALID"


def test_name_length_limit_is_255() -> None:
    assert NAME_MAX_LENGTH == 255
    assert check_name("a" * 255) == "a" * 255
    with pytest.raises(NameInvalid):
        check_name("a" * 256)


def test_invalid_name_detail_is_truncated() -> None:
    with pytest.raises(NameInvalid) as caught:
        check_name("A" * 1000)
    assert caught.value.detail == {"name": "A" * 300}


# -- tags ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    ["latest", "v1.0.0", "1", "_", "_private", "A-Z_a.z", "0.1-rc_2", "a" * 128, "x" + "-." * 63 + "y"],
)
def test_valid_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize(
    "tag",
    ["", ".hidden", "-dash", ".", "-", "a" * 129, "a/b", "a:b", "a b", "a\0", "latest\n", "%2e", "tag@sha", "é"],
)
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(TagInvalid) as caught:
        check_tag(tag)
    answer = from_domain(caught.value)
    assert answer.error is errors.TAG_INVALID
    assert answer.status == 400


# -- digests -------------------------------------------------------------------------


def test_parse_sha256_digest() -> None:
    digest = parse_digest(f"sha256:{SHA256_HEX}")
    assert digest == Digest("sha256", SHA256_HEX)
    assert (digest.algorithm, digest.hex) == ("sha256", SHA256_HEX)
    assert str(digest) == f"sha256:{SHA256_HEX}"


def test_parse_sha512_digest() -> None:
    digest = parse_digest(f"sha512:{SHA512_HEX}")
    assert digest == Digest("sha512", SHA512_HEX)
    assert len(digest.hex) == 128
    assert str(digest) == f"sha512:{SHA512_HEX}"


@pytest.mark.parametrize(
    "text",
    [
        f"sha256:{SHA256_HEX.upper()}",
        f"sha256:{SHA256_HEX[:-1]}A",
        f"SHA256:{SHA256_HEX}",
        f"sha256:{SHA256_HEX[:-1]}",
        f"sha256:{SHA256_HEX}0",
        f"sha256:{SHA512_HEX}",
        f"sha512:{SHA256_HEX}",
        "sha256:",
        f"sha256:{SHA256_HEX[:-1]}g",
        f"sha256:{SHA256_HEX[:-1]}\n",
        f"sha256: {SHA256_HEX[1:]}",
        f"md5:{hashlib.md5(b'hello').hexdigest()}",
        f"sha1:{hashlib.sha1(b'hello').hexdigest()}",
        f"sha384:{hashlib.sha384(b'hello').hexdigest()}",
        f":{SHA256_HEX}",
        SHA256_HEX,
        "sha256",
        f"sha256{SHA256_HEX}",
        f"sha256::{SHA256_HEX}",
        f"sha256:{SHA256_HEX}:",
        "",
        "latest",
    ],
)
def test_invalid_digests(text: str) -> None:
    with pytest.raises(DigestInvalid) as caught:
        parse_digest(text)
    answer = from_domain(caught.value)
    assert answer.error is errors.DIGEST_INVALID
    assert answer.error.code == "DIGEST_INVALID"
    assert answer.status == 400


def test_digest_of_and_hasher() -> None:
    assert Digest.of(b"hello") == Digest("sha256", SHA256_HEX)
    assert Digest.of(b"hello", "sha512") == Digest("sha512", SHA512_HEX)
    hasher = parse_digest(f"sha512:{SHA512_HEX}").hasher()
    hasher.update(b"hello")
    assert hasher.hexdigest() == SHA512_HEX


def test_digests_are_ordered_and_hashable() -> None:
    a, b = Digest("sha256", "0" * 64), Digest("sha256", "f" * 64)
    assert sorted([b, a]) == [a, b]
    assert {a, Digest("sha256", "0" * 64)} == {a}


@pytest.mark.parametrize(("text", "expected"), [(f"sha256:{SHA256_HEX}", True), ("latest", False), ("v1.0", False)])
def test_is_digest(text: str, expected: bool) -> None:
    assert is_digest(text) is expected


# -- upload ids ----------------------------------------------------------------------


def test_valid_upload_id() -> None:
    upload_id = str(uuid.uuid4())
    assert check_upload_id(upload_id) == upload_id
    assert check_upload_id("00000000-0000-0000-0000-000000000000") == "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    "upload_id",
    [
        "",
        str(uuid.uuid4()).upper(),
        uuid.uuid4().hex,
        str(uuid.uuid4()) + "0",
        str(uuid.uuid4())[:-1],
        "../" + str(uuid.uuid4())[3:],
        str(uuid.uuid4()) + "\n",
        "{" + str(uuid.uuid4()) + "}",
        "gggggggg-gggg-gggg-gggg-gggggggggggg",
    ],
)
def test_invalid_upload_ids(upload_id: str) -> None:
    with pytest.raises(UploadUnknown) as caught:
        check_upload_id(upload_id)
    answer = from_domain(caught.value)
    assert answer.error is errors.BLOB_UPLOAD_UNKNOWN
    assert answer.status == 404


def test_names_checked_again_and_again_answer_the_same():
    from dockyard import reference

    before = reference._valid_name.cache_info()
    for _ in range(3):
        assert check_name("library/app") == "library/app"
        for bad in ("Library/app", "a//b", "a/../b", "a" * 256):
            with pytest.raises(NameInvalid):
                check_name(bad)
    after = reference._valid_name.cache_info()
    assert after.hits - before.hits >= 2 * 4  # each short name matched against the grammar once
