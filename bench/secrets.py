"""One certificate and one htpasswd file that both servers are given, so TLS and auth cost them the same work.

The certificate comes from Dockyard's own local CA (valid for 127.0.0.1), the
htpasswd file from Apache's ``htpasswd -B`` (bcrypt at its default cost), the
format registry:2 reads.
"""

from __future__ import annotations

import base64
import functools
import pathlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass

from dockyard.tls.serving import TlsSettings, ensure_local_certificates

USER = "bench"
PASSWORD = "bench-password"


@dataclass(frozen=True)
class Secrets:
    certificate: pathlib.Path  # the server certificate, then its CA
    key: pathlib.Path
    ca: pathlib.Path
    htpasswd: pathlib.Path

    @property
    def basic_authorization(self) -> str:
        return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    @functools.cached_property  # one context per run, gone with it
    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make(directory: pathlib.Path) -> Secrets:
    """A CA, a server certificate for 127.0.0.1 and a one-user bcrypt htpasswd file in ``directory``."""
    binary = shutil.which("htpasswd")
    if binary is None:
        raise RuntimeError("htpasswd is not installed (apt-get install apache2-utils, or use bench/run)")
    serving = ensure_local_certificates(TlsSettings(directory / "tls"))
    assert serving.ca is not None
    htpasswd = directory / "htpasswd"
    subprocess.run([binary, "-B", "-b", "-c", str(htpasswd), USER, PASSWORD], check=True, capture_output=True)
    return Secrets(serving.certificate, serving.key, serving.ca, htpasswd)
