"""Start Debian's reference registry (``docker-registry``, registry:2) on 127.0.0.1.

The registry serves a given root directory with the filesystem driver (or, given a
``storage.s3`` section, a bucket), deletes enabled, on a free ephemeral port. Only ever run as a child process of the tests:
never its system service.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import time

import httpx

from tests.support.processes import free_port, terminate

BINARY = "/usr/bin/docker-registry"

# The config.yml registry:2's image ships (the distribution project's default).
DEFAULT_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


def registry2_binary() -> str | None:
    """The reference registry's binary, or ``None`` when it is not installed."""
    if os.access(BINARY, os.X_OK):
        return BINARY
    return shutil.which("docker-registry")


def _environment() -> dict[str, str]:
    """The tests' environment without what registry:2 would read as configuration.

    registry:2 treats every ``REGISTRY_*`` variable as a config override (so
    skopeo's ``REGISTRY_AUTH_FILE`` would turn on ``auth.file``), and the AWS
    SDK it links picks up ``AWS_CA_BUNDLE``.
    """
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("REGISTRY_") and key != "AWS_CA_BUNDLE"
    }


class Registry2Process:
    """A running ``docker-registry serve CONFIG`` over ``root`` (or over ``s3``, registry:2's
    ``storage.s3`` keys, with ``root`` naming only where its config and log go)."""

    def __init__(self, root: pathlib.Path, s3: dict[str, object] | None = None, extra_config: str = "") -> None:
        self.root = root
        self.s3 = s3
        self.extra_config = extra_config  # more top-level sections of the config (notifications:...)
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.config = root.parent / f"{root.name}.registry2.yml"
        self.log = root.parent / f"{root.name}.registry2.log"
        self._log_offset = 0
        binary = registry2_binary()
        if binary is None:
            raise RuntimeError("docker-registry (Debian package docker-registry) is not installed")
        self.binary = binary

    def write_config(self, port: int) -> pathlib.Path:
        # A JSON string is a valid YAML scalar, which quotes the path safely.
        self.config.write_text(
            "version: 0.1\n"
            "log:\n"
            "  level: info\n"
            "  accesslog:\n"
            "    disabled: false\n"
            "storage:\n"
            f"{self._storage_driver()}"
            "  delete:\n"
            "    enabled: true\n"
            "  maintenance:\n"
            "    uploadpurging:\n"
            "      enabled: false\n"
            "http:\n"
            f"  addr: 127.0.0.1:{port}\n"
            f"{self.extra_config}"
        )
        return self.config

    def _storage_driver(self) -> str:
        if self.s3 is None:
            return f"  filesystem:\n    rootdirectory: {json.dumps(str(self.root.absolute()))}\n"
        return "  s3:\n" + "".join(f"    {key}: {json.dumps(value)}\n" for key, value in self.s3.items())

    def start(self) -> Registry2Process:
        self.root.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(5):  # another process may take the free port before registry:2 binds it
            port = free_port()
            self.write_config(port)
            self._log_offset = self.log.stat().st_size if self.log.exists() else 0
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [self.binary, "serve", str(self.config)],
                    stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=_environment(),
                )
            self.port = port
            self.url = f"http://127.0.0.1:{port}"
            if self._wait_ready():
                return self
            last_error = self._tail()
            self.stop()
        raise RuntimeError(f"docker-registry did not start:\n{last_error}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                response = httpx.get(f"{self.url}/v2/", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code == 200 and "registry/2.0" in response.headers.get("Docker-Distribution-Api-Version", ""):
                return True
            time.sleep(0.05)
        return False

    def _tail(self) -> str:
        """What this start of the process has logged."""
        try:
            with open(self.log, "rb") as file:
                file.seek(self._log_offset)
                return file.read().decode(errors="replace")[-20000:]
        except FileNotFoundError:
            return ""

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def garbage_collect(self, *flags: str) -> subprocess.CompletedProcess[str]:
        """``docker-registry garbage-collect [flags] CONFIG`` over this root (the server need not run)."""
        if not self.config.exists():
            self.write_config(free_port())
        return subprocess.run(
            [self.binary, "garbage-collect", *flags, str(self.config)],
            capture_output=True, text=True, env=_environment(), timeout=300, stdin=subprocess.DEVNULL,
        )

    def __enter__(self) -> Registry2Process:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
