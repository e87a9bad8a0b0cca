"""registry:2's keys that change what is served, each through ``dockyard serve --config``: honoured
(pushed and checked through the API) or refused at start in one line naming the key."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap
from collections.abc import Callable

import httpx
import pytest
import redis

from tests.support.redis import RedisProcess
from tests.support.registry_client import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, descriptor, push_blob, push_image, sha256
from tests.support.server import DockyardProcess

FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
Start = Callable[..., DockyardProcess]


def config_file(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "config.yml"
    # A storage section in ``text`` replaces this one (the last of two keys wins); --root sets the folder.
    path.write_text("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /unused\n" + textwrap.dedent(text))
    return path


def serve(start_server: Start, tmp_path: pathlib.Path, text: str) -> httpx.Client:
    server = start_server("--config", str(config_file(tmp_path, text)))
    return httpx.Client(base_url=server.url, timeout=30)


def refusal(tmp_path: pathlib.Path, text: str) -> str:
    """The one line ``dockyard serve --config`` stops with."""
    command = [sys.executable, "-m", "dockyard", "serve", "--config", str(config_file(tmp_path, text)),
               "--addr", "127.0.0.1:0", "--root", str(tmp_path / "root")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("notifications:\n  endpoints:\n    - {name: n, url: https://n.example.com}\n    - {name: n, url: https://m.example.com}\n",
         "Error: notifications.endpoints.1.name: 'n' names two endpoints; each keeps its own backlog by name"),
        ("notifications:\n  endpoints:\n    - {name: n, url: https://n.example.com}\ndockyard:\n  events:\n    endpoints:\n      - {name: m}\n",
         "Error: dockyard.events.endpoints.0.name: no endpoint of notifications.endpoints is named 'm'"),
        ("notifications:\n  endpoints:\n    - {name: n, url: https://n.example.com}\n"
         "dockyard:\n  events:\n    endpoints:\n      - {name: n, secret_file: /nonexistent/secret}\n",
         "Error: dockyard.events.endpoints.0.secret_file: cannot read /nonexistent/secret"),
        ("proxy:\n  remoteurl: registry-1.docker.io\n",
         "Error: proxy.remoteurl: expected the upstream's http:// or https:// URL, got 'registry-1.docker.io'"),
        ("proxy:\n  remoteurl: https://registry-1.docker.io\ndockyard:\n  proxy:\n    ca_file: /nonexistent/ca.pem\n",
         "Error: dockyard.proxy.ca_file: cannot read /nonexistent/ca.pem"),
        ("proxy:\n  remoteurl: https://registry-1.docker.io\ndockyard:\n  mirrors:\n    - {prefix: ghcr.io, remoteurl: https://ghcr.io}\n",
         "Error: dockyard.mirrors: set with a proxy section, which mirrors the whole registry; move its upstream into dockyard.mirrors"),
        ("dockyard:\n  mirrors:\n    - {prefix: docker.io, remoteurl: https://a.example}\n    - {prefix: docker.io/library, remoteurl: https://b.example}\n",
         "Error: dockyard.mirrors.1.prefix: 'docker.io/library' overlaps dockyard.mirrors.0.prefix 'docker.io'"),
        ("dockyard:\n  mirrors:\n    - {prefix: ghcr.io/, remoteurl: https://a.example}\n    - {prefix: ghcr.io, remoteurl: https://b.example}\n",
         "Error: dockyard.mirrors.1.prefix: 'ghcr.io' overlaps dockyard.mirrors.0.prefix 'ghcr.io'"),
        ("dockyard:\n  mirrors:\n    - {prefix: 'localhost:5000', remoteurl: https://a.example}\n",
         "Error: dockyard.mirrors.0.prefix: expected the start of repository names, such as docker.io or ghcr.io, got 'localhost:5000'"),
        ("dockyard:\n  mirrors:\n    - {prefix: quay.io, remoteurl: https://a.example, password: p, password_file: /etc/hostname}\n",
         "Error: dockyard.mirrors.0: password and password_file both set; keep one"),
        ("dockyard:\n  mirrors:\n    - {prefix: quay.io, remoteurl: https://a.example, password_file: /nonexistent/password}\n",
         "Error: dockyard.mirrors.0.password_file: cannot read /nonexistent/password"),
        ("dockyard:\n  mirrors:\n    - {prefix: quay.io, remoteurl: quay.io}\n",
         "Error: dockyard.mirrors.0.remoteurl: expected the upstream's http:// or https:// URL, got 'quay.io'"),
        ("dockyard:\n  proxy:\n    sync: [{repository: library/alpine, tags: [latest]}]\n",
         "Error: dockyard.proxy.sync: set without a proxy section, whose upstream it syncs from"),
        ("dockyard:\n  mirrors:\n    - {prefix: quay.io, remoteurl: https://a.example, sync: [{repository: Team/App, tags: [latest]}]}\n",
         "Error: dockyard.mirrors.0.sync.0.repository: expected a repository name, such as library/alpine, got 'Team/App'"),
        ("dockyard:\n  mirrors:\n    - {prefix: quay.io, remoteurl: https://a.example, sync: [{repository: a, tags: [latest], interval: 0s}]}\n",
         "Error: dockyard.mirrors.0.sync.0.interval: expected at least 1s, got 0s"),
        ("dockyard:\n  mirrors:\n    - {prefix: quay.io, remoteurl: https://a.example, sync: [{repository: a, tags: ['']}]}\n",
         "Error: dockyard.mirrors.0.sync.0.tags: expected tag globs, such as latest or '3.*'"),
        ("proxy:\n  remoteurl: https://a.example\ndockyard:\n  proxy:\n    sync: [{repository: a, tags: [latest]}, {repository: a, tags: ['1.*']}]\n",
         "Error: dockyard.proxy.sync.1.repository: 'a' is also dockyard.proxy.sync.0's; give it one entry"),
        ("validation:\n  disabled: true\n",
         "Error: validation.disabled: refused: registry:2 would then accept layers naming any URL and indexes whose manifests "
         "are missing; allow URLs with validation.manifests.urls.allow and choose validation.manifests.indexes.platforms instead"),
        ("validation:\n  manifests:\n    urls:\n      allow: ['(']\n",
         "Error: validation.manifests.urls.allow.0: not a regular expression: missing ), unterminated subpattern at position 0"),
        ("auth:\n  token: {realm: https://a.example.com/token, service: s, issuer: i, jwks: /dev/null, autoredirect: true}\n",
         "Error: auth.token.autoredirect: refused: the token realm would be built from each request's Host header; "
         "set auth.token.realm to the token service's URL"),
        ("redis:\n  addrs: [127.0.0.1:7000, 127.0.0.1:7001]\n",
         "Error: redis.addrs: 2 addresses name a Redis cluster or sentinels, which dockyard does not support; name one server"),
        ("redis:\n  addrs: [127.0.0.1:26379]\n  mastername: mymaster\n",
         "Error: redis.mastername: Redis Sentinel is not supported; name the server in redis.addrs"),
        ("storage:\n  filesystem:\n    maxthreads: 10\n", "Error: storage.filesystem.maxthreads: expected at least 25, got 10"),
    ],
)
def test_refused_at_start_in_one_line(tmp_path: pathlib.Path, text: str, line: str) -> None:
    assert refusal(tmp_path, text) == line


def test_catalog_maxentries_bounds_every_page(start_server: Start, tmp_path: pathlib.Path) -> None:
    client = serve(start_server, tmp_path, "catalog:\n  maxentries: 2\n")
    for name in ("a", "b", "c"):
        push_image(client, name, "v1")
    unasked = client.get("/v2/_catalog")
    assert unasked.json() == {"repositories": ["a", "b"]}
    assert unasked.headers["Link"] == '</v2/_catalog?n=2&last=b>; rel="next"'
    assert client.get("/v2/_catalog", params={"n": 50}).json() == {"repositories": ["a", "b"]}
    assert client.get("/v2/_catalog", params={"n": 2, "last": "b"}).json() == {"repositories": ["c"]}


def test_tags_maxtags_bounds_every_page(start_server: Start, tmp_path: pathlib.Path) -> None:
    client = serve(start_server, tmp_path, "tags:\n  maxtags: 2\n")
    for tag in ("a", "b", "c"):
        push_image(client, "app", tag)
    asked = client.get("/v2/app/tags/list", params={"n": 50})
    assert asked.json() == {"name": "app", "tags": ["a", "b"]}
    assert asked.headers["Link"] == '</v2/app/tags/list?n=2&last=b>; rel="next"'
    assert client.get("/v2/app/tags/list").json()["tags"] == ["a", "b"]
    assert client.get("/v2/app/tags/list", params={"n": 2, "last": "b"}).json()["tags"] == ["c"]


def foreign_image(client: httpx.Client, url: str) -> httpx.Response:
    config = push_blob(client, "win", b"{}")
    content = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config, "size": 2},
        "layers": [descriptor(FOREIGN, b"windows base layer", urls=[url])],
    }).encode()
    return client.put("/v2/win/manifests/v1", content=content, headers={"Content-Type": DOCKER_MANIFEST})


def test_layer_urls_without_allow_or_deny_are_taken_as_the_oci_conformance_suite_expects(start_server: Start, tmp_path: pathlib.Path) -> None:
    client = serve(start_server, tmp_path, "")
    assert foreign_image(client, "https://mcr.microsoft.com/layer.tar.gz").status_code == 201
    refused = foreign_image(client, "ftp://mcr.microsoft.com/layer.tar.gz")  # only http(s), without a fragment
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "MANIFEST_INVALID"


def test_layer_urls_allow_and_deny(start_server: Start, tmp_path: pathlib.Path) -> None:
    client = serve(start_server, tmp_path, r"""
        validation:
          manifests:
            urls:
              allow: ['^https://([^/]+\.)?microsoft\.com/']
              deny: ['^https://evil\.microsoft\.com/']
        """)
    assert foreign_image(client, "https://mcr.microsoft.com/layer.tar.gz").status_code == 201
    for url in ("https://evil.microsoft.com/layer.tar.gz", "https://example.com/layer.tar.gz", "ftp://mcr.microsoft.com/layer"):
        refused = foreign_image(client, url)
        assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "MANIFEST_INVALID", url


def index_of(client: httpx.Client, present: str) -> bytes:
    """An index of an image for ``present`` (pushed) and one for another architecture (never pushed)."""
    digest, content = push_image(client, "multi", seed=present)
    missing = "arm64" if present == "amd64" else "amd64"
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(content), "platform": {"architecture": present, "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": sha256(b"absent " + missing.encode()), "size": 9, "platform": {"architecture": missing, "os": "linux"}},
    ]}).encode()


def put_index(client: httpx.Client, content: bytes) -> httpx.Response:
    return client.put("/v2/multi/manifests/latest", content=content, headers={"Content-Type": OCI_INDEX})


def test_index_platforms_list_checks_only_those_platforms(start_server: Start, tmp_path: pathlib.Path) -> None:
    client = serve(start_server, tmp_path, """
        validation:
          manifests:
            indexes:
              platforms: list
              platformlist: [{architecture: amd64, os: linux}]
        """)
    assert put_index(client, index_of(client, "amd64")).status_code == 201  # the arm64 one is not checked
    refused = put_index(client, index_of(client, "arm64"))
    assert refused.status_code == 404 and refused.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


def test_index_platforms_none_checks_no_manifest_and_warns(start_server: Start, tmp_path: pathlib.Path) -> None:
    server = start_server("--config", str(config_file(tmp_path, "validation:\n  manifests:\n    indexes:\n      platforms: none\n")))
    client = httpx.Client(base_url=server.url, timeout=30)
    assert put_index(client, index_of(client, "arm64")).status_code == 201
    assert "validation.manifests.indexes.platforms: none: an index is accepted with its manifests missing" in server.log.read_text()


def test_index_platforms_all_is_the_default(start_server: Start, tmp_path: pathlib.Path) -> None:
    client = serve(start_server, tmp_path, "")
    assert put_index(client, index_of(client, "amd64")).status_code == 404


def test_filesystem_maxthreads_sizes_the_io_threads(start_server: Start, tmp_path: pathlib.Path) -> None:
    server = start_server("--config", str(config_file(tmp_path, "storage:\n  filesystem:\n    maxthreads: 30\n")))
    push_image(httpx.Client(base_url=server.url), "app", "v1")
    assert "filesystem I/O on up to 30 threads (storage.filesystem.maxthreads)" in server.log.read_text()


def test_old_loglevel_applies_when_log_level_is_unset(start_server: Start, tmp_path: pathlib.Path) -> None:
    quiet = start_server("--config", str(config_file(tmp_path, "loglevel: error\n")))
    assert "filesystem I/O on up to" not in quiet.log.read_text()  # an info line, below error
    quiet.stop()
    (tmp_path / "root.log").unlink()
    chosen = start_server("--config", str(config_file(tmp_path, "loglevel: error\nlog:\n  level: info\n")))
    assert "filesystem I/O on up to 100 threads" in chosen.log.read_text()


def test_registry3_redis_layout_with_the_old_cache_name(start_server: Start, tmp_path: pathlib.Path, redis_server: RedisProcess) -> None:
    watcher = redis.Redis(host="127.0.0.1", port=redis_server.port, db=3)
    watcher.flushdb()
    client = serve(start_server, tmp_path, f"""
        storage:
          filesystem: {{rootdirectory: /unused}}
          cache:
            layerinfo: redis
          tag:
            concurrencylimit: 8
        redis:
          addrs: ["{redis_server.addr}"]
          db: 3
          clientname: dockyard-test
          poolsize: 4
          maxidleconns: 2
          connmaxidletime: 300s
          dialtimeout: 1s
          readtimeout: 1s
          writetimeout: 1s
        """)
    digest, _ = push_image(client, "app", "v1")
    assert client.get(f"/v2/app/manifests/{digest}").status_code == 200
    assert watcher.keys("dockyard:v1:*")  # in db 3 of the one server addrs names
    assert any(entry["name"] == "dockyard-test" for entry in watcher.client_list())
