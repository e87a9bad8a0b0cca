"""Start ``dockyard serve`` as a real process on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import os
import pathlib
import re
import ssl
import subprocess
import sys
import time

import httpx

from tests.support.processes import terminate

_SERVING = re.compile(r"serving (https?)://127\.0\.0\.1:(\d+)")


class DockyardProcess:
    """A running ``dockyard serve``; ``restart()`` keeps the same root and port.

    Plain HTTP unless ``tls=True``: then the server makes its CA in ``tls_dir``. One worker, the
    cheapest, unless ``extra`` names ``--workers`` or a ``--config`` (which may set them); with
    ``default_workers=True``, as many as ``dockyard serve`` starts by default.
    """

    def __init__(self, root: pathlib.Path, *extra: str, tls: bool = False, default_workers: bool = False) -> None:
        self.root = root
        self.tls = tls
        self.tls_dir = root.parent / f"{root.name}-tls"
        one_worker = [] if default_workers or "--workers" in extra or "--config" in extra else ["--workers", "1"]
        self.extra = [*one_worker, *extra] if tls else ["--insecure-http", *one_worker, *extra]
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root.parent / f"{root.name}.log"
        self._log_offset = 0

    def start(self) -> DockyardProcess:
        command = [
            sys.executable, "-m", "dockyard", "serve",
            "--addr", f"127.0.0.1:{self.port}", "--root", str(self.root), *self.extra,
        ]
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = _SERVING.search(self._tail()) if self.process.poll() is None else None
            if found:
                self.port = int(found.group(2))
                self.url = f"{found.group(1)}://127.0.0.1:{self.port}"
                self._wait_ready()
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"dockyard exited at start:\n{self._tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"dockyard did not start:\n{self._tail()}")

    def _tail(self) -> str:
        """What this start of the process has logged."""
        with open(self.log, "rb") as file:
            file.seek(self._log_offset)
            return file.read().decode(errors="replace")[-20000:]

    def _wait_ready(self) -> None:
        for _ in range(200):
            try:
                httpx.get(f"{self.url}/v2/", timeout=1, verify=self.verify)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("dockyard does not answer")

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client needs to trust this server."""
        if not self.url.startswith("https"):
            return True
        return ssl.create_default_context(cafile=str(self.tls_dir / "ca.crt"))

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def restart(self) -> DockyardProcess:
        self.stop()
        return self.start()
