"""``dockyard serve``: HTTPS by default, with a local CA made on first start."""

from __future__ import annotations

import functools
import logging
import os
import pathlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from aiohttp import web
from click.core import ParameterSource

from dockyard import __version__
from dockyard.address import Address
from dockyard.api.app import create_app
from dockyard.api.auth_setup import AuthSettings, AuthSetupError
from dockyard.auth.robots import RobotAccounts
from dockyard.config import ConfigError, Settings, load
from dockyard.config.flags import click_options
from dockyard.events import EVENTS_KEY, notifier_from
from dockyard.forwarding import Forwarding
from dockyard.logs import ACCESS_LOG_KEY
from dockyard.maintenance.schedule import Schedule, scheduled_maintenance
from dockyard.ops.debug import OpsSettings, for_app_lifetime
from dockyard.proxy.expiry import expiry_interval, ttl_lookup
from dockyard.proxy.mirrors import build_mirrors
from dockyard.proxy.sync import sync_jobs
from dockyard.server import SSL_CONTEXT_KEY, TLS_ALPN_CHALLENGES_KEY, worker_count
from dockyard.storage.cache import cache_from_config
from dockyard.storage.factory import StorageSettings, StorageUnavailable, build_driver, check_storage
from dockyard.storage.filesystem import use_io_threads
from dockyard.storage.immutable import ImmutableTags
from dockyard.storage.quotas import QuotaRule
from dockyard.storage.registry import Registry
from dockyard.storage.repository import PushRules
from dockyard.tls import acme_settings, policy
from dockyard.tls.child import prepare_in_child
from dockyard.tls.errors import CertificateError
from dockyard.tls.serving import ServingCertificate, TlsSettings, acme_certificate, keep_renewed, prepare, server_context

if TYPE_CHECKING:  # imported where used: only servers with http.tls.letsencrypt pay for the acme library
    from dockyard.tls import acme

PASSPHRASE_ENV = "DOCKYARD_TLS_KEY_PASSPHRASE"
log = logging.getLogger("dockyard")


def _setup_logging(level: str, log_format: str = "text", fields: dict[str, object] | None = None) -> None:
    from dockyard.logs import setup_logging

    setup_logging(level, log_format, fields)


def _passphrase(passphrase_file: str | None) -> bytes | None:
    if passphrase_file is not None:
        try:
            return pathlib.Path(passphrase_file).read_bytes().rstrip(b"\r\n")
        except OSError as error:
            raise click.ClickException(f"cannot read {passphrase_file}: {error.strerror}") from None
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def default_tls_dir(root: pathlib.Path) -> pathlib.Path:
    """Beside the data root, not in it: the root may be copied or shared, the keys must not."""
    root = root.absolute()
    return root.with_name(f"{root.name}-tls")


