"""Running the application: the listening socket, the event loop, and worker processes.

With ``workers > 1`` the parent binds the socket once and forks; every worker accepts
on the same socket. Workers share nothing but storage, which is safe because every
write there is atomic and upload state lives in storage.

Workers stop as on SIGTERM when the parent dies, however it dies (``kill -9`` too):
each watches the read end of a pipe whose only write end the parent holds, and the
kernel closes that end with the parent. ``PR_SET_PDEATHSIG`` would be Linux only,
fire on the exit of the parent's forking *thread* rather than of the process, and
miss a parent that died before the worker set it; the pipe has none of these gaps,
and the worker sees it in its event loop, so it drains rather than dying mid-write.
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

import uvloop
from aiohttp import web

from dockyard.address import Address

log = logging.getLogger("dockyard.server")

# Set by whoever builds the app when it serves HTTPS.
SSL_CONTEXT_KEY = web.AppKey("ssl_context", ssl.SSLContext)


def bind(address: Address) -> socket.socket:
    if address.host:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        return socket.create_server((address.host, address.port), family=family, backlog=1024)
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", address.port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024)
    return socket.create_server(("", address.port), backlog=1024)


async def _serve(
    app: web.Application,
    sock: socket.socket,
    drain_timeout: float = 30.0,
    debug_app: web.Application | None = None,
    debug_sock: socket.socket | None = None,
    parent_watch: int | None = None,
) -> None:
    # On SIGTERM: stop listening (new connections are refused), let running requests
    # finish for up to ``drain_timeout`` seconds, then let the runner cancel the rest.
    # aiohttp's own graceful shutdown is not enough: once it starts, a connection drops
    # the data it receives, so an upload still sending its body would hang until cancelled.
    in_flight = _InFlight()
    app.middlewares.insert(0, in_flight.middleware)
    from dockyard.logs import access_log_arguments

    runner = web.AppRunner(app, **access_log_arguments(app), handle_signals=False, shutdown_timeout=max(min(drain_timeout, 1.0), 0.001))
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=app.get(SSL_CONTEXT_KEY))
    await site.start()
    debug_runner = None
    if debug_app is not None and debug_sock is not None:
        debug_runner = web.AppRunner(debug_app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await debug_runner.setup()
        await web.SockSite(debug_runner, debug_sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if parent_watch is not None:
        loop.add_reader(parent_watch, _parent_gone, loop, parent_watch, stop)
    try:
        await stop.wait()
        await site.stop()
        if drain_timeout > 0 and in_flight.count:
            log.info("stopping: letting %d running request(s) finish for up to %gs", in_flight.count, drain_timeout)
            await in_flight.wait(drain_timeout)
    finally:
        try:
            await runner.cleanup()
        finally:
            if debug_runner is not None:  # last: it answers 503 "draining" while requests finish
                await debug_runner.cleanup()


def _parent_gone(loop: asyncio.AbstractEventLoop, parent_watch: int, stop: asyncio.Event) -> None:
    # Readable means end of file: nothing is ever written to the pipe.
    loop.remove_reader(parent_watch)
    log.warning("the parent process is gone: stopping this worker")
    stop.set()


class _InFlight:
    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("%d request(s) still running after the drain timeout; cancelling them", self.count)


def _run_worker(
    make_app, sock: socket.socket, drain_timeout: float, make_debug_app, debug_sock: socket.socket | None, parent_watch: int | None = None,
) -> None:
    app = make_app()
    debug_app = make_debug_app(app) if make_debug_app is not None and debug_sock is not None else None
    uvloop.run(_serve(app, sock, drain_timeout, debug_app, debug_sock, parent_watch))


def run(
    make_app,
    address: Address,
    workers: int,
    announce,
    *,
    drain_timeout: float = 30.0,
    debug_address: Address | None = None,
    make_debug_app=None,
    worker_exited=None,
) -> None:
    """Serve until SIGTERM or SIGINT; ``make_app`` builds the app in each process.

    With ``debug_address``, ``make_debug_app(app)`` builds the debug server's app beside
    it; its socket, like the registry's, is bound here once and shared by the workers.
    ``announce(port, debug_port)`` is told the bound ports; ``worker_exited(pid)`` runs
    in the parent when a worker ends.
    """
    sock = bind(address)
    sock.set_inheritable(True)
    debug_sock = None
    if debug_address is not None:
        try:
            debug_sock = bind(debug_address)
        except OSError as error:  # named, so the message says which address failed
            raise OSError(error.errno, error.strerror, f"{debug_address.host}:{debug_address.port}") from None
        debug_sock.set_inheritable(True)
    announce(sock.getsockname()[1], debug_sock.getsockname()[1] if debug_sock is not None else None)
    if workers <= 1:
        _run_worker(make_app, sock, drain_timeout, make_debug_app, debug_sock)
        return
    children: dict[int, int] = {}
    stopping = False
    parent_watch, parent_alive = os.pipe()

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            os.close(parent_alive)  # the parent's copy must be the last one
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                _run_worker(make_app, sock, drain_timeout, make_debug_app, debug_sock, parent_watch)
            except BaseException:
                log.exception("worker %d failed", slot)
                code = 1
            finally:
                os._exit(code)
        children[pid] = slot

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        # The workers drain; the parent's copies of the sockets must go too, or the
        # kernel would keep queueing connections nobody accepts instead of refusing them.
        sock.close()
        if debug_sock is not None:
            debug_sock.close()
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
        exited_slot = children.pop(pid, None)
        if worker_exited is not None:
            try:
                worker_exited(pid)
            except Exception:
                log.exception("cleaning up after worker %d", pid)
        if exited_slot is not None and not stopping:
            log.error("worker %d (pid %d) exited with status %d; starting another", exited_slot, pid, status)
            time.sleep(1)
            spawn(exited_slot)
    sys.exit(0)
