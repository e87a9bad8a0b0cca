"""Real nginx in front of a real Dockyard, as ``dockyard proxy-config nginx`` configures it, and
an image with a 300 MiB layer to push through it: shared by the proxy topology tests."""

from __future__ import annotations

import hashlib
import json
import pathlib
import ssl
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from click.testing import CliRunner

from dockyard.cli import main
from tests.proxy import NGINX, NginxProcess, nginx_test, write_nginx_conf
from tests.support.clients import Skopeo, layout_blob, layout_entry
from tests.support.images import OCI_CONFIG, OCI_MANIFEST, Layout
from tests.support.processes import free_port
from tests.support.server import DockyardProcess
from tests.support.tools import require_tool

LAYER_BYTES = 300 * 1024 * 1024
USER, PASSWORD = "pusher", "s3cret-proxy-pass"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class BigImage:
    layout: pathlib.Path
    manifest_digest: str
    layer_digest: str


def write_big_image(path: pathlib.Path) -> BigImage:
    """An OCI layout whose one layer is an uncompressed tar holding 300 MiB of random bytes.

    Written in chunks (never 300 MiB in memory, no gzip of incompressible data).
    """
    layout = Layout(path)
    info = tarfile.TarInfo("data/random.bin")
    info.size, info.mtime, info.mode = LAYER_BYTES, 0, 0o644
    digest = hashlib.sha256()
    partial = path / "blobs" / "sha256" / "partial"
    with open(partial, "wb") as out, open("/dev/urandom", "rb") as random:
        def write(data: bytes) -> None:
            digest.update(data)
            out.write(data)

        write(info.tobuf(format=tarfile.PAX_FORMAT))
        left = LAYER_BYTES
        while left:
            chunk = random.read(min(left, 8 * 1024 * 1024))
            write(chunk)
            left -= len(chunk)
        write(b"\0" * (-LAYER_BYTES % 512) + b"\0" * 1024)  # padding, then the end-of-archive blocks
        size = out.tell()
    layer_digest = "sha256:" + digest.hexdigest()
    partial.rename(path / "blobs" / "sha256" / digest.hexdigest())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},  # uncompressed: diff_id = digest
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": layout.blob(json.dumps(config).encode(), OCI_CONFIG),
        "layers": [{"mediaType": OCI_TAR, "digest": layer_digest, "size": size}],
    }
    descriptor = layout.blob(json.dumps(manifest).encode(), OCI_MANIFEST)
    layout.tag(descriptor, "big")
    return BigImage(path, descriptor["digest"], layer_digest)


def dockyard_cli(*args: str | pathlib.Path) -> None:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output


def make_htpasswd(path: pathlib.Path) -> pathlib.Path:
    """Debian's ``htpasswd -B`` (bcrypt), as an administrator would."""
    htpasswd = require_tool("htpasswd")["htpasswd"]
    subprocess.run([htpasswd, "-B", "-b", "-c", str(path), USER, PASSWORD], check=True, capture_output=True, timeout=60)
    return path


@dataclass
class Topology:
    nginx: NginxProcess
    dockyard: DockyardProcess
    cert_dir: pathlib.Path  # nginx's CA as ca.crt, for skopeo
    host: str  # nginx's 127.0.0.1:PORT
    site: str

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))


def proxy_files(tmp: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """nginx's TLS folder (a CA and a certificate for 127.0.0.1), the clients' certificate folder
    (the CA only) and a user file, for an nginx in front of Dockyard."""
    require_tool(NGINX)
    nginx_tls = tmp / "nginx-tls"
    dockyard_cli("certs", "ca", "--dir", nginx_tls)
    dockyard_cli("certs", "issue", "127.0.0.1", "--dir", nginx_tls)
    cert_dir = tmp / "client-certs"  # only the CA: skopeo would take ca.key for a client key
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes((nginx_tls / "ca.crt").read_bytes())
    return nginx_tls, cert_dir, make_htpasswd(tmp / "users.htpasswd")


def start_topology(tmp: pathlib.Path, *, auth_at_proxy: bool) -> Iterator[Topology]:
    nginx_tls, cert_dir, htpasswd = proxy_files(tmp)

    if auth_at_proxy:
        dockyard = DockyardProcess(tmp / "root")  # --insecure-http, no auth
    else:
        dockyard = DockyardProcess(tmp / "root", "--htpasswd", str(htpasswd), tls=True)
    dockyard.start()
    nginx = None
    try:
        port = free_port()
        args = [
            "--server-name", "127.0.0.1",
            "--listen", f"127.0.0.1:{port}",
            "--upstream", dockyard.host,
            "--tls-cert", nginx_tls / "127.0.0.1.crt",
            "--tls-key", nginx_tls / "127.0.0.1.key",
        ]
        if auth_at_proxy:
            args += ["--auth-at-proxy", htpasswd]
        else:
            args += ["--upstream-tls", dockyard.tls_dir / "ca.crt"]
        rendered = CliRunner().invoke(main, ["proxy-config", "nginx", *map(str, args)])
        assert rendered.exit_code == 0, rendered.output
        conf = write_nginx_conf(tmp / "nginx", rendered.output)
        checked = nginx_test(conf)
        assert checked.returncode == 0, checked.stderr
        nginx = NginxProcess(conf, port).start()
        yield Topology(nginx, dockyard, cert_dir, f"127.0.0.1:{port}", rendered.output)
    finally:
        if nginx is not None:
            nginx.stop()
        dockyard.stop()


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(8 * 1024 * 1024):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def push_and_pull(skopeo: Skopeo, topology: Topology, image: BigImage, tmp: pathlib.Path, name: str) -> None:
    remote = f"docker://{topology.host}/{name}:big"
    certs = str(topology.cert_dir)
    creds = f"{USER}:{PASSWORD}"
    try:
        skopeo("copy", "--preserve-digests", "--dest-cert-dir", certs, "--dest-creds", creds, f"oci:{image.layout}:big", remote)
        back = tmp / "pulled"
        skopeo("copy", "--preserve-digests", "--src-cert-dir", certs, "--src-creds", creds, remote, f"oci:{back}:big")
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- nginx ---\n{topology.nginx.errors()}\n--- site ---\n{topology.site}") from None
    entry = layout_entry(back, "big")
    assert entry["digest"] == image.manifest_digest
    manifest = json.loads(layout_blob(back, entry["digest"]))
    assert [layer["digest"] for layer in manifest["layers"]] == [image.layer_digest]
    pulled_layer = back / "blobs" / "sha256" / image.layer_digest.split(":")[1]
    assert pulled_layer.stat().st_size > LAYER_BYTES
    assert sha256_file(pulled_layer) == image.layer_digest
    # Dockyard itself holds the same manifest.
    with httpx.Client(base_url=topology.url, verify=topology.verify, auth=(USER, PASSWORD), timeout=60) as client:
        served = client.get(f"/v2/{name}/manifests/big", headers={"Accept": OCI_MANIFEST})
        assert served.status_code == 200, served.text
        assert served.headers["Docker-Content-Digest"] == image.manifest_digest
        assert "sha256:" + hashlib.sha256(served.content).hexdigest() == image.manifest_digest
