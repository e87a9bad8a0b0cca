"""Topology 3: two Dockyard processes on ONE storage root, round robin behind real nginx.

nginx (TLS, configured by ``dockyard proxy-config nginx`` with its ``upstream`` block
given a second server) alternates requests between the replicas, so the chunks of
one upload land on both: the upload's state must live in the shared root, not in a
process. The 300 MiB layer goes up in 10 MiB PATCHes with httpx (skopeo's chunk size
cannot be set), then skopeo pushes and pulls normally; digests must match.

The token variant runs both replicas with ``--token-auth --trusted-proxy 127.0.0.1``
(sharing one signing key, which lives beside the shared root): the realm in
``WWW-Authenticate`` must name nginx's https address, not a replica's http one, and
skopeo must be able to follow it.

Everything listens on 127.0.0.1 with ephemeral ports and lives in temporary folders.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from dockyard.cli import main
from tests.proxy import CHUNK, NginxProcess, chunked_upload, nginx_test, write_nginx_conf
from tests.proxy.topologies import (
    LAYER_BYTES,
    PASSWORD,
    USER,
    BigImage,
    Topology,
    proxy_files,
    push_and_pull,
    sha256_file,
)
from tests.support.clients import Skopeo, layout_blob, layout_entry
from tests.support.images import OCI_MANIFEST, single_image_layout
from tests.support.processes import free_port
from tests.support.server import DockyardProcess


class Replicas:
    """nginx in front of two ``dockyard serve`` processes sharing one root."""

    def __init__(self, topology: Topology, replicas: list[DockyardProcess]) -> None:
        self.topology = topology
        self.replicas = replicas

    def requests_served(self, method: str, path_part: str) -> list[int]:
        """How many ``METHOD ...path_part...`` requests each replica's access log shows."""
        pattern = re.compile(rf'"{method} [^"]*{re.escape(path_part)}')
        return [len(pattern.findall(replica.log.read_text(errors="replace"))) for replica in self.replicas]


def two_replicas(tmp: pathlib.Path, *replica_args: str, auth_at_proxy: bool) -> Iterator[Replicas]:
    nginx_tls, cert_dir, htpasswd = proxy_files(tmp)

    root = tmp / "root"
    args = list(replica_args) if auth_at_proxy else ["--htpasswd", str(htpasswd), *replica_args]
    replicas: list[DockyardProcess] = []
    nginx = None
    try:
        for number in (1, 2):  # one after the other: the first makes the shared signing key
            replica = DockyardProcess(root, *args)
            replica.log = tmp / f"replica-{number}.log"  # the same root, separate logs
            replicas.append(replica.start())
        assert replicas[0].port != replicas[1].port
        port = free_port()
        options = [
            "--server-name", "127.0.0.1",
            "--listen", f"127.0.0.1:{port}",
            "--upstream", replicas[0].host,
            "--tls-cert", nginx_tls / "127.0.0.1.crt",
            "--tls-key", nginx_tls / "127.0.0.1.key",
        ]
        if auth_at_proxy:
            options += ["--auth-at-proxy", htpasswd]
        rendered = CliRunner().invoke(main, ["proxy-config", "nginx", *map(str, options)])
        assert rendered.exit_code == 0, rendered.output
        one = f"    server {replicas[0].host};\n"
        assert rendered.output.count(one) == 1, rendered.output
        # The upstream block edited as an administrator would: a second server, round robin (nginx's default).
        site = rendered.output.replace(one, one + f"    server {replicas[1].host};\n")
        conf = write_nginx_conf(tmp / "nginx", site)
        checked = nginx_test(conf)
        assert checked.returncode == 0, checked.stderr
        nginx = NginxProcess(conf, port).start()
        yield Replicas(Topology(nginx, replicas[0], cert_dir, f"127.0.0.1:{port}", site), replicas)
    finally:
        if nginx is not None:
            nginx.stop()
        for replica in replicas:
            replica.stop()


@pytest.fixture
def replicas(tmp_path: pathlib.Path) -> Iterator[Replicas]:
    yield from two_replicas(tmp_path, auth_at_proxy=True)


@pytest.fixture
def token_replicas(tmp_path: pathlib.Path) -> Iterator[Replicas]:
    yield from two_replicas(tmp_path, "--token-auth", "--trusted-proxy", "127.0.0.1", auth_at_proxy=False)


def check_location(response: httpx.Response, replicas: Replicas) -> str:
    location = response.headers["Location"]
    for replica in replicas.replicas:
        assert replica.host not in location, location
    assert location.startswith("/") and not location.startswith("//"), location
    return location


