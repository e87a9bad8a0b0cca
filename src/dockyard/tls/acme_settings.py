"""What :mod:`dockyard.tls.acme` is told to order, apart from it: the ``acme`` library and
``requests`` under it cost each process megabytes, so only servers with ``http.tls.letsencrypt``
import them."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
HTTP_01, TLS_ALPN_01 = "http-01", "tls-alpn-01"


@dataclass(frozen=True)
class AcmeSettings:
    cachefile: pathlib.Path
    hosts: tuple[str, ...]
    email: str = ""
    directory_url: str = LETS_ENCRYPT
    challenge: str = TLS_ALPN_01  # or HTTP_01: the challenge type answered

    @property
    def challenges(self) -> pathlib.Path:
        """The challenges being answered: HTTP-01's key authorizations (one file per token) and
        TLS-ALPN-01's certificates (one file per host name)."""
        return self.cachefile.with_name(f"{self.cachefile.name}.challenges")
