"""``dockyard trust``: make docker, podman, skopeo and the system trust a registry's CA."""

from __future__ import annotations

import pathlib
import sys

import click
from cryptography import x509

from dockyard.tls import certificates, trust
from dockyard.tls.trust import TrustError


@click.command("trust")
@click.argument("host_port", metavar="HOST:PORT")
@click.option(
    "--ca", "ca_file", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path),
    help="The CA certificate file (the server's TLS directory has it as ca.crt).",
)
@click.option("--fetch", is_flag=True, help="Download the CA from the registry (over an unverified connection).")
@click.option("--fingerprint", "expected", help="The CA's SHA-256 fingerprint, as serve printed it: required with --fetch unless you confirm at a prompt.")
@click.option("--docker", is_flag=True, help="Install for docker (/etc/docker/certs.d).")
@click.option("--containers", is_flag=True, help="Install for podman, buildah and skopeo (/etc/containers/certs.d).")
@click.option(
    "--system", is_flag=True,
    help="Install in the system store (curl, git, Python, most tools; not Firefox or Chromium, which keep their own on Linux).",
)
@click.option("--dry-run", is_flag=True, help="Print the files and commands instead.")
@click.option("--remove", is_flag=True, help="Undo an earlier trust of HOST:PORT (with --system, the system store's links too).")
@click.option(
    "--root", type=click.Path(file_okay=False, exists=True, path_type=pathlib.Path), default=trust.ROOT, show_default=True,
    help="Install under this folder instead (a chroot or an image being built).",
)
def trust_command(
    host_port: str,
    ca_file: pathlib.Path | None,
    fetch: bool,
    expected: str | None,
    docker: bool,
    containers: bool,
    system: bool,
    dry_run: bool,
    remove: bool,
    root: pathlib.Path,
) -> None:
    """Install the CA of the registry at HOST:PORT where clients look for it.

    With none of --docker, --containers, --system: docker and containers.
    """
    host, sep, port = host_port.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT, e.g. registry.example.com:5000", param_hint="HOST:PORT")
    if not (docker or containers or system):
        docker = containers = True
    try:
        chosen = trust.targets(host_port, docker, containers, system, root.absolute())
    except TrustError as error:
        raise click.ClickException(str(error)) from None

    if remove:
        if dry_run:
            for target in chosen:
                click.echo(f"would remove {target.path}" + (f" and run {' '.join(target.removal_refresh)}" if target.removal_refresh else ""))
            return
        try:
            removed = trust.remove(chosen)
        except (TrustError, OSError) as error:
            raise click.ClickException(str(error)) from None
        for target in removed:
            click.echo(f"removed {target.path} ({target.client})")
        if not removed:
            click.echo(f"nothing to remove for {host_port}")
        return

    if (ca_file is None) == (not fetch):
        raise click.UsageError("give the CA with --ca FILE, or --fetch it from the registry")
    try:
        if ca_file is not None:
            pem = ca_file.read_bytes()
            certificate = trust.parse_ca(pem, str(ca_file))
            if expected is not None:
                _check_fingerprint(certificate, expected)
        else:
            pem = trust.fetch_ca(host_port)
            certificate = trust.parse_ca(pem, f"the CA served by {host_port}")
            _confirm_fetched(certificate, expected)
        if dry_run:
            for target in chosen:
                click.echo(f"would write {target.path}" + (f" and run {' '.join(target.refresh)}" if target.refresh else ""))
            return
        trust.install(pem, chosen)
    except TrustError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"{error.filename}: {error.strerror}") from None
    for target in chosen:
        click.echo(f"wrote {target.path} ({target.client})")


def _check_fingerprint(certificate: x509.Certificate, expected: str) -> None:
    actual = certificates.fingerprint(certificate)
    if certificates.normalize_fingerprint(expected) != actual:
        raise TrustError(f"fingerprint mismatch: the CA is {actual}, you expected {expected}: NOT trusting it")


def _confirm_fetched(certificate: x509.Certificate, expected: str | None) -> None:
    if expected is not None:
        _check_fingerprint(certificate, expected)
        return
    actual = certificates.fingerprint(certificate)
    if not sys.stdin.isatty():
        raise TrustError(f"the fetched CA has fingerprint {actual}: check it against what serve printed, then pass --fingerprint")
    click.echo(f"subject: {certificate.subject.rfc4514_string()}\nsha256:  {actual}")
    if not click.confirm("Is this the fingerprint the registry printed at start?", default=False):
        raise TrustError("not trusted")