def test_two_replicas_share_one_root_behind_round_robin_nginx(
    replicas: Replicas, skopeo: Skopeo, big_image: BigImage, tmp_path: pathlib.Path
) -> None:
    topology = replicas.topology
    layout = big_image.layout
    entry = layout_entry(layout, "big")
    manifest_bytes = layout_blob(layout, entry["digest"])
    manifest = json.loads(manifest_bytes)
    layer_path = layout / "blobs" / "sha256" / big_image.layer_digest.split(":")[1]
    name = "replicas/chunked"
    with httpx.Client(base_url=topology.url, verify=topology.verify, auth=(USER, PASSWORD), timeout=300) as client:
        chunks = chunked_upload(client, name, layer_path, big_image.layer_digest, lambda response: check_location(response, replicas))
        assert chunks == -(-layer_path.stat().st_size // CHUNK) and chunks >= 30
        config = manifest["config"]
        config_bytes = layout_blob(layout, config["digest"])
        pushed = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": config["digest"]}, content=config_bytes,
                             headers={"Content-Type": "application/octet-stream"})
        assert pushed.status_code == 201, pushed.text
        put = client.put(f"/v2/{name}/manifests/big", content=manifest_bytes, headers={"Content-Type": OCI_MANIFEST})
        assert put.status_code == 201, put.text
        assert put.headers["Docker-Content-Digest"] == big_image.manifest_digest
        # Both replicas took chunks of the one upload (nginx alternates between them).
        patches = replicas.requests_served("PATCH", f"/v2/{name}/blobs/uploads/")
        assert sum(patches) == chunks and all(count > 0 for count in patches), patches
        # Each replica serves what the other stored: ask enough times to reach both.
        for _ in range(4):
            head = client.head(f"/v2/{name}/blobs/{big_image.layer_digest}")
            assert head.status_code == 200
            assert int(head.headers["Content-Length"]) == layer_path.stat().st_size
        heads = replicas.requests_served("HEAD", f"/v2/{name}/blobs/{big_image.layer_digest}")
        assert all(count > 0 for count in heads), heads

    # skopeo pulls the chunked push back through nginx, and verifies every digest itself.
    back = tmp_path / "pulled-chunked"
    certs = str(topology.cert_dir)
    creds = f"{USER}:{PASSWORD}"
    skopeo("copy", "--preserve-digests", "--src-cert-dir", certs, "--src-creds", creds,
           f"docker://{topology.host}/{name}:big", f"oci:{back}:big")
    assert layout_entry(back, "big")["digest"] == big_image.manifest_digest
    pulled_layer = back / "blobs" / "sha256" / big_image.layer_digest.split(":")[1]
    assert pulled_layer.stat().st_size > LAYER_BYTES
    assert sha256_file(pulled_layer) == big_image.layer_digest

    # And skopeo's own push (its chunking) and pull, through the same two replicas.
    push_and_pull(skopeo, topology, big_image, tmp_path, "replicas/skopeo")


def test_token_realm_points_at_nginx_with_trusted_forwarded_headers(
    token_replicas: Replicas, skopeo: Skopeo, tmp_path: pathlib.Path
) -> None:
    topology = token_replicas.topology
    expected_realm = f"https://{topology.host}/auth/token"
    with httpx.Client(base_url=topology.url, verify=topology.verify, timeout=60) as client:
        for _ in range(4):  # both replicas answer
            refused = client.get("/v2/")
            assert refused.status_code == 401
            challenge = refused.headers["WWW-Authenticate"]
            assert challenge.startswith("Bearer "), challenge
            realm = dict(re.findall(r'(\w+)="([^"]*)"', challenge))["realm"]
            assert realm == expected_realm, challenge
            for replica in token_replicas.replicas:
                assert replica.host not in challenge
        assert all(count > 0 for count in token_replicas.requests_served("GET", "/v2/ ")), "nginx did not alternate"
        # A token from one replica is good at the other: they share the root's signing key.
        token = client.get(realm, params={"service": "dockyard", "scope": "repository:replicas/token:pull,push"}, auth=(USER, PASSWORD))
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['token']}"}
        for _ in range(4):
            assert client.get("/v2/", headers=bearer).status_code == 200

    # The replicas themselves, asked directly over plain HTTP: their own address, since
    # nothing says otherwise (127.0.0.1 is trusted, but sends no X-Forwarded-* here).
    direct = httpx.get(f"{token_replicas.replicas[0].url}/v2/", timeout=10)
    assert f'realm="{token_replicas.replicas[0].url}/auth/token"' in direct.headers["WWW-Authenticate"]

    # skopeo follows the realm (to nginx) for its token, pushes and pulls back.
    layout = tmp_path / "small"
    descriptor = single_image_layout(layout, tag="v1", seed="replicas", layer_bytes=256 * 1024)
    certs = str(topology.cert_dir)
    creds = f"{USER}:{PASSWORD}"
    remote = f"docker://{topology.host}/replicas/token:v1"
    skopeo("copy", "--preserve-digests", "--dest-cert-dir", certs, "--dest-creds", creds, f"oci:{layout}:v1", remote)
    back = tmp_path / "back"
    skopeo("copy", "--preserve-digests", "--src-cert-dir", certs, "--src-creds", creds, remote, f"oci:{back}:v1")
    assert layout_entry(back, "v1")["digest"] == descriptor["digest"]
    manifest = json.loads(layout_blob(back, descriptor["digest"]))
    for layer in manifest["layers"]:
        blob = layout_blob(back, layer["digest"])
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
    tokens = token_replicas.requests_served("GET", "/auth/token")
    assert sum(tokens) >= 2, tokens  # skopeo got its tokens from the realm, through nginx
