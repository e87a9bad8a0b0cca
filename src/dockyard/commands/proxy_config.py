"""``dockyard proxy-config``: print a reverse-proxy configuration for Dockyard."""

from __future__ import annotations

import pathlib

import click

from dockyard.proxy_config import DEFAULT_LISTEN, DEFAULT_UPSTREAM, NginxSite, ProxyConfigError, render_nginx

_FILE = click.Path(dir_okay=False, resolve_path=True, path_type=pathlib.Path)


@click.group("proxy-config")
def proxy_config() -> None:
    """Print a reverse-proxy configuration that fronts Dockyard."""


@proxy_config.command("nginx")
@click.option("--server-name", required=True, help="The name(s) clients use, for nginx's server_name (space-separated).")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, help="PORT nginx listens on (every interface), or ADDRESS:PORT.")
@click.option("--upstream", default=DEFAULT_UPSTREAM, show_default=True, help="Where `dockyard serve` listens: HOST:PORT.")
@click.option("--tls-cert", type=_FILE, help="nginx's PEM certificate (chain after it). Without it nginx listens on plain HTTP.")
@click.option("--tls-key", type=_FILE, help="The PEM key of --tls-cert.")
@click.option(
    "--auth-at-proxy", "auth_at_proxy", type=_FILE, metavar="HTPASSWD",
    help="Basic authentication at nginx against this htpasswd file (run Dockyard without --htpasswd).",
)
@click.option("--auth-realm", default="Dockyard", show_default=True, help="The realm of --auth-at-proxy.")
@click.option("--upstream-tls", "upstream_ca", type=_FILE, metavar="CA", help="Dockyard serves HTTPS: verify it against this CA (its TLS directory's ca.crt).")
@click.option(
    "--upstream-tls-name", metavar="NAME",
    help="The DNS name Dockyard's certificate is checked for (and sent as SNI).  [default: the --upstream host; localhost for a loopback IP]",
)
def nginx(
    server_name: str,
    listen: str,
    upstream: str,
    tls_cert: pathlib.Path | None,
    tls_key: pathlib.Path | None,
    auth_at_proxy: pathlib.Path | None,
    auth_realm: str,
    upstream_ca: pathlib.Path | None,
    upstream_tls_name: str | None,
) -> None:
    """Print an nginx site (upstream + server) to put in nginx's http {} block."""
    site = NginxSite(
        server_name=server_name,
        listen=listen,
        upstream=upstream,
        tls_cert=tls_cert,
        tls_key=tls_key,
        auth_at_proxy=auth_at_proxy,
        upstream_ca=upstream_ca,
        auth_realm=auth_realm,
        upstream_tls_name=upstream_tls_name,
    )
    if upstream_tls_name and not upstream_ca:
        raise click.UsageError("--upstream-tls-name goes with --upstream-tls")
    try:
        text = render_nginx(site)
    except ProxyConfigError as error:
        raise click.UsageError(str(error)) from None
    click.echo(text, nl=False)
