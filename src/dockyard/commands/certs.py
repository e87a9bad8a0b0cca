"""``dockyard certs``: make a CA, issue certificates, and say what clients will think of one."""

from __future__ import annotations

import pathlib

import click

from dockyard.tls import certificates, inspect
from dockyard.tls.certificates import KEY_TYPES, CertificateAuthority
from dockyard.tls.errors import CertificateError
from dockyard.tls.serving import CA_CERT, CA_KEY

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default="./data-tls",
    show_default=True,
    help="The TLS directory (serve's --tls-dir): the CA lives here as ca.crt and ca.key.",
)


@click.group()
def certs() -> None:
    """Certificates: a CA of your own, server and client certificates signed by it."""


@certs.command("ca")
@_DIR_OPTION
@click.option("--days", type=click.IntRange(1, 36500), default=certificates.CA_DAYS, show_default=True)
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="ecdsa-p256", show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing CA (every certificate it issued stops being trusted).")
def create_ca(directory: pathlib.Path, days: int, key_type: str, force: bool) -> None:
    """Create a certificate authority in the TLS directory."""
    if (directory / CA_CERT).exists() and not force:
        raise click.ClickException(f"{directory / CA_CERT} exists: keep it, or replace it with --force")
    key = certificates.generate_key(key_type)
    certificate = certificates.create_ca(key, days)
    certificates.write_key(directory / CA_KEY, key)
    certificates.write_certificates(directory / CA_CERT, certificate)
    click.echo(f"created {directory / CA_CERT} (key {directory / CA_KEY}, mode 0600)")
    click.echo(f"sha256 {certificates.fingerprint(certificate)}")


@certs.command("issue")
@click.argument("names", nargs=-1, required=True)
@_DIR_OPTION
@click.option("--ip", "ips", multiple=True, help="An IP address to include (repeatable); IPs among NAMES work too.")
@click.option("--days", type=click.IntRange(1, 3650), default=certificates.LEAF_DAYS, show_default=True)
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="ecdsa-p256", show_default=True)
@click.option("--client", is_flag=True, help="A client certificate (for mutual TLS) instead of a server one.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=pathlib.Path), help="Certificate file; the key goes beside it with .key.  [default: DIR/NAME.crt]",
)
def issue(names: tuple[str, ...], directory: pathlib.Path, ips: tuple[str, ...], days: int, key_type: str, client: bool, out: pathlib.Path | None) -> None:
    """Issue a certificate for NAMES, signed by the CA in the TLS directory."""
    try:
        ca = CertificateAuthority.load(directory / CA_CERT, directory / CA_KEY)
    except CertificateError as error:
        raise click.ClickException(f"{error} (create a CA first: dockyard certs ca --dir {directory})") from None
    out = out or directory / f"{names[0].replace('*', '_')}.crt"
    if out.suffix == ".key":
        raise click.BadParameter("name the certificate file (e.g. server.crt): the key is written beside it as .key", param_hint="--out")
    key = certificates.generate_key(key_type)
    certificate = ca.issue(key, [*names, *ips], days=days, client=client)
    key_path = out.with_suffix(".key")
    certificates.write_key(key_path, key)
    certificates.write_certificates(out, certificate, ca.certificate)
    click.echo(f"issued {out} (key {key_path}, mode 0600) for {', '.join([*names, *ips])}")


@certs.command("show")
@click.argument("file", type=click.Path(dir_okay=False, path_type=pathlib.Path))
def show(file: pathlib.Path) -> None:
    """Print a certificate's subject, names, issuer, validity, fingerprint and problems."""
    try:
        chain = certificates.load_certificates(file)
    except CertificateError as error:
        raise click.ClickException(str(error)) from None
    for position, certificate in enumerate(chain):
        if position:
            click.echo(f"\n--- certificate {position + 1} of the chain")
        click.echo(inspect.describe(certificate))
