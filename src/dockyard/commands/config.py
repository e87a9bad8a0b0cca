"""``dockyard config``: check a registry:2 configuration file, show the effective settings."""

from __future__ import annotations

import os
import pathlib

import click

from dockyard.config import ConfigError, Loaded, load, to_yaml

_FILE_TYPE = click.Path(dir_okay=False, path_type=pathlib.Path)


def _loaded(path: pathlib.Path | None) -> Loaded:
    """The file with the ``REGISTRY_*`` variables applied; warnings said on standard error."""
    try:
        loaded = load(path, os.environ)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    return loaded


@click.group("config")
def config() -> None:
    """registry:2's configuration file (version 0.1) and REGISTRY_* variables."""


@config.command()
@click.argument("file", type=_FILE_TYPE)
def check(file: pathlib.Path) -> None:
    """Check FILE, with the REGISTRY_* variables set here, as serve would read them."""
    settings = _loaded(file).settings
    auth = "htpasswd" if settings.auth.htpasswd else "token" if settings.auth.token else "none"
    click.echo(f"OK: {file} (storage {settings.storage.kind}, addr {settings.http.addr}, auth {auth})")


@config.command()
@click.option("--config", "file", type=_FILE_TYPE, help="registry:2's configuration file.  [default: serve's own defaults]")
def show(file: pathlib.Path | None) -> None:
    """Print the effective configuration as YAML, secrets masked."""
    click.echo(to_yaml(_loaded(file).settings), nl=False)
