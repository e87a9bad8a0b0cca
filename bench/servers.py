"""The processes under test, each on 127.0.0.1 with an ephemeral port and a temporary root.

Dockyard and Debian's registry:2 (``docker-registry``) get equivalent settings:
filesystem storage (or, for the S3 rows, a bucket each on one SeaweedFS, with blob
GETs redirected to it or not), deletes enabled, warnings-only logging and no access log (so
that neither pays for writing a log line per request), and per :class:`Variant`
plain HTTP or TLS, no auth or htpasswd, with the same certificate and htpasswd
file (:mod:`bench.secrets`) for both (for the LDAP rows, Dockyard's user is in a
``slapd`` instead: registry:2 has no LDAP, so it keeps the file); for the pull-through cache rows, both are
mirrors (registry:2's ``proxy`` section) of one :class:`Upstream`. nginx
serves static files for the machine's loopback baseline. Every class is a
context manager and stops its process on exit, error or Ctrl-C alike.
"""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from bench.client import Client
from bench.s3 import Bucket
from bench.secrets import PASSWORD, USER, Secrets
from tests.support.processes import free_port

_SERVING = re.compile(r"serving https?://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Variant:
    """How clients reach both servers: plain HTTP or TLS, no auth or HTTP Basic from an htpasswd file;
    where they store: a filesystem root or an S3 bucket, whose blob GETs answer 307 to it with ``redirect``;
    with ``proxy``, both are pull-through caches of one :class:`Upstream` (plain HTTP, filesystem);
    with ``ldap`` (and ``auth``), Dockyard's user signs in through an LDAP directory, registry:2's still through the file;
    with ``tmpfs``, both roots are in memory (``/dev/shm``), to show what writing to the disk takes."""

    tls: bool = False
    auth: bool = False
    s3: bool = False
    redirect: bool = False
    proxy: bool = False
    events: bool = False  # both send registry:2's events to one :class:`SlowReceiver`

    ldap: bool = False
    tmpfs: bool = False

    @property
    def label(self) -> str:
        """``""`` for plain HTTP without auth on filesystems, else what is on: ``TLS``, ``basic auth``, ``S3``, ``redirect``, ``proxy``."""
        on = (
            ("TLS", self.tls), ("basic auth", self.auth), ("S3", self.s3), ("redirect", self.redirect), ("proxy", self.proxy),
            ("events to a 2 s receiver", self.events), ("LDAP", self.ldap), ("tmpfs root", self.tmpfs),
        )
        return " + ".join(name for name, enabled in on if enabled)


PLAIN = Variant()


def _answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1, context=context):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is listening
    except OSError:
        return False


