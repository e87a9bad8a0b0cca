"""The ``dockyard`` command."""

from __future__ import annotations

import logging
import pathlib
import sys

import click

from dockyard import __version__
from dockyard.server import Address


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dockyard")
def main() -> None:
    """Dockyard: a private container registry."""


@main.command()
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
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes sharing the port.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def serve(addr: str, root: pathlib.Path, storage: str, no_delete: bool, workers: int, log_level: str) -> None:
    """Serve the registry (plain HTTP)."""
    from dockyard.api.app import create_app
    from dockyard.server import run
    from dockyard.storage.filesystem import FilesystemDriver
    from dockyard.storage.inmemory import InMemoryDriver
    from dockyard.storage.registry import Registry

    _setup_logging(log_level)
    try:
        address = Address.parse(addr)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--addr") from None
    if storage == "inmemory" and workers > 1:
        raise click.BadParameter("the inmemory driver cannot be shared by several workers", param_hint="--workers")
    if storage == "filesystem":
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise click.ClickException(f"cannot use storage root {root}: {error.strerror}") from None

    def make_app():
        driver = FilesystemDriver(root) if storage == "filesystem" else InMemoryDriver()
        return create_app(Registry(driver, delete_enabled=not no_delete))

    def announce(port: int) -> None:
        where = f"filesystem at {root.absolute()}" if storage == "filesystem" else "in memory"
        click.echo(f"dockyard {__version__} serving http://{address.url_host(port)} (storage {where}, {workers} worker(s))", err=True)

    try:
        run(make_app, address, workers, announce)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {addr}: {error.strerror}") from None
