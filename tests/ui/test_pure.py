"""The web page's pure parts: sizes and times for people, config decoding, manifest summaries,
tag pages and sort orders, session cookies and CSRF tokens, storage totals."""

from __future__ import annotations

import asyncio
import datetime
import json

import pytest

from dockyard.sizes import human_size
from dockyard.ui.browse import RepositoryOverview, storage_use
from dockyard.ui.format import command_line, cosign_subject, cosign_tag, parse_time, platform_name, relative_time, short_digest
from dockyard.ui.pagination import REPOSITORY_SORT_KEYS, Page, Sort, page_numbers, page_of, parse_count, parse_sort
from dockyard.ui.sessions import SessionSigner, session_key
from dockyard.ui.summaries import Blob, LruCache, decode_config, summarize
from dockyard.ui.views import next_path

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("size", "text"), [
    (None, "—"), (0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (1536, "1.5 KB"), (99_949, "99.9 KB"),
    (123_456_789, "123 MB"), (5 * 10**9, "5.0 GB"), (2 * 10**18, "2000 PB"),
])
def test_human_size(size: int | None, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "just now"), (59, "just now"), (60, "1 minute ago"), (7200, "2 hours ago"), (86400, "1 day ago"),
    (86400 * 45, "1 month ago"), (86400 * 800, "2 years ago"), (-3600, "in the future"),
])
def test_relative_time(seconds: int, text: str) -> None:
    assert relative_time(NOW - datetime.timedelta(seconds=seconds), NOW) == text
    assert relative_time(None, NOW) == "—"


def test_times_digests_and_platforms() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert parse_time("2026-01-01T02:00:00.5+02:00") == datetime.datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=datetime.UTC)
    assert parse_time("2026-01-01T00:00:00").tzinfo == datetime.UTC
    assert parse_time("2023-10-10T10:10:10.123456789Z").microsecond == 123456  # Go writes nanoseconds
    assert parse_time("yesterday") is None and parse_time(12) is None
    assert short_digest(DIGEST) == "sha256:abababababab"
    assert short_digest("no-colon-here-at-all") == "no-colon-her"
    assert platform_name({"os": "linux", "architecture": "arm64", "variant": "v8"}) == "linux/arm64/v8"
    assert platform_name(None) == "unknown"


def test_decode_config_reads_what_the_page_shows() -> None:
    layers = [Blob("sha256:" + "1" * 64, "layer", 100), Blob("sha256:" + "2" * 64, "layer", 250)]
    config = decode_config({
        "created": "2026-01-02T03:04:05Z", "architecture": "arm64", "os": "linux", "variant": "v8",
        "config": {
            "Entrypoint": ["/bin/app"], "Cmd": "serve", "Env": ["PATH=/bin", "EMPTY=", "A=b=c"],
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}, "Labels": {"team": "x"}, "WorkingDir": "/srv", "User": "app",
        },
        "history": [
            {"created": "2026-01-01T00:00:00Z", "created_by": "ADD rootfs /"},
            {"created_by": "ENV A=b", "empty_layer": True},
            "not a step",
            {"created_by": "RUN make", "comment": "buildkit"},
        ],
    }, layers)
    assert config.created == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert (config.os, config.architecture, config.variant) == ("linux", "arm64", "v8")
    assert config.entrypoint == ["/bin/app"] and config.cmd == ["serve"]
    assert config.env == [("PATH", "/bin"), ("EMPTY", ""), ("A", "b=c")]
    assert config.exposed_ports == ["53/udp", "8080/tcp"]
    assert config.labels == {"team": "x"} and config.working_dir == "/srv" and config.user == "app"
    assert [(step.created_by, step.size) for step in config.history] == [("ADD rootfs /", 100), ("ENV A=b", None), ("RUN make", 250)]
    assert config.history[1].empty_layer and config.history[1].created is None


@pytest.mark.parametrize("document", [None, [], "text", {"config": "nope", "history": "nope"}, {"config": {"Labels": [1], "Env": 5}}])
def test_decode_config_survives_malformed_configs(document: object) -> None:
    config = decode_config(document)
    assert config.cmd == [] and config.labels == {} and config.env == [] and config.history == []


def _manifest(**fields: object) -> bytes:
    return json.dumps({"schemaVersion": 2, **fields}).encode()


