"""``dockyard gc``: garbage collection, safe while the registry serves."""

from __future__ import annotations

import os
import pathlib

import click
import uvloop

from dockyard.config import ConfigError, Settings, load, parse_duration
from dockyard.events import notifier_from
from dockyard.maintenance.gc import Collector, Options
from dockyard.maintenance.progress import for_terminal
from dockyard.maintenance.uploads_purge import purge_uploads
from dockyard.proxy.expiry import ttl_lookup
from dockyard.storage.cache import cache_from_config
from dockyard.storage.factory import NoRegistryData, StorageSettings, StorageUnavailable, build_driver, check_registry_data
from dockyard.storage.immutable import ImmutableTags
from dockyard.storage.quotas import QuotaRule
from dockyard.storage.registry import Registry


class NotARegistry(click.ClickException):
    """A root that holds no registry: a usage error (exit 2), in one line."""

    exit_code = 2


def storage_settings(config_file: pathlib.Path | None, root: pathlib.Path | None) -> tuple[StorageSettings, Settings | None]:
    """The storage ``--config`` (registry:2's config.yml) or ``--root`` names, and the config's settings."""
    if config_file is None and root is None:
        raise click.UsageError("give --config FILE or --root DIR")
    settings = None
    if config_file is not None:
        try:
            settings = load(config_file, os.environ).settings
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
    if root is not None:
        storage = StorageSettings("filesystem", root)
    else:
        assert settings is not None
        storage = StorageSettings.of(settings.storage)
    if storage.kind == "inmemory":
        raise click.ClickException("the inmemory storage of a config file has nothing to maintain")
    try:
        check_registry_data(storage)
    except NoRegistryData as error:
        raise NotARegistry(str(error)) from None
    except StorageUnavailable as error:
        raise click.ClickException(str(error)) from None
    return storage, settings


def open_registry(storage: StorageSettings, settings: Settings | None) -> Registry:
    """The registry over the storage, with the config's Redis cache (what is deleted must leave it too),
    its quotas and immutable tags (which retention keeps)."""
    return Registry(
        build_driver(storage), cache=cache_from_config(settings.redis_cache if settings else None), immutable=ImmutableTags.of(settings),
        quotas=QuotaRule.all_of(settings.dockyard.quotas) if settings else (),
    )


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
    storage, settings = storage_settings(config_file, root)
    options = Options(
        dry_run=dry_run,
        delete_untagged=delete_untagged,
        grace_period=grace_period if grace_period is not None else settings.dockyard.gc.grace_period if settings else Options.grace_period,
        retention=tuple(settings.dockyard.retention) if settings else (),
        ttl_for=ttl_lookup(settings),  # a pull-through cache's images not pulled within proxy.ttl expire
    )

    async def run() -> None:
        registry = open_registry(storage, settings)
        try:
            report = await Collector(registry, options, for_terminal()).run()
            notifier = notifier_from(settings, registry.driver) if settings is not None and not dry_run else None
            if notifier is not None:
                await notifier.collected(report)  # sent by the running server's delivery
            purged = await purge_uploads(registry.driver, settings.storage.maintenance.uploadpurging.age if settings else None, dry_run)
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
