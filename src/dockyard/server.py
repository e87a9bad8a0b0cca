"""Running the application: the listening socket, the event loop, and worker processes.

With ``workers > 1`` the parent binds the socket once and forks; every worker accepts
on the same socket. Workers share nothing but storage, which is safe because every
write there is atomic and upload state lives in storage.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass

import uvloop
from aiohttp import web

log = logging.getLogger("dockyard.server")

# Set by whoever builds the app when it serves HTTPS.
SSL_CONTEXT_KEY = web.AppKey("ssl_context", ssl.SSLContext)

ACCESS_LOG_FORMAT = '%a "%r" %s %b "%{User-Agent}i" %Tfs'


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Address":
        """``HOST:PORT``, ``:PORT`` (every interface) or ``[IPv6]:PORT``."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"invalid address {text!r}: expected HOST:PORT, :PORT or [IPv6]:PORT")
        return cls(host.removeprefix("[").removesuffix("]"), int(port))

    def url_host(self, port: int) -> str:
        host = self.host or "0.0.0.0"
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(address: Address) -> socket.socket:
    if address.host:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        return socket.create_server((address.host, address.port), family=family, backlog=1024)
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", address.port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024)
    return socket.create_server(("", address.port), backlog=1024)


async def _serve(app: web.Application, sock: socket.socket) -> None:
    runner = web.AppRunner(app, access_log_format=ACCESS_LOG_FORMAT, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=app.get(SSL_CONTEXT_KEY))
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _run_worker(make_app, sock: socket.socket) -> None:
    uvloop.run(_serve(make_app(), sock))


def run(make_app, address: Address, workers: int, announce) -> None:
    """Serve until SIGTERM or SIGINT; ``make_app`` builds the app in each process."""
    sock = bind(address)
    sock.set_inheritable(True)
    announce(sock.getsockname()[1])
    if workers <= 1:
        _run_worker(make_app, sock)
        return
    children: dict[int, int] = {}
    stopping = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                _run_worker(make_app, sock)
            except BaseException:
                log.exception("worker %d failed", slot)
                code = 1
            finally:
                os._exit(code)
        children[pid] = slot

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(workers):
        spawn(slot)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        slot = children.pop(pid, None)
        if slot is not None and not stopping:
            log.error("worker %d (pid %d) exited with status %d; starting another", slot, pid, status)
            time.sleep(1)
            spawn(slot)
    sys.exit(0)