def _tls_settings(settings: Settings) -> TlsSettings:
    tls, own = settings.http.tls, settings.dockyard
    letsencrypt = tls.letsencrypt
    return TlsSettings(
        directory=pathlib.Path(own.tls_dir) if own.tls_dir else default_tls_dir(settings.storage.root),
        hostnames=tuple(own.hostnames),
        certificate=pathlib.Path(tls.certificate) if tls.certificate else None,
        key=pathlib.Path(tls.key) if tls.key else None,
        passphrase=_passphrase(own.tls_key_passphrase_file),
        client_cas=tuple(map(pathlib.Path, tls.clientcas)),
        client_auth=tls.clientauth or policy.DEFAULT_CLIENT_AUTH,
        minimum_version=policy.minimum_version(tls.minimumtls, tls.ciphersuites),
        ciphers=policy.openssl_ciphers(tls.ciphersuites),
        letsencrypt=acme_settings.AcmeSettings(
            pathlib.Path(letsencrypt.cachefile).absolute(), tuple(letsencrypt.hosts), letsencrypt.email, letsencrypt.directoryurl,
            # registry:2's way, on the serving port, unless a port 80 listener is given
            challenge=acme_settings.HTTP_01 if own.acme_http_addr else acme_settings.TLS_ALPN_01,
        ) if letsencrypt is not None else None,
    )


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path),
    help="registry:2's config.yml; REGISTRY_* environment variables override it, options given here override both.",
)
@click.pass_context
def serve(ctx: click.Context, /, config_file: pathlib.Path | None, **options: Any) -> None:
    """Serve the registry over HTTPS (a local CA and certificate are made on first start)."""
    given = {name: value for name, value in options.items() if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    try:
        loaded = load(config_file, os.environ, given)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    _serve(loaded.settings)


# Each option is declared beside the key it sets (dockyard.config.schema); --config stays last.
serve.params[:0] = click_options(load(None, {}).settings)


@dataclass(frozen=True)
class Prepared:
    """What is made once, before workers fork, and shared by each worker's application."""

    storage: StorageSettings
    auth: AuthSettings
    forwarding: Forwarding
    ops: OpsSettings
    tls: TlsSettings
    serving: ServingCertificate | None
    ca_pem: bytes | None  # published for ``trust --fetch``
    ui_session_key: bytes | None  # every worker signs web sessions with the same key
    acme_responder: acme.Http01Responder | None  # answers ACME's HTTP-01 challenges while the server runs

    @property
    def tls_alpn(self) -> acme_settings.AcmeSettings | None:
        """The ACME settings when challenges are answered on the serving port."""
        letsencrypt = self.tls.letsencrypt
        return letsencrypt if letsencrypt is not None and letsencrypt.challenge == acme_settings.TLS_ALPN_01 else None


def _prepare(settings: Settings) -> Prepared:
    """Check now, in one line, what would otherwise fail in each worker."""
    from dockyard.ui import session_key

    storage = StorageSettings.of(settings.storage)
    try:
        check_storage(storage)
    except StorageUnavailable as error:
        raise click.ClickException(str(error)) from None
    tls = _tls_settings(settings)
    serving = None
    letsencrypt = tls.letsencrypt
    responder = _start_acme_responder(settings, letsencrypt) if letsencrypt is not None and letsencrypt.challenge == acme_settings.HTTP_01 else None
    if letsencrypt is not None and letsencrypt.challenge == acme_settings.TLS_ALPN_01:
        serving = acme_certificate(letsencrypt)  # ordered once the serving port listens: _order_on_serving_port
    elif not settings.plain_http:
        serving = _checked_certificate(tls)
    auth = AuthSettings.of(settings, signing_key=tls.directory / "token-signing.key")
    _check_replica_settings(settings, auth)
    if settings.storage.maintenance.readonly.enabled:
        log.info("read-only mode: every push, upload and delete is refused with 405 UNSUPPORTED")
    if settings.proxy is not None:
        log.info("pull-through cache of %s: pulls fetch what is not cached; pushes and deletes are refused", settings.proxy.remoteurl)
    for mirror in settings.dockyard.mirrors:
        log.info("pull-through cache of %s under %s: pushes and deletes there are refused", mirror.remoteurl, mirror.prefix)
    try:
        log.info("%s", auth.describe())
        auth.build()
    except AuthSetupError as error:
        raise click.ClickException(str(error)) from None
    http = settings.http
    return Prepared(
        storage, auth, Forwarding.build(tuple(settings.dockyard.trusted_proxies), http.host or None, http.prefix),
        OpsSettings.of(settings), tls, serving, serving.ca.read_bytes() if serving and serving.ca else None,
        session_key(http.secret) if settings.dockyard.ui else None, responder,
    )


def _checked_certificate(tls: TlsSettings) -> ServingCertificate:
    """The certificate to serve, made, ordered or checked now; its problems said in one line."""
    try:
        # ACME orders answer their challenges from this process; the rest needs cryptography only briefly.
        serving = prepare(tls) if tls.letsencrypt is not None else prepare_in_child(tls)
        server_context(serving, tls)
    except (CertificateError, OSError) as error:
        raise click.ClickException(str(error)) from None
    for warning in serving.warnings:
        log.warning("%s", warning)
    return serving


def _order_on_serving_port(settings: Settings, prepared: Prepared) -> Callable[[socket.socket], None] | None:
    """With TLS-ALPN-01, the ACME server checks the serving port: it must listen, and answer, while ordering."""
    letsencrypt = prepared.tls_alpn
    if letsencrypt is None:
        return None
    from dockyard.tls import acme, alpn_challenge

    board = acme.ChallengeBoard(letsencrypt.challenges)

    def order(sock: socket.socket) -> None:
        alpn_challenge.answer_while(sock, board.certificate_file, settings.dockyard.header_timeout, lambda: _checked_certificate(prepared.tls))

    return order


def _start_acme_responder(settings: Settings, letsencrypt: acme_settings.AcmeSettings) -> acme.Http01Responder:
    """Listening before the first order: the ACME server may check the challenge at once."""
    from dockyard.server import bind
    from dockyard.tls import acme

    addr = settings.dockyard.acme_http_addr
    try:
        sock = bind(Address.parse(addr))
    except OSError as error:
        raise click.ClickException(f"dockyard.acme_http_addr: cannot listen on {addr}: {error.strerror}") from None
    return acme.Http01Responder(sock, letsencrypt).start()


def build_app(settings: Settings, prepared: Prepared) -> web.Application:
    """One worker's application."""
    storage = settings.storage
    serving = prepared.serving
    proxy = settings.proxy
    registry = Registry(
        build_driver(prepared.storage), delete_enabled=storage.delete.enabled,
        read_only=storage.maintenance.readonly.enabled or proxy is not None,  # a pull-through cache is read-only, as registry:2's
        cache=cache_from_config(settings.redis_cache), rules=PushRules.of(settings.validation), catalog_max_entries=settings.catalog.maxentries,
        tags_max_entries=settings.tags.maxtags, quotas=QuotaRule.all_of(settings.dockyard.quotas), immutable=ImmutableTags.of(settings),
    )
    access, tokens = prepared.auth.build(RobotAccounts(registry.driver))
    mirrors = build_mirrors(settings, registry)
    app = create_app(
        registry, access=access, token_service=tokens, ca_certificate=prepared.ca_pem,
        forwarding=prepared.forwarding, ui_session_key=prepared.ui_session_key,
        headers=settings.http.headers, relative_urls=settings.http.relativeurls, mirrors=mirrors,
    )
    notifier = notifier_from(settings, registry.driver)
    if notifier is not None:
        app[EVENTS_KEY] = notifier
        app.cleanup_ctx.append(notifier.deliver)
    prepared.ops.instrument(app)
    if storage.filesystem is not None:
        threads = storage.filesystem.maxthreads

        async def io_threads(app: web.Application) -> None:
            use_io_threads(threads)

        app.on_startup.append(io_threads)

    async def count_quotas(app: web.Application) -> None:
        await registry.quotas.prepare()

    app.on_startup.append(count_quotas)
    # registry:2 purges uploads by default (uploadpurging: enabled, 168h, every 24h).
    app.cleanup_ctx.append(scheduled_maintenance(Schedule(
        settings.dockyard.gc, tuple(settings.dockyard.retention), storage.maintenance.uploadpurging,
        ttl_lookup(settings), expiry_interval(settings), notifier.collected if notifier is not None else None,
        sync_jobs(mirrors),  # with the caches requests use: one fetch per blob for both
    )))
    if settings.log.accesslog.disabled:
        app[ACCESS_LOG_KEY] = False
    if serving is not None:
        context = server_context(serving, prepared.tls)
        app[SSL_CONTEXT_KEY] = context
        if prepared.tls.generated:
            app.cleanup_ctx.append(for_app_lifetime(keep_renewed(context, prepared.tls)))
        elif prepared.tls.letsencrypt is not None:
            from dockyard.tls import acme

            app.cleanup_ctx.append(for_app_lifetime(acme.keep_renewed(context, prepared.tls.letsencrypt)))
            if (tls_alpn := prepared.tls_alpn) is not None:
                app[TLS_ALPN_CHALLENGES_KEY] = acme.ChallengeBoard(tls_alpn.challenges).certificate_file
    return app


def _announcer(settings: Settings, prepared: Prepared) -> Callable[[int | None, int | None], None]:
    serving = prepared.serving
    ca_fingerprint = serving.ca_fingerprint() if serving else None

    def announce(port: int | None, debug_port: int | None = None) -> None:
        where = prepared.storage.describe()
        scheme = "http" if settings.plain_http else "https"
        # port None: a unix socket at http.addr
        listening = f"{scheme}://{Address.parse(settings.http.addr).url_host(port)}" if port is not None else f"{scheme} on unix socket {settings.http.addr}"
        click.echo(f"dockyard {__version__} serving {listening} (storage {where}, {worker_count(settings)} worker(s))", err=True)
        if settings.plain_http:
            click.echo("WARNING: plain HTTP, no TLS: only behind a TLS-terminating proxy or on a trusted network", err=True)
        elif (letsencrypt := prepared.tls.letsencrypt) is not None:
            responder = prepared.acme_responder
            answered = (
                f"HTTP-01 challenges answered on http://{Address.parse(settings.dockyard.acme_http_addr).url_host(responder.port)}"
                if responder is not None else "TLS-ALPN-01 challenges answered on this port"
            )
            click.echo(f"certificate for {', '.join(letsencrypt.hosts)} from {letsencrypt.directory_url}, renewed while serving; {answered}", err=True)
        elif serving is not None and ca_fingerprint is not None:
            click.echo(f"CA certificate: {serving.ca} (sha256 {ca_fingerprint})", err=True)
            if port is not None:
                hostnames = settings.dockyard.hostnames
                host = Address.parse(settings.http.addr).host or (hostnames[0] if hostnames else "HOST")
                target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
                click.echo(f"Trust it on a client: dockyard trust {target} --fetch --fingerprint {ca_fingerprint.replace(':', '')}", err=True)
        debug = settings.http.debug
        if debug.addr and debug_port is not None:
            served = f"/debug/health{f' and {debug.prometheus.path}' if debug.prometheus.enabled else ''}"
            click.echo(f"debug server on http://{Address.parse(debug.addr).url_host(debug_port)} ({served})", err=True)

    return announce


def _serve(settings: Settings) -> None:
    from dockyard.server import run, tune_malloc

    tune_malloc()
    _setup_logging(settings.log.python_level, settings.log.output_format, dict(settings.log.fields))
    prepared = _prepare(settings)
    ops = prepared.ops
    remove_metrics_dir = ops.prepare_workers(worker_count(settings))
    try:
        run(
            settings, functools.partial(build_app, settings, prepared), _announcer(settings, prepared),
            make_debug_app=ops.debug_app if settings.http.debug.addr else None, worker_exited=ops.worker_exited,
            before_serving=_order_on_serving_port(settings, prepared),
        )
    except OSError as error:
        raise click.ClickException(f"cannot listen on {settings.http.addr if error.filename is None else error.filename}: {error.strerror}") from None
    finally:
        remove_metrics_dir()


def _check_replica_settings(settings: Settings, auth: AuthSettings) -> None:
    """What several replicas on one storage need: one http.secret (refused or warned about)."""
    from dockyard.secrets import SecretError, check_shared_secret, network_filesystem

    storage = settings.storage
    shared = "s3" if storage.kind == "s3" else None
    if storage.kind == "filesystem" and (kind := network_filesystem(storage.root)) is not None:
        shared = f"{kind} at {storage.root}"
    try:
        for warning in check_shared_secret(settings.http.secret, shared, auth.token_auth and not auth.external_tokens):
            log.warning("%s", warning)
    except SecretError as error:
        raise click.ClickException(str(error)) from None
    if (redis := settings.redis_cache) is not None:
        log.info("cache: blob sizes, layer links and tags in redis at %s (db %d)", redis.address, redis.db)


