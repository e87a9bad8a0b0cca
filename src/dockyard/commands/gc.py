"""``dockyard gc``: garbage collection, safe while the registry serves."""

from __future__ import annotations

import os
import pathlib

import click
import uvloop

from dockyard.config import ConfigError, load, parse_duration, serve_arguments
from dockyard.maintenance.gc import Collector, Options
from dockyard.maintenance.progress import for_terminal
from dockyard.maintenance.uploads_purge import purge_uploads
from dockyard.storage.cache import cache_from_config
from dockyard.storage.factory import NoRegistryData, StorageSettings, StorageUnavailable, build_driver, check_registry_data
from dockyard.storage.registry import Registry


class NotARegistry(click.ClickException):
    """A root that holds no registry: a usage error (exit 2), in one line."""

    exit_code = 2


def storage_settings(config_file: pathlib.Path | None, root: pathlib.Path | None) -> tuple[StorageSettings, dict[str, object]]:
    """The storage ``--config`` (registry:2's config.yml) or ``--root`` names, and the config's ``serve`` arguments."""
    if config_file is None and root is None:
        raise click.UsageError("give --config FILE or --root DIR")
    arguments: dict[str, object] = {}
    if config_file is not None:
        try:
            arguments = serve_arguments(load(config_file, os.environ).config)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
    settings = StorageSettings(
        "filesystem" if root is not None else str(arguments["storage"]),
        root if root is not None else pathlib.Path(str(arguments["root"])),
        None if root is not None else arguments["s3"],  # type: ignore[arg-type]
    )
    if settings.kind == "inmemory":
        raise click.ClickException("the inmemory storage of a config file has nothing to maintain")
    try:
        check_registry_data(settings)
    except NoRegistryData as error:
        raise NotARegistry(str(error)) from None
    except StorageUnavailable as error:
        raise click.ClickException(str(error)) from None
    return settings, arguments


def open_registry(settings: StorageSettings, arguments: dict[str, object]) -> Registry:
    """The registry over the storage, with the config's Redis cache: what is deleted must leave it too."""
    return Registry(build_driver(settings), cache=cache_from_config(arguments.get("redis")))  # type: ignore[arg-type]


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise click.BadParameter(f"expected a duration like 30s, 10m or 1h, got {value!r}") from None


config_option = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path),
    help="registry:2's config.yml: its storage (and dockyard.gc / dockyard.retention settings).",
)
root_option = click.option("--root", type=click.Path(file_okay=False, path_type=pathlib.Path), help="A filesystem storage root.")


@click.command()
@config_option
@root_option
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@click.option("--delete-untagged", is_flag=True, help="Also remove manifests no tag keeps (an index's children and a kept manifest's referrers stay).")
@click.option("--grace-period", callback=_duration, metavar="DURATION", help="Keep anything pushed this recently.  [default: dockyard.gc.grace_period, 1h]")
def gc(config_file: pathlib.Path | None, root: pathlib.Path | None, dry_run: bool, delete_untagged: bool, grace_period: float | None) -> None:
    """Remove blobs (and with --delete-untagged, manifests) nothing references, as registry:2's
    garbage-collect does, safely while the registry serves pushes."""
    settings, arguments = storage_settings(config_file, root)
    configured = arguments.get("gc")
    options = Options(
        dry_run=dry_run,
        delete_untagged=delete_untagged,
        grace_period=grace_period if grace_period is not None else getattr(configured, "grace_period", Options.grace_period),
        retention=tuple(arguments.get("retention", ())),  # type: ignore[arg-type]
    )

    async def run() -> None:
        registry = open_registry(settings, arguments)
        try:
            report = await Collector(registry, options, for_terminal()).run()
            purging = arguments.get("upload_purging")
            purged = await purge_uploads(registry.driver, purging.age if purging else None, dry_run)  # type: ignore[attr-defined]
        finally:
            await registry.close()
        for name, tag in report.tags_removed:
            click.echo(f"{'would untag' if dry_run else 'untagged'} {name}:{tag}")
        for name, digest in report.manifests_removed:
            click.echo(f"{'would remove' if dry_run else 'removed'} manifest {name}@{digest}")
        click.echo(report.summary())
        click.echo(purged.summary())

    # uvloop, as the server runs: its thread hops and callbacks cost less, and a collection makes many.
    uvloop.run(run())
