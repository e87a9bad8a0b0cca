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
import contextlib
import ctypes
import errno
import gc
import logging
import os
import signal
import socket
import ssl
import stat
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvloop
from aiohttp import web
from aiohttp.typedefs import Handler

from dockyard import heap
from dockyard.address import Address
from dockyard.config import Settings

if TYPE_CHECKING:  # imported where used: only ACME's TLS-ALPN-01 challenges need it, and its cryptography
    from dockyard.tls import alpn_challenge

log = logging.getLogger("dockyard.server")

BACKLOG = 1024  # connections the kernel queues before a worker accepts them
# The longest header line taken (aiohttp's default is 8190 bytes): a zstd:chunked partial pull
# asks for up to 1024 ranges in one Range header, 16 to 30 KiB. Go's servers take 1 MiB of headers.
MAX_HEADER_FIELD = 64 * 1024
# glibc's malloc options (mallopt's first argument, from malloc.h) and the values serve sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
# Blocks this large get a mapping of their own, unmapped when freed (S3's 10 MiB parts): by default
# glibc raises the threshold to each large block freed and keeps such blocks in its heap.
MMAP_THRESHOLD = 8 << 20
# Freed heap kept for reuse: by default glibc hands back the free top of its heap once it passes
# 256 KiB, so each PATCH of a chunked push faulted in, on the event loop, every page it received.
TRIM_THRESHOLD = 32 << 20
# One heap for all threads: each thread that allocates (the pump's hashing and writing, the
# default executor's) otherwise gets an arena of its own, a 64 MiB reserve with pages of its own
# kept per process; the GIL serializes nearly all of Python's allocations anyway.
ARENA_MAX = 1

# Set by whoever builds the app when it serves HTTPS.
SSL_CONTEXT_KEY = web.AppKey("ssl_context", ssl.SSLContext)
# Set beside it when ACME's TLS-ALPN-01 challenges are answered on the serving port: where they are.
TLS_ALPN_CHALLENGES_KEY: web.AppKey[alpn_challenge.ChallengeFile] = web.AppKey("tls_alpn_challenges")
# Builds the registry's app in each process; beside it, the debug server's app from the registry's.
MakeApp = Callable[[], web.Application]
MakeDebugApp = Callable[[web.Application], web.Application]


