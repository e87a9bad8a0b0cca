"""``dockyard serve``: HTTPS by default, with a local CA made on first start."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import ssl
from typing import Any

import click
from click.core import ParameterSource

from dockyard import __version__
from dockyard.config import ConfigError, load, serve_arguments
from dockyard.config import Redis as RedisConfig
from dockyard.config import S3 as S3Config
from dockyard.config import Gc as GcConfig
from dockyard.config import Retention as RetentionConfig
from dockyard.config import UploadPurging as UploadPurgingConfig
from dockyard.auth.setup import AuthSettings, AuthSetupError
from dockyard.logs import ACCESS_LOG_KEY
from dockyard.server import SSL_CONTEXT_KEY, Address, Timeouts
from dockyard.tls.certificates import CertificateError, fingerprint
from dockyard.tls.serving import TlsSettings, keep_renewed, prepare, server_context

PASSPHRASE_ENV = "DOCKYARD_TLS_KEY_PASSPHRASE"
log = logging.getLogger("dockyard")


def _setup_logging(level: str, log_format: str = "text", fields: dict[str, object] | None = None) -> None:
    from dockyard.logs import setup_logging

    setup_logging(level, log_format, fields)


def _log_fields(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    fields = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
        fields[key] = text
    return fields


def _passphrase(passphrase_file: pathlib.Path | None) -> bytes | None:
    if passphrase_file is not None:
        try:
            return passphrase_file.read_bytes().rstrip(b"\r\n")
        except OSError as error:
            raise click.ClickException(f"cannot read {passphrase_file}: {error.strerror}") from None
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def default_tls_dir(root: pathlib.Path) -> pathlib.Path:
    """Beside the data root, not in it: the root may be copied or shared, the keys must not."""
    root = root.absolute()
    return root.with_name(f"{root.name}-tls")


@click.command()
@click.option("--addr", default=":5000", show_default=True, help="Address to listen on: HOST:PORT, :PORT (every interface) or [IPv6]:PORT.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default="./data",
    show_default=True,
    help="Storage root for the filesystem driver (registry:2's rootdirectory layout).",
)
@click.option("--storage", type=click.Choice(["filesystem", "inmemory"]), default="filesystem", show_default=True, help="Storage driver.")
@click.option("--no-delete", is_flag=True, help="Refuse every DELETE with 405 UNSUPPORTED.")
@click.option("--read-only", is_flag=True, help="Refuse every write (push, upload, delete) with 405 UNSUPPORTED; pulls still work.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes sharing the port.")
@click.option("--insecure-http", is_flag=True, help="Serve plain HTTP (for a TLS-terminating proxy in front).")
@click.option("--tls-dir", type=click.Path(file_okay=False, path_type=pathlib.Path), help="Where the generated CA and server certificate live.  [default: beside the root, ROOT-tls]")
@click.option("--hostname", "hostnames", multiple=True, help="A name or IP address clients use to reach the registry (repeatable); the generated certificate covers it.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path), help="Serve this PEM certificate (chain after it) instead of a generated one.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path), help="The PEM key of --tls-cert.")
@click.option("--tls-key-passphrase-file", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path), help=f"File holding the passphrase of --tls-key (or set {PASSPHRASE_ENV}).")
@click.option("--tls-client-ca", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path), help="Require client certificates issued by this CA (mutual TLS).")
@click.option("--htpasswd", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path), help="Require a user and password from this htpasswd file (bcrypt, apr1, SHA-1 or crypt).")
@click.option("--auth-realm", default="Dockyard", show_default=True, help="The realm of Basic authentication.")
@click.option("--access-policy", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path), help="YAML access policy: who may pull, push and delete where.  [default: every signed-in user may do everything]")
@click.option("--token-auth", is_flag=True, help="Use Bearer tokens from the built-in token service (at /auth/token) instead of Basic.")
@click.option("--token-service", default="dockyard", show_default=True, help="The service name tokens are issued for (their audience).")
@click.option("--token-issuer", default="dockyard", show_default=True, help="The issuer of tokens.")
@click.option("--token-realm", help="An external token service's URL (with --token-rootcertbundle or --token-jwks).")
@click.option("--token-rootcertbundle", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path), help="Certificates whose keys sign an external issuer's tokens.")
@click.option("--token-jwks", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path), help="A JWKS file of an external issuer's keys.")
@click.option("--login-max-failures", type=click.IntRange(1), default=10, show_default=True, help="Failed logins per address or user before 429.")
@click.option("--login-failure-window", type=click.FloatRange(0.1), default=60.0, show_default=True, help="Seconds a failed login counts.")
@click.option(
    "--trusted-proxy", "trusted_proxies", multiple=True, metavar="CIDR",
    help="Honour X-Forwarded-Proto/-Host/-Port from this address or network (repeatable). None is trusted by default, not even loopback.",
)
@click.option("--public-url", metavar="URL", help="The URL clients use (e.g. https://registry.example.com); written in the token realm, over any X-Forwarded-* header (registry:2's http.host).")
@click.option("--prefix", default="", metavar="PATH", help="Serve the registry under this path, e.g. /registry (registry:2's http.prefix).")
@click.option("--no-ui", is_flag=True, help="Serve no web page at / (only the API).")
@click.option("--debug-addr", help="Serve /debug/health (and --metrics) on this HOST:PORT, apart from the registry (registry:2's http.debug.addr).")
@click.option("--metrics", is_flag=True, help="Serve Prometheus metrics on the debug server (needs --debug-addr).")
@click.option("--metrics-path", default="/metrics", show_default=True, help="Where on the debug server the metrics are.")
@click.option("--storage-health/--no-storage-health", default=True, show_default=True, help="Check the storage root for /debug/health (registry:2's health.storagedriver.enabled).")
@click.option("--storage-health-interval", type=click.FloatRange(0), default=10.0, show_default=True, help="Seconds between storage checks.")
@click.option("--storage-health-threshold", type=click.IntRange(1), default=1, show_default=True, help="Failed storage checks in a row before /debug/health answers 503.")
@click.option("--drain-timeout", type=click.FloatRange(0), default=30.0, show_default=True, help="On SIGTERM, stop accepting and let running requests (uploads) finish for up to this many seconds; 0 stops at once.")
@click.option("--header-timeout", type=click.FloatRange(0, min_open=True), default=Timeouts.header, show_default=True, help="Close a connection whose request line and headers are not all in this many seconds after their first byte.")
@click.option("--idle-timeout", type=click.FloatRange(0, min_open=True), default=Timeouts.idle, show_default=True, help="Close a connection that sends no request for this many seconds (after it opens or after a response); never during a request.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text, or one JSON object per line (registry:2's log.formatter; its logstash is json here).",
)
@click.option("--log-field", "log_fields", multiple=True, metavar="KEY=VALUE", callback=_log_fields, help="Add this field to every log record (repeatable; registry:2's log.fields).")
@click.option("--no-access-log", is_flag=True, help="Log no line per request (registry:2's log.accesslog.disabled); the audit log stays.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path),
    help="registry:2's config.yml; REGISTRY_* environment variables override it, options given here override both.",
)
@click.pass_context
def serve(ctx: click.Context, config_file: pathlib.Path | None, **options: Any) -> None:
    """Serve the registry over HTTPS (a local CA and certificate are made on first start)."""
    if config_file is not None or any(name.startswith("REGISTRY_") for name in os.environ):
        try:
            loaded = load(config_file, os.environ)
            from_config = serve_arguments(loaded.config)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        for warning in loaded.warnings:
            click.echo(f"warning: {warning}", err=True)
        options.update({
            name: value
            for name, value in from_config.items()
            if ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE
        })
    _serve(**options)


def _serve(
    addr: str,
    root: pathlib.Path,
    storage: str,
    no_delete: bool,
    read_only: bool,
    workers: int,
    insecure_http: bool,
    tls_dir: pathlib.Path | None,
    hostnames: tuple[str, ...],
    tls_cert: pathlib.Path | None,
    tls_key: pathlib.Path | None,
    tls_key_passphrase_file: pathlib.Path | None,
    tls_client_ca: pathlib.Path | None,
    htpasswd: pathlib.Path | None,
    auth_realm: str,
    access_policy: pathlib.Path | None,
    token_auth: bool,
    token_service: str,
    token_issuer: str,
    token_realm: str | None,
    token_rootcertbundle: pathlib.Path | None,
    token_jwks: pathlib.Path | None,
    login_max_failures: int,
    login_failure_window: float,
    log_level: str,
    trusted_proxies: tuple[str, ...] = (),
    public_url: str | None = None,
    prefix: str = "",
    debug_addr: str | None = None,
    metrics: bool = False,
    metrics_path: str = "/metrics",
    storage_health: bool = True,
    storage_health_interval: float = 10.0,
    storage_health_threshold: int = 1,
    drain_timeout: float = 30.0,
    header_timeout: float = Timeouts.header,
    idle_timeout: float = Timeouts.idle,
    log_format: str = "text",
    log_fields: dict[str, object] | None = None,
    no_access_log: bool = False,
    http_secret: str = "",
    redis: RedisConfig | None = None,
    s3: S3Config | None = None,
    redirect: bool = True,
    no_ui: bool = False,
    gc: GcConfig | None = None,
    retention: tuple[RetentionConfig, ...] = (),
    upload_purging: UploadPurgingConfig | None = None,
) -> None:
    from dockyard.api.app import create_app
    from dockyard.api.forwarding import Forwarding, ForwardingError
    from dockyard.maintenance.schedule import Schedule, scheduled_maintenance
    from dockyard.ops.debug import OpsSettings
    from dockyard.server import run
    from dockyard.storage.cache import cache_from_config
    from dockyard.storage.factory import StorageSettings, StorageUnavailable, build_driver, check_storage
    from dockyard.storage.registry import Registry

    _setup_logging(log_level, log_format, log_fields)
    try:
        address = Address.parse(addr)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--addr") from None
    ops = OpsSettings(
        debug_addr, metrics, metrics_path, storage_health, storage_health_interval, storage_health_threshold, drain_timeout,
    )
    debug_address = None
    try:
        debug_address = Address.parse(debug_addr) if debug_addr else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--debug-addr") from None
    if (ops_problem := ops.problem()) is not None:
        raise click.BadParameter(ops_problem[1], param_hint=ops_problem[0])
    if storage == "inmemory" and workers > 1:
        raise click.BadParameter("the inmemory driver cannot be shared by several workers", param_hint="--workers")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if insecure_http and (tls_cert or tls_client_ca):
        raise click.UsageError("--insecure-http serves no TLS: drop --tls-cert/--tls-client-ca, or drop --insecure-http")
    try:
        forwarding = Forwarding.build(trusted_proxies, public_url, prefix)
    except ForwardingError as error:
        message = str(error)
        option = "--public-url" if "public URL" in message else "--prefix" if "path prefix" in message else "--trusted-proxy"
        raise click.BadParameter(message, param_hint=option) from None
    storage_settings = StorageSettings(storage, root, s3, redirect)
    try:
        check_storage(storage_settings)
    except StorageUnavailable as error:
        raise click.ClickException(str(error)) from None

    settings = TlsSettings(
        directory=tls_dir or default_tls_dir(root),
        hostnames=hostnames,
        certificate=tls_cert,
        key=tls_key,
        passphrase=_passphrase(tls_key_passphrase_file),
        client_ca=tls_client_ca,
    )
    serving = None
    if not insecure_http:
        try:
            serving = prepare(settings)
            server_context(serving, settings)  # fail now, in one line, rather than in each worker
        except (CertificateError, OSError) as error:
            raise click.ClickException(str(error)) from None
        for warning in serving.warnings:
            log.warning("%s", warning)
    ca = serving.ca_certificate() if serving else None
    ca_pem = serving.ca.read_bytes() if serving and serving.ca else None
    auth = AuthSettings(
        htpasswd=htpasswd,
        realm=auth_realm,
        policy_file=access_policy,
        token_auth=token_auth,
        token_service=token_service,
        token_issuer=token_issuer,
        token_realm=token_realm,
        token_rootcertbundle=token_rootcertbundle,
        token_jwks=token_jwks,
        signing_key=settings.directory / "token-signing.key",
        http_secret=http_secret,
        max_failures=login_max_failures,
        failure_window=login_failure_window,
    )
    _check_replica_settings(storage, root, http_secret, auth, redis)
    if read_only:
        log.info("read-only mode: every push, upload and delete is refused with 405 UNSUPPORTED")
    try:
        log.info("%s", auth.describe())
        auth.build()  # fail now, in one line, rather than in each worker
    except AuthSetupError as error:
        raise click.ClickException(str(error)) from None

    from dockyard.ui import session_key

    # Made here, before workers fork, so that every worker signs web sessions with the same key.
    ui_session_key = None if no_ui else session_key(http_secret)

    def make_app():
        driver = build_driver(storage_settings)
        access, tokens = auth.build()
        app = create_app(
            Registry(driver, delete_enabled=not no_delete, read_only=read_only, cache=cache_from_config(redis)),
            access=access, token_service=tokens, ca_certificate=ca_pem, forwarding=forwarding, ui_session_key=ui_session_key,
        )
        ops.instrument(app)
        # registry:2 purges uploads by default (uploadpurging: enabled, 168h, every 24h).
        app.cleanup_ctx.append(scheduled_maintenance(Schedule(gc, retention, upload_purging or UploadPurgingConfig())))
        if no_access_log:
            app[ACCESS_LOG_KEY] = False
        if serving is not None:
            context = server_context(serving, settings)
            app[SSL_CONTEXT_KEY] = context
            if settings.generated:
                app.cleanup_ctx.append(_renewal(context, settings))
        return app

    def announce(port: int, debug_port: int | None = None) -> None:
        where = storage_settings.describe()
        scheme = "http" if insecure_http else "https"
        click.echo(f"dockyard {__version__} serving {scheme}://{address.url_host(port)} (storage {where}, {workers} worker(s))", err=True)
        if insecure_http:
            click.echo("WARNING: plain HTTP, no TLS: only behind a TLS-terminating proxy or on a trusted network", err=True)
        elif serving is not None and ca is not None:
            host = address.host or (hostnames[0] if hostnames else "HOST")
            target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
            click.echo(f"CA certificate: {serving.ca} (sha256 {fingerprint(ca)})", err=True)
            click.echo(f"Trust it on a client: dockyard trust {target} --fetch --fingerprint {fingerprint(ca).replace(':', '')}", err=True)
        if debug_address is not None and debug_port is not None:
            served = f"/debug/health{f' and {metrics_path}' if metrics else ''}"
            click.echo(f"debug server on http://{debug_address.url_host(debug_port)} ({served})", err=True)

    remove_metrics_dir = ops.prepare_workers(workers)
    try:
        run(
            make_app, address, workers, announce,
            drain_timeout=drain_timeout, debug_address=debug_address,
            make_debug_app=ops.debug_app if debug_address is not None else None, worker_exited=ops.worker_exited,
            timeouts=Timeouts(header=header_timeout, idle=idle_timeout),
        )
    except OSError as error:
        raise click.ClickException(f"cannot listen on {addr if error.filename is None else error.filename}: {error.strerror}") from None
    finally:
        remove_metrics_dir()


def _check_replica_settings(storage: str, root: pathlib.Path, http_secret: str, auth: AuthSettings, redis: RedisConfig | None) -> None:
    """What several replicas on one storage need: one http.secret (refused or warned about)."""
    from dockyard.secrets import SecretError, check_shared_secret, network_filesystem

    shared = "s3" if storage == "s3" else None
    if storage == "filesystem" and (kind := network_filesystem(root)) is not None:
        shared = f"{kind} at {root}"
    try:
        for warning in check_shared_secret(http_secret, shared, auth.token_auth and not auth.external_tokens):
            log.warning("%s", warning)
    except SecretError as error:
        raise click.ClickException(str(error)) from None
    if redis is not None:
        log.info("cache: blob sizes, layer links and tags in redis at %s (db %d)", redis.addr, redis.db)


def _renewal(context: ssl.SSLContext, settings: TlsSettings):
    async def renewal(app):
        task = asyncio.ensure_future(keep_renewed(context, settings))
        yield
        task.cancel()

    return renewal
