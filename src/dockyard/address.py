"""A listening or connecting address as the config writes it (``HOST:PORT``).

Apart from :mod:`dockyard.server` so that reading a config does not load the server
(aiohttp, the event loop) in commands that never serve.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """``HOST:PORT``, ``:PORT`` (every interface) or ``[IPv6]:PORT``."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"invalid address {text!r}: expected HOST:PORT, :PORT or [IPv6]:PORT")
        return cls(host.removeprefix("[").removesuffix("]"), int(port))

    def url_host(self, port: int) -> str:
        host = self.host or "0.0.0.0"
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