@dataclass
class Server:
    """A server process: its name, root and address once started."""

    name: str
    root: pathlib.Path
    log: pathlib.Path
    variant: Variant = PLAIN
    secrets: Secrets | None = None
    bucket: Bucket | None = None  # S3 storage instead of ``root`` (which then holds only the TLS folder)
    upstream: Upstream | None = None  # what this server mirrors, for the proxy rows
    events_url: str = ""  # where it sends its events, for the events rows
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.variant.tls else 'http'}://{self.host}"

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting the benchmark's CA when this server speaks TLS."""
        return self._secrets.client_context if self.variant.tls else None

    @property
    def ca_file(self) -> pathlib.Path | None:
        """The benchmark's CA certificate when this server speaks TLS."""
        return self._secrets.ca if self.variant.tls else None

    @property
    def headers(self) -> dict[str, str]:
        """What every request sends: the Basic credentials when this server wants them."""
        return {"Authorization": self._secrets.basic_authorization} if self.variant.auth else {}

    @property
    def _secrets(self) -> Secrets:
        assert self.secrets is not None, f"{self.name}: {self.variant.label} needs the benchmark's secrets"
        return self.secrets

    def client(self) -> Client:
        """A new keep-alive client for this server, with its TLS and credentials."""
        return Client(self.host, context=self.ssl_context, headers=self.headers)

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def _spawn(self, command: list[str], env: dict[str, str]) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )

    def _wait(self, ready_path: str, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if self.port and _answers(self.url + ready_path, self.ssl_context):
                return True
            time.sleep(0.05)
        return False

    def _failed(self, what: str) -> RuntimeError:
        tail = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        self.stop()
        return RuntimeError(f"{self.name} {what}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM the process (and its session, for forked workers); SIGKILL after 15 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Dockyard(Server):
    """``dockyard serve`` over a root, with ``workers`` processes sharing the port."""

    def __init__(self, root: pathlib.Path, workers: int = 1, variant: Variant = PLAIN, secrets: Secrets | None = None,
                 bucket: Bucket | None = None, upstream: Upstream | None = None, name: str = "dockyard", events_url: str = "",
                 ldap: dict[str, object] | None = None) -> None:
        """``ldap``: the ``dockyard.ldap`` section its users come from (with an LDAP variant)."""
        super().__init__(name, root, root.parent / f"{name}.log", variant, secrets, bucket, upstream, events_url)
        self.workers = workers
        self.ldap = ldap

    @staticmethod
    def insecure_flag() -> list[str]:
        """``--insecure-http`` when this Dockyard has it (plain HTTP is otherwise the default)."""
        help_text = subprocess.run(
            [sys.executable, "-m", "dockyard", "serve", "--help"], capture_output=True, text=True, check=True
        ).stdout
        return ["--insecure-http"] if "--insecure-http" in help_text else []

    def _security_flags(self) -> list[str]:
        flags = ["--htpasswd", str(self._secrets.htpasswd)] if self.variant.auth and not self.variant.ldap else []
        if self.variant.ldap:
            assert self.ldap is not None and self.bucket is None and self.upstream is None, "LDAP rows: filesystem, no proxy, a directory"
            config = self.root.parent / f"{self.name}-ldap.yml"
            config.write_text(json.dumps({"version": "0.1", "dockyard": {"ldap": self.ldap}}))
            flags = ["--config", str(config)]
        if self.variant.tls:
            return [*flags, "--tls-cert", str(self._secrets.certificate), "--tls-key", str(self._secrets.key)]
        return [*flags, *self.insecure_flag()]

    def _storage_flags(self) -> list[str]:
        """``--config`` with the bucket's ``storage.s3`` section, for S3 storage, or with a ``proxy`` section, for a mirror,
        or with a ``notifications`` section, for events."""
        if self.events_url:
            config = self.root.parent / f"{self.name}.yml"
            config.write_text(json.dumps({"version": "0.1", "notifications": notifications_section(self.events_url)}))
            return ["--config", str(config)]
        if self.upstream is not None:
            config = self.root.parent / f"{self.name}.yml"
            config.write_text(json.dumps({"version": "0.1", "proxy": self.upstream.proxy_section()}))
            return ["--config", str(config)]
        if self.bucket is None:
            return []
        config = self.bucket.seaweedfs.write_dockyard_config(
            self.root.parent / "dockyard.yml", self.bucket.name, redirect=self.variant.redirect,
        )
        return ["--config", str(config)]

    def _log_flags(self) -> list[str]:
        return ["--log-level", "warning", "--no-access-log"]

    def start(self) -> Dockyard:
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "dockyard", "serve", "--addr", "127.0.0.1:0", "--root", str(self.root),
            "--workers", str(self.workers), *self._log_flags(), *self._security_flags(), *self._storage_flags(),
        ]
        self._spawn(command, {**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while not self.port and time.monotonic() < deadline and self.process and self.process.poll() is None:
            found = _SERVING.search(self.log.read_text(errors="replace"))
            self.port = int(found.group(1)) if found else 0
            time.sleep(0.05)
        if not self._wait("/v2/"):
            raise self._failed("did not start")
        return self


class Upstream(Dockyard):
    """The registry both mirrors pull through: a Dockyard that asks for Bearer tokens from its own token
    service, as Docker Hub does (registry:2's proxy speaks only that to an upstream that asks for
    credentials), with its access log on: each line's byte count is what it sent a mirror."""

    def __init__(self, root: pathlib.Path, secrets: Secrets) -> None:
        super().__init__(root, variant=PLAIN, secrets=secrets, name="upstream")

    def _security_flags(self) -> list[str]:
        return ["--token-auth", "--htpasswd", str(self._secrets.htpasswd), *self.insecure_flag()]

    def _log_flags(self) -> list[str]:
        return ["--log-level", "info"]

    def proxy_section(self) -> dict[str, str]:
        """registry:2's ``proxy`` section naming this upstream and the benchmark's user."""
        return {"remoteurl": self.url, "username": USER, "password": PASSWORD}

    def bearer_headers(self, repository: str) -> dict[str, str]:
        """A token's header to push to and pull from ``repository``."""
        query = urllib.parse.urlencode({"service": "dockyard", "scope": f"repository:{repository}:pull,push"})
        request = urllib.request.Request(f"{self.url}/auth/token?{query}", headers={"Authorization": self._secrets.basic_authorization})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return {"Authorization": f"Bearer {json.load(answer)['token']}"}

    def bytes_sent(self, repository: str) -> int:
        """Bytes (headers included) of the answers to GETs of ``repository``'s manifests and blobs, as this upstream's access log counts them."""
        pattern = re.compile(rf'"GET /v2/{re.escape(repository)}/(?:manifests|blobs)/\S+ HTTP/[\d.]+" \d+ (\d+) ')
        return sum(int(found.group(1)) for found in pattern.finditer(self.log.read_text(errors="replace")))


class Registry2(Server):
    """Debian's ``docker-registry serve CONFIG`` (registry:2) over a root."""

    BINARY = "docker-registry"

    def __init__(self, root: pathlib.Path, variant: Variant = PLAIN, secrets: Secrets | None = None,
                 bucket: Bucket | None = None, upstream: Upstream | None = None, events_url: str = "") -> None:
        super().__init__("registry2", root, root.parent / "registry2.log", variant, secrets, bucket, upstream, events_url)
        self.config = root.parent / "registry2.yml"

    def _security_config(self) -> str:
        # A JSON string is a valid YAML scalar, which quotes a path safely.
        tls = auth = ""
        if self.variant.tls:
            tls = (f"  tls:\n    certificate: {json.dumps(str(self._secrets.certificate))}\n"
                   f"    key: {json.dumps(str(self._secrets.key))}\n")
        if self.variant.auth:
            auth = f"auth:\n  htpasswd:\n    realm: bench\n    path: {json.dumps(str(self._secrets.htpasswd))}\n"
        return tls + auth

    def _storage_config(self) -> str:
        if self.bucket is None:
            return f"  filesystem:\n    rootdirectory: {json.dumps(str(self.root.absolute()))}\n"
        keys = "".join(f"    {key}: {json.dumps(value)}\n" for key, value in self.bucket.storage_config().items())
        return f"  s3:\n{keys}  redirect:\n    disable: {json.dumps(not self.variant.redirect)}\n"

    def _write_config(self) -> None:
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            "storage:\n"
            + self._storage_config()
            + "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: {self.host}\n"
            + self._security_config()
            + self._proxy_config()
            + (f"notifications: {json.dumps(notifications_section(self.events_url))}\n" if self.events_url else "")
        )

    def _proxy_config(self) -> str:
        if self.upstream is None:
            return ""
        return "proxy:\n" + "".join(f"  {key}: {json.dumps(value)}\n" for key, value in self.upstream.proxy_section().items())

    def start(self) -> Registry2:
        binary = shutil.which(self.BINARY)
        if binary is None:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry, or use bench/run)")
        self.root.mkdir(parents=True, exist_ok=True)
        # registry:2 reads every REGISTRY_* variable as configuration, and its AWS SDK AWS_CA_BUNDLE.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k != "AWS_CA_BUNDLE"}
        for _ in range(5):  # someone else may take the free port before registry:2 binds it
            self.port = free_port()
            self._write_config()
            self._spawn([binary, "serve", str(self.config)], env)
            if self._wait("/v2/"):
                return self
            self.stop()
        raise self._failed("did not start")


def notifications_section(url: str) -> dict[str, object]:
    """registry:2's ``notifications`` section with one endpoint at ``url``: the same for both servers."""
    return {"endpoints": [{"name": "bench", "url": url, "timeout": "5s", "threshold": 5, "backoff": "1s"}]}


class SlowReceiver:
    """An events endpoint on 127.0.0.1 that answers each POST after ``delay`` seconds (one thread a request)."""

    def __init__(self, delay: float = 2.0) -> None:
        self.delay = delay
        self.taken = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(receiver.delay)
                receiver.taken += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SlowReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Nginx(Server):
    """Debian's nginx serving ``directory`` as static files: one process, no master, no system service."""

    def __init__(self, directory: pathlib.Path, scratch: pathlib.Path) -> None:
        super().__init__("nginx", directory, scratch / "nginx-error.log")
        self.prefix = scratch / "nginx"

    def start(self) -> Nginx:
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx-light, or use bench/run)")
        self.prefix.mkdir(parents=True, exist_ok=True)
        temp = "\n".join(f"  {kind}_temp_path {self.prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        config = self.prefix / "nginx.conf"
        for _ in range(5):
            self.port = free_port()
            config.write_text(
                "daemon off;\nmaster_process off;\n"
                f"pid {self.prefix / 'nginx.pid'};\nerror_log {self.log} warn;\n"
                "events { worker_connections 1024; }\n"
                "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  default_type application/octet-stream;\n"
                f"{temp}\n"
                f"  server {{\n    listen {self.host};\n    root {self.root};\n  }}\n}}\n"
            )
            self._spawn([binary, "-p", str(self.prefix), "-c", str(config), "-e", str(self.log)], dict(os.environ))
            if self._wait("/"):
                return self
            self.stop()
        raise self._failed("did not start")