def test_summaries_tell_indexes_images_and_artifacts_apart() -> None:
    blob = {"digest": "sha256:" + "c" * 64, "size": 10}
    index = summarize(_manifest(mediaType="application/vnd.oci.image.index.v1+json", manifests=[
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob},
    ]), DIGEST)
    assert index.kind == "index" and index.platforms == ["linux/amd64"] and index.blobs == {}

    image = summarize(_manifest(
        mediaType="application/vnd.docker.distribution.manifest.v2+json",
        config={"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + "d" * 64, "size": 5},
        layers=[{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", **blob}] * 2,
    ), DIGEST)
    assert image.kind == "image" and image.artifact_type is None
    assert image.blobs == {"sha256:" + "d" * 64: 5, blob["digest"]: 10}  # a layer named twice counts once

    artifact = summarize(_manifest(
        mediaType="application/vnd.oci.image.manifest.v1+json", artifactType="application/spdx+json",
        config={"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:" + "e" * 64, "size": 2},
        layers=[{"mediaType": "text/plain", **blob, "annotations": {"org.opencontainers.image.title": "sbom.json"}}],
        subject={"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 1},
    ), "sha256:" + "f" * 64)
    assert artifact.kind == "artifact" and artifact.artifact_type == "application/spdx+json"
    assert artifact.subject == DIGEST and artifact.layers[0].title == "sbom.json"

    old_style = summarize(_manifest(
        config={"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "sha256:" + "e" * 64, "size": 2}, layers=[],
    ), DIGEST)
    assert old_style.kind == "artifact" and old_style.artifact_type == "application/vnd.cncf.helm.config.v1+json"
    assert old_style.label == "Helm chart" and old_style.role is None
    assert artifact.role == "sbom" and artifact.label == "SPDX SBOM"
    assert image.label == "image" and image.role is None

    with pytest.raises(ValueError):
        summarize(b"{not json", DIGEST)


def test_signatures_sboms_and_attestations_are_named_as_such() -> None:
    empty = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:" + "e" * 64, "size": 2}
    image_config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "d" * 64, "size": 5}

    def layer(media_type: str, **annotations: str) -> dict:
        return {"mediaType": media_type, "digest": "sha256:" + "c" * 64, "size": 10, "annotations": annotations}

    # cosign's tag-based signature: an image config, simple-signing layers, no artifact type.
    cosign = summarize(_manifest(config=image_config, layers=[layer("application/vnd.dev.cosign.simplesigning.v1+json")] * 2), DIGEST)
    assert (cosign.kind, cosign.role, cosign.label) == ("artifact", "signature", "Cosign signature")
    assert cosign.artifact_type == "application/vnd.dev.cosign.simplesigning.v1+json"  # not the image config type
    notation = summarize(_manifest(
        artifactType="application/vnd.cncf.notary.signature", config=empty, layers=[layer("application/jose+json")],
    ), DIGEST)
    assert (notation.kind, notation.role, notation.label) == ("artifact", "signature", "Notation signature")
    cyclonedx = summarize(_manifest(config=empty, artifactType="application/vnd.cyclonedx+json", layers=[]), DIGEST)
    assert (cyclonedx.role, cyclonedx.label) == ("sbom", "CycloneDX SBOM")
    attestation = summarize(_manifest(config=image_config, layers=[layer("application/vnd.dsse.envelope.v1+json")]), DIGEST)
    assert (attestation.kind, attestation.role) == ("artifact", "attestation")
    unknown = summarize(_manifest(artifactType="application/x.example", config=empty, layers=[]), DIGEST)
    assert (unknown.role, unknown.label) == (None, "application/x.example")

    layers = summarize(_manifest(config=image_config, layers=[
        layer("application/vnd.oci.image.layer.v1.tar+gzip"), layer("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        layer("application/vnd.oci.image.layer.v1.tar+zstd"),
        layer("application/vnd.oci.image.layer.v1.tar+zstd", **{"io.github.containers.zstd-chunked.manifest-checksum": "sha256:1"}),
        layer("application/vnd.oci.image.layer.v1.tar"),
    ]), DIGEST).layers
    assert [blob.compression for blob in layers] == ["gzip", "gzip", "zstd", "zstd:chunked", "none"]


def test_commands_as_written_and_cosign_tags() -> None:
    assert command_line(["/bin/sh", "-c", "make && ./run > /dev/null"]) == ("/bin/sh -c", "make && ./run > /dev/null")
    assert command_line(["/bin/app", "--name", "it's"]) == ("", "/bin/app --name 'it'\"'\"'s'")
    assert command_line(["--serve"]) == ("", "--serve")
    assert cosign_tag(DIGEST, "sig") == "sha256-" + "ab" * 32 + ".sig"
    assert cosign_subject(cosign_tag(DIGEST, "att")) == DIGEST
    assert cosign_subject("sha256-abc.sig") is None and cosign_subject("1.0") is None


def test_page_numbers() -> None:
    assert page_numbers(Page(1, 10, 5)) == [1]
    assert page_numbers(Page(1, 10, 100)) == [1, 2, 3, None, 10]
    assert page_numbers(Page(6, 10, 100)) == [1, None, 4, 5, 6, 7, 8, None, 10]
    assert page_numbers(Page(4, 10, 60)) == [1, 2, 3, 4, 5, 6]


async def test_lru_cache_shares_one_load_and_forgets_the_oldest() -> None:
    cache = LruCache(2)
    loads: list[str] = []

    async def load(key: str) -> str:
        loads.append(key)
        await asyncio.sleep(0.01)
        return key.upper()

    results = await asyncio.gather(*(cache.get("a", lambda: load("a")) for _ in range(5)))
    assert results == ["A"] * 5 and loads == ["a"]
    await cache.get("b", lambda: load("b"))
    await cache.get("c", lambda: load("c"))  # evicts a
    await cache.get("a", lambda: load("a"))
    assert loads == ["a", "b", "c", "a"]

    async def failing() -> str:
        raise RuntimeError("storage down")

    with pytest.raises(RuntimeError):
        await cache.get("x", failing)
    assert await cache.get("x", lambda: load("x")) == "X"  # a failure is not cached


@pytest.mark.parametrize(("text", "key", "descending"), [
    (None, "pushed", True), ("size", "size", False), ("-pushed", "pushed", True), ("-bogus", "pushed", True),
])
def test_parse_sort(text: str | None, key: str, descending: bool) -> None:
    assert parse_sort(text) == Sort(key, descending)  # newest push first unless asked otherwise
    assert parse_sort(text, REPOSITORY_SORT_KEYS) == (Sort(key, descending) if key in REPOSITORY_SORT_KEYS else Sort("name", False))


def test_sort_toggles() -> None:
    assert Sort("name", False).toggled("name") == Sort("name", True)
    assert Sort("name", False).toggled("pushed") == Sort("pushed", True)  # newest first
    assert Sort("pushed", True).text == "-pushed"


def test_pages() -> None:
    page = page_of(5002, "51", 100)
    assert (page.number, page.pages, page.start, page.end) == (51, 51, 5000, 5002)
    assert page.has_previous and not page.has_next
    assert page_of(5002, "999", 100).number == 51
    assert page_of(5002, "-3", 100).number == 1
    assert page_of(5002, "two", 100).number == 1
    empty = page_of(0, None, 100)
    assert (empty.pages, empty.start, empty.end, empty.has_next) == (1, 0, 0, False)
    assert parse_count(None, 50, 500) == 50 and parse_count("9999", 50, 500) == 500
    assert parse_count("0", 50, 500) == 1 and parse_count("x", 50, 500) == 50


def test_session_cookies_are_signed_and_expire() -> None:
    signer = SessionSigner(b"k" * 32)
    session = signer.new("alice")
    cookie = signer.encode(session)
    assert signer.decode(cookie) == session
    assert SessionSigner(b"other key" * 4).decode(cookie) is None
    body, _, mac = cookie.partition(".")
    forged = signer.encode(signer.new("admin")).partition(".")[0] + "." + mac
    assert signer.decode(forged) is None
    for broken in (None, "", "no-dot", "!!!.???", body + "."):
        assert signer.decode(broken) is None
    expired = SessionSigner(b"k" * 32, lifetime=-1)
    assert expired.decode(expired.encode(expired.new("alice"))) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    signer = SessionSigner(b"k" * 32)
    one, two = signer.new("alice"), signer.new("alice")
    token = signer.csrf_token(one)
    assert signer.check_csrf(one, token)
    assert not signer.check_csrf(two, token)
    assert not signer.check_csrf(one, None) and not signer.check_csrf(one, "") and not signer.check_csrf(one, "é")


def test_session_keys_follow_the_shared_secret() -> None:
    assert session_key("a long shared secret") == session_key("a long shared secret")
    assert session_key("a long shared secret") != session_key("another shared secret")
    assert session_key("") != session_key("")  # no secret: a new random key each start


@pytest.mark.parametrize(("value", "path"), [
    ("/ui/r/team/app?sort=-pushed", "/ui/r/team/app?sort=-pushed"), ("//evil.example/", "/"),
    ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("/ui/login?next=/", "/"), (None, "/"),
])
def test_sign_in_goes_back_only_to_this_site(value: object, path: str) -> None:
    assert next_path(value) == path


def test_storage_use_counts_shared_blobs_once() -> None:
    overviews = [
        RepositoryOverview("a", 1, {"x": 100, "y": 10}, None),
        RepositoryOverview("b", 2, {"x": 100, "z": 1}, None),
        RepositoryOverview("c", 0, {}, None),
    ]
    use = storage_use(overviews, largest=2)
    assert (use.total, use.shared) == (111, 100)
    assert [overview.name for overview in use.repositories] == ["a", "b"]