def bind_unix(path: str) -> socket.socket:
    """A unix socket at ``path`` (registry:2's ``http.net: unix``). A socket file left by a server
    that is gone (nothing accepts on it) is replaced; a live one, or any other file, is not."""
    if stat.S_ISSOCK(_mode(path)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except ConnectionRefusedError:
                os.unlink(path)
            else:
                raise OSError(errno.EADDRINUSE, "another server listens on it", path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError as error:
        sock.close()
        raise OSError(error.errno, error.strerror, path) from None
    sock.listen(BACKLOG)
    return sock


def _mode(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return 0


def bind(address: Address) -> socket.socket:
    if address.host:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        return socket.create_server((address.host, address.port), family=family, backlog=BACKLOG)
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", address.port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=BACKLOG)
    return socket.create_server(("", address.port), backlog=BACKLOG)


@dataclass(frozen=True)
class Timeouts:
    """How long a connection may wait for a request (``idle``: after it opens or after the
    previous response) and for the rest of a request line and headers once they have begun
    (``header``). Neither applies while a request runs: a slow upload that keeps sending is
    never cut."""

    header: float = 30.0
    idle: float = 120.0  # longer than Go clients' 90s, so that they, not the server, close idle connections


async def _serve(
    app: web.Application,
    sock: socket.socket,
    drain_timeout: float = 30.0,
    debug_app: web.Application | None = None,
    debug_sock: socket.socket | None = None,
    parent_watch: int | None = None,
    timeouts: Timeouts = Timeouts(),
) -> None:
    # On SIGTERM: stop listening (new connections are refused), let running requests
    # finish for up to ``drain_timeout`` seconds, then let the runner cancel the rest.
    # aiohttp's own graceful shutdown is not enough: once it starts, a connection drops
    # the data it receives, so an upload still sending its body would hang until cancelled.
    in_flight = _InFlight()
    header_deadlines = _HeaderDeadlines(timeouts.header)

    @web.middleware
    async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Both in one middleware: each is a coroutine more in every request.
        connection = header_deadlines.request_started(request)
        in_flight.start()
        try:
            return await handler(request)
        finally:
            in_flight.ended()
            if connection is not None:
                connection.request_ended()

    app.middlewares.insert(0, track)
    from dockyard.logs import access_log_arguments

    runner = web.AppRunner(
        app, **access_log_arguments(app), handle_signals=False, shutdown_timeout=max(min(drain_timeout, 1.0), 0.001),
        # aiohttp's keep-alive timer starts when a connection opens and after each response, and
        # bytes of a request that is not complete do not restart it: it is the idle timeout.
        keepalive_timeout=timeouts.idle, max_field_size=MAX_HEADER_FIELD,
    )
    await runner.setup()
    loop = asyncio.get_running_loop()
    server = runner.server
    assert server is not None
    # Not a web.SockSite: that takes aiohttp's protocol as it is; each connection's goes in a _HeaderDeadline.
    def protocol() -> _HeaderDeadline:
        return header_deadlines.watch(server())

    context, challenge_file = app.get(SSL_CONTEXT_KEY), app.get(TLS_ALPN_CHALLENGES_KEY)
    listener: asyncio.AbstractServer | alpn_challenge.ChallengeListener
    if context is not None and challenge_file is not None:
        from dockyard.tls import alpn_challenge

        listener = alpn_challenge.ChallengeListener(sock, challenge_file, (protocol, context), timeouts.header)
        listener.start()
    else:
        listener = await loop.create_server(protocol, sock=sock, ssl=context, backlog=BACKLOG)
    debug_runner = None
    if debug_app is not None and debug_sock is not None:
        debug_runner = web.AppRunner(debug_app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await debug_runner.setup()
        await web.SockSite(debug_runner, debug_sock).start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if parent_watch is not None:
        loop.add_reader(parent_watch, _parent_gone, loop, parent_watch, stop)
    trim = heap.malloc_trim()
    idle_trim = heap.IdleTrim(in_flight, trim) if trim is not None else None
    if idle_trim is not None:
        idle_trim.start(loop)
    try:
        await stop.wait()
        listener.close()
        if drain_timeout > 0 and in_flight.count:
            log.info("stopping: letting %d running request(s) finish for up to %gs", in_flight.count, drain_timeout)
            try:
                async with asyncio.timeout(drain_timeout):
                    await in_flight.idle()
            except TimeoutError:
                log.warning("%d request(s) still running after the drain timeout; cancelling them", in_flight.count)
    finally:
        if idle_trim is not None:
            idle_trim.stop()
        listener.close()
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


class _HeaderDeadlines:
    """Closes a connection whose request line and headers are not complete ``timeout``
    seconds after their first byte: aiohttp has no such timeout of its own.

    A request has begun when bytes arrive while none runs on the connection, and its
    headers are complete when the app's middleware sees it. Bytes of a request pipelined
    behind a running one start no deadline: the idle timeout still bounds them.

    A deadline is a time, not a timer: a timer made and cancelled in every request would cost
    more than all the rest of this. A sweep every :data:`SWEEPS` th of the timeout, while any
    connection is open, closes those past their deadline, so one is cut within 1 + 1/SWEEPS timeouts.
    """

    SWEEPS = 4

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.connections: dict[asyncio.BaseTransport, _HeaderDeadline] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def watch(self, handler: web.RequestHandler) -> _HeaderDeadline:
        return _HeaderDeadline(handler, self)

    def opened(self, transport: asyncio.BaseTransport, connection: _HeaderDeadline) -> None:
        self.connections[transport] = connection
        if self._sweeper is None:
            self._sweeper = connection.loop.call_later(self.timeout / self.SWEEPS, self._sweep, connection.loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in list(self.connections.values()):
            if connection.deadline is not None and connection.deadline <= now:
                connection.expire()
        self._sweeper = loop.call_later(self.timeout / self.SWEEPS, self._sweep, loop) if self.connections else None

    def request_started(self, request: web.Request) -> _HeaderDeadline | None:
        """The connection of a request whose headers are complete, no longer under a deadline."""
        connection = self.connections.get(request.transport) if request.transport is not None else None
        if connection is not None:
            connection.running = True
            connection.deadline = None
        return connection


class _HeaderDeadline(asyncio.Protocol):
    """aiohttp's protocol for one connection, and the deadline of its next request's headers."""

    def __init__(self, handler: web.RequestHandler, deadlines: _HeaderDeadlines) -> None:
        self.handler = handler
        self.deadlines = deadlines
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.BaseTransport | None = None
        self.running = False
        self.deadline: float | None = None  # the loop's time

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.deadlines.opened(transport, self)
        self.handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline = None
        if self.transport is not None:
            self.deadlines.connections.pop(self.transport, None)
        self.handler.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.running and self.deadline is None:
            self.deadline = self.loop.time() + self.deadlines.timeout
        self.handler.data_received(data)

    def eof_received(self) -> None:
        self.handler.eof_received()

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def request_ended(self) -> None:
        self.running = False

    def expire(self) -> None:
        self.deadline = None
        log.debug("closing a connection whose request headers took over %gs", self.deadlines.timeout)
        self.handler.force_close()


class _InFlight:
    def __init__(self) -> None:
        self.count = 0
        self.started = 0  # ever: how heap.IdleTrim sees requests that began and ended between its ticks
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        self.count += 1
        self.started += 1
        self._idle.clear()

    def ended(self) -> None:
        self.count -= 1
        if not self.count:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()


def worker_count(settings: Settings) -> int:
    """How many worker processes serve: ``dockyard.workers``, or with 0 one per CPU core this process may
    run on (its affinity, a container's cpuset), but one with the inmemory driver, which one process holds,
    and one for a pull-through cache, whose one fetch per blob for every client asking at once holds
    within a process (another worker would fetch the blob again)."""
    if settings.dockyard.workers:
        return settings.dockyard.workers
    if settings.storage.inmemory is not None or settings.proxy is not None or settings.dockyard.mirrors:
        return 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS has no affinity
    return min(usable, 64)


def _run_worker(
    make_app: MakeApp, sock: socket.socket, drain_timeout: float, make_debug_app: MakeDebugApp | None, debug_sock: socket.socket | None,
    timeouts: Timeouts, parent_watch: int | None = None,
) -> None:
    app = make_app()
    debug_app = make_debug_app(app) if make_debug_app is not None and debug_sock is not None else None
    uvloop.run(_serve(app, sock, drain_timeout, debug_app, debug_sock, parent_watch, timeouts))


Announce = Callable[[int | None, int | None], None]
WorkerExited = Callable[[int], None]
BeforeServing = Callable[[socket.socket], None]


def tune_malloc(environ: Mapping[str, str] = os.environ) -> bool:
    """Fix glibc's mmap and trim thresholds and its number of arenas (:data:`MMAP_THRESHOLD`,
    :data:`TRIM_THRESHOLD`, :data:`ARENA_MAX`), each unless its ``MALLOC_*`` variable chose already;
    whether any was set (never on other C libraries). Set before threads start and workers fork: they inherit it."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    chosen = False
    for variable, option, value in (
        ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD), ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        ("MALLOC_ARENA_MAX", _M_ARENA_MAX, ARENA_MAX),
    ):
        if variable not in environ:
            chosen = bool(mallopt(option, value)) or chosen
    return chosen


def run(
    settings: Settings, make_app: MakeApp, announce: Announce, make_debug_app: MakeDebugApp | None = None, worker_exited: WorkerExited | None = None,
    before_serving: BeforeServing | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, as ``settings`` say; ``make_app`` builds the app in each process.

    With ``http.debug.addr``, ``make_debug_app(app)`` builds the debug server's app beside
    it; its socket, like the registry's, is bound here once and shared by the workers.
    ``announce(port, debug_port)`` is told the bound ports (``port`` None on a unix socket);
    ``worker_exited(pid)`` runs in the parent when a worker ends. ``before_serving(sock)`` runs
    once the socket listens, before anything is announced or served (an ACME order that
    needs the serving port).
    """
    unix_path = settings.http.addr if settings.http.net == "unix" else None
    sock = bind_unix(unix_path) if unix_path is not None else bind(Address.parse(settings.http.addr))
    try:
        if before_serving is not None:
            before_serving(sock)
        _run_bound(settings, sock, make_app, announce, make_debug_app, worker_exited)
    finally:
        if unix_path is not None:  # as Go's listener does on close; workers end in os._exit, never here
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix_path)


def _run_bound(
    settings: Settings, sock: socket.socket, make_app: MakeApp, announce: Announce, make_debug_app: MakeDebugApp | None, worker_exited: WorkerExited | None,
) -> None:
    debug_address = Address.parse(settings.http.debug.addr) if settings.http.debug.addr else None
    workers, drain_timeout = worker_count(settings), settings.http.draintimeout
    timeouts = Timeouts(header=settings.dockyard.header_timeout, idle=settings.dockyard.idle_timeout)
    sock.set_inheritable(True)
    debug_sock = None
    if debug_address is not None:
        try:
            debug_sock = bind(debug_address)
        except OSError as error:  # named, so the message says which address failed
            raise OSError(error.errno, error.strerror, f"{debug_address.host}:{debug_address.port}") from None
        debug_sock.set_inheritable(True)
    announce(sock.getsockname()[1] if sock.family != socket.AF_UNIX else None, debug_sock.getsockname()[1] if debug_sock is not None else None)
    if workers <= 1:
        _run_worker(make_app, sock, drain_timeout, make_debug_app, debug_sock, timeouts)
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
                _run_worker(make_app, sock, drain_timeout, make_debug_app, debug_sock, timeouts, parent_watch)
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
    # Workers share the parent's pages until they write to them; a collection writes to the
    # header of every object it examines, so without this each worker's first full collection
    # would copy nearly all the parent's heap. Frozen objects are never examined again.
    gc.freeze()
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
