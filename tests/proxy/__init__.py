"""Helpers for running the generated nginx site under a private prefix."""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable

import httpx

from tests.support.processes import terminate

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # root's PATH has sbin, others' may not


def write_nginx_conf(prefix: pathlib.Path, site_text: str) -> pathlib.Path:
    """A complete nginx.conf under ``prefix`` whose ``http {}`` includes ``site_text``.

    pid, logs and every temporary path live under ``prefix``, so nothing of the
    system's nginx is touched.
    """
    prefix.mkdir(parents=True, exist_ok=True)
    for folder in ("logs", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / folder).mkdir(exist_ok=True)
    site = prefix / "dockyard-site.conf"
    site.write_text(site_text)
    # As root, nginx's workers would switch to "nobody", who cannot read pytest's folders.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(f"""\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;

events {{
    worker_connections 256;
}}

http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;

    include {site};
}}
""")
    return conf


def nginx_command(conf: pathlib.Path, *extra: str) -> list[str]:
    prefix = conf.parent
    return [NGINX, "-p", f"{prefix}/", "-e", f"{prefix}/logs/error.log", "-c", str(conf), *extra]


def nginx_test(conf: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``conf``."""
    return subprocess.run(nginx_command(conf, "-t"), capture_output=True, text=True, timeout=60)


class NginxProcess:
    """nginx in the foreground (``daemon off``) with a private prefix; ``stop()`` ends it."""

    def __init__(self, conf: pathlib.Path, port: int) -> None:
        self.conf = conf
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = conf.parent / "logs" / "stderr.log"

    def start(self) -> NginxProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                nginx_command(self.conf, "-g", "daemon off;"), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited at start:\n{self.errors()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx does not listen on 127.0.0.1:{self.port}:\n{self.errors()}")

    def errors(self) -> str:
        parts = []
        for path in (self.log, self.conf.parent / "logs" / "error.log"):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-5000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        terminate(self.process)  # SIGTERM: nginx's fast shutdown, workers included
        self.process = None


CHUNK = 10 * 1024 * 1024


def chunked_upload(client: httpx.Client, name: str, path: pathlib.Path, digest: str, check_location: Callable[[httpx.Response], str]) -> int:
    """POST, PATCHes of CHUNK bytes with Content-Range, then PUT ?digest=; every
    ``Location`` goes through ``check_location``. Returns the number of chunks."""
    started = client.post(f"/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, (started.status_code, started.text)
    location = check_location(started)
    offset = chunks = 0
    with open(path, "rb") as file:
        while data := file.read(CHUNK):
            patched = client.patch(location, content=data, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(data) - 1}",
            })
            assert patched.status_code == 202, (chunks, patched.status_code, patched.text)
            offset += len(data)
            chunks += 1
            assert patched.headers["Range"] == f"0-{offset - 1}"
            location = check_location(patched)
    separator = "&" if "?" in location else "?"
    finished = client.put(f"{location}{separator}digest={digest}")
    assert finished.status_code == 201, (finished.status_code, finished.text)
    check_location(finished)
    assert finished.headers["Docker-Content-Digest"] == digest
    return chunks
