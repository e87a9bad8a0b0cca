"""A minimal, low-overhead Distribution API client on ``http.client`` (one keep-alive connection).

Blob bodies go from their file to the socket with ``socket.sendfile`` (the kernel
copies them; over TLS Python falls back to sending them block by block) and
downloads are read into one reused buffer, so the client spends as little CPU as
it can on the machine the server runs on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import pathlib
import re
import shutil
import ssl
import subprocess
from urllib.parse import urljoin, urlsplit

BLOCK = 1 << 20
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


IMAGE_CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()


class RegistryError(RuntimeError):
    pass


def image_manifest(config_digest: str, layer_digest: str, layer_size: int) -> bytes:
    """The manifest :meth:`Client.push_image` pushes: :data:`IMAGE_CONFIG` and one layer."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(IMAGE_CONFIG)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
    }).encode()


@dataclasses.dataclass(frozen=True)
class FileSlice:
    """``length`` bytes of the file at ``path`` from ``offset``: a request body sent with ``socket.sendfile``."""

    path: pathlib.Path
    offset: int
    length: int


def curl_download(url: str, headers: dict[str, str] | None = None, cafile: pathlib.Path | None = None) -> tuple[int, int, float]:
    """GET ``url`` with curl into /dev/null, following redirects; bytes received, redirects followed, seconds.

    Large downloads use curl rather than :class:`Client`: with two cores the client
    shares the machine with the server, and Python's TLS client spends more CPU per
    byte (0.78 s per GiB with AES-256-GCM) than either server does, so it, not the
    server, set the rate. The seconds are curl's own transfer time, without its start.
    """
    command = curl_command(url, "%{size_download} %{num_redirects} %{time_total}", headers, cafile)
    result = subprocess.run(command, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    size, redirects, seconds = curl_output(url, result.returncode, result.stdout, result.stderr)
    return int(size), int(redirects), float(seconds)


def curl_command(url: str, write_out: str, headers: dict[str, str] | None = None, cafile: pathlib.Path | None = None) -> list[str]:
    """curl GETting ``url`` into /dev/null, following redirects, and printing ``write_out`` (its variables)."""
    binary = shutil.which("curl")
    if binary is None:
        raise RuntimeError("curl is not installed (apt-get install curl, or use bench/run)")
    command = [binary, "--silent", "--show-error", "--fail", "--location", "--output", "/dev/null", "--write-out", write_out]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    if cafile is not None:
        command += ["--cacert", str(cafile)]
    return [*command, url]


def curl_output(url: str, returncode: int, stdout: str, stderr: str) -> list[str]:
    """The values a :func:`curl_command` printed, or :class:`RegistryError` if it failed."""
    if returncode != 0:
        raise RegistryError(f"GET {url}: curl exited {returncode}: {stderr.strip()[:500]}")
    return stdout.split()


class Client:
    """One connection to a registry at ``host`` (``127.0.0.1:PORT``): TLS with ``context``, ``headers`` on every request."""

    def __init__(self, host: str, timeout: float = 600, context: ssl.SSLContext | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.host = host
        self.headers = headers or {}
        self.connection = (
            http.client.HTTPSConnection(host, timeout=timeout, blocksize=BLOCK, context=context) if context
            else http.client.HTTPConnection(host, timeout=timeout, blocksize=BLOCK)
        )

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self, method: str, target: str, body: bytes | FileSlice | None = None,
        headers: dict[str, str] | None = None, expect: int = 200,
    ) -> http.client.HTTPResponse:
        """Send a request; the response, headers read, body not (read or ``drain`` it)."""
        all_headers = {**self.headers, **(headers or {})}
        if isinstance(body, FileSlice):
            self._send_file(method, target, body, all_headers)
        else:
            self.connection.request(method, target, body=body, headers=all_headers)
        response = self.connection.getresponse()
        if response.status != expect:
            detail = response.read()[:500].decode(errors="replace")
            raise RegistryError(f"{method} {target}: {response.status} (expected {expect}) {detail}")
        return response

    def _send_file(self, method: str, target: str, body: FileSlice, headers: dict[str, str]) -> None:
        """The request line and headers as ``http.client`` sends them, then the body straight from its file."""
        self.connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(body.length)}.items():
            self.connection.putheader(name, value)
        self.connection.endheaders()
        assert self.connection.sock is not None
        with open(body.path, "rb") as file:
            sent = self.connection.sock.sendfile(file, body.offset, body.length)
        if sent != body.length:
            raise RegistryError(f"{method} {target}: {body.path} ended after {sent} of {body.length} bytes")

    def call(self, method: str, target: str, body: bytes | FileSlice | None = None,
             headers: dict[str, str] | None = None, expect: int = 200) -> tuple[http.client.HTTPResponse, bytes]:
        response = self.request(method, target, body, headers, expect)
        return response, response.read()

    @staticmethod
    def _target(location: str) -> str:
        """The path and query of a Location header (absolute or relative)."""
        parts = urlsplit(urljoin("http://placeholder/", location))
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def start_upload(self, repository: str) -> str:
        response, _ = self.call("POST", f"/v2/{repository}/blobs/uploads/", headers={"Content-Length": "0"}, expect=202)
        return self._target(response.headers["Location"])

    @staticmethod
    def _with_digest(target: str, digest: str) -> str:
        return f"{target}{'&' if '?' in target else '?'}digest={digest}"

    def push_monolithic(self, repository: str, path: pathlib.Path, digest: str) -> None:
        """POST an upload, then PUT the whole of ``path`` in one streamed body."""
        target = self._with_digest(self.start_upload(repository), digest)
        size = path.stat().st_size
        self.call("PUT", target, FileSlice(path, 0, size), {"Content-Type": "application/octet-stream"}, expect=201)

    def push_chunked(self, repository: str, path: pathlib.Path, digest: str, chunk: int) -> None:
        """POST an upload, PATCH ``chunk`` bytes at a time with Content-Range, then PUT the digest."""
        target = self.start_upload(repository)
        size = path.stat().st_size
        for start in range(0, size, chunk):
            length = min(chunk, size - start)
            headers = {
                "Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + length - 1}",
            }
            response, _ = self.call("PATCH", target, FileSlice(path, start, length), headers, expect=202)
            target = self._target(response.headers["Location"])
        self.call("PUT", self._with_digest(target, digest), headers={"Content-Length": "0"}, expect=201)

    def push_bytes(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        target = self._with_digest(self.start_upload(repository), digest)
        self.call("PUT", target, data, {"Content-Type": "application/octet-stream"}, expect=201)
        return digest

    def push_image(self, repository: str, tag: str, layer: bytes) -> str:
        """A one-layer OCI image tagged ``tag``; the manifest's digest."""
        manifest = image_manifest(self.push_bytes(repository, IMAGE_CONFIG), self.push_bytes(repository, layer), len(layer))
        self.call("PUT", f"/v2/{repository}/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST}, expect=201)
        return "sha256:" + hashlib.sha256(manifest).hexdigest()

    def pull(self, repository: str, digest: str, verify: bool = False, redirected: bool = False) -> int:
        """GET a blob and discard it (checking its digest when ``verify``); its size.

        With ``redirected`` the registry must answer 307, and the blob is fetched from
        the Location (a presigned storage URL) on a new connection, without this
        client's credentials; otherwise it must answer 200 with the bytes.
        """
        target = f"/v2/{repository}/blobs/{digest}"
        if not redirected:
            return self.download(target, digest if verify else None)
        response, _ = self.call("GET", target, expect=307)
        location = response.headers["Location"]
        parts = urlsplit(location)
        context = ssl.create_default_context() if parts.scheme == "https" else None
        with Client(parts.netloc, context=context) as storage:
            return storage.download(self._target(location), digest if verify else None)

    def download(self, target: str, digest: str | None = None) -> int:
        """GET ``target`` into one reused buffer, hashing it when a ``digest`` is to be checked; its size."""
        response = self.request("GET", target)
        buffer = bytearray(BLOCK)
        view = memoryview(buffer)
        hasher = hashlib.sha256() if digest else None
        total = 0
        while count := response.readinto(buffer):
            total += count
            if hasher is not None:
                hasher.update(view[:count])
        if hasher is not None and "sha256:" + hasher.hexdigest() != digest:
            raise RegistryError(f"{target} came back with digest sha256:{hasher.hexdigest()}, not {digest}")
        return total

    def walk(self, target: str, key: str) -> int:
        """Follow ``Link: <...>; rel="next"`` from ``target``; how many ``key`` entries all pages held."""
        count = 0
        next_target: str | None = target
        while next_target:
            response, body = self.call("GET", next_target)
            count += len(json.loads(body)[key] or [])
            found = _NEXT.search(response.headers.get("Link", ""))
            next_target = self._target(found.group(1)) if found else None
        return count
