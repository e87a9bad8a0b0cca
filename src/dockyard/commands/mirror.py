"""``dockyard mirror sync``: run the pull-through cache's syncs now, as the server runs them on their intervals."""

from __future__ import annotations

import os
import pathlib

import click
import uvloop

from dockyard.commands.gc import open_registry
from dockyard.config import ConfigError, load
from dockyard.maintenance.schedule import run_when_due
from dockyard.proxy.mirrors import SyncTarget, build_mirrors
from dockyard.proxy.sync import SyncResult, sync
from dockyard.storage import paths
from dockyard.storage.factory import StorageSettings, StorageUnavailable, check_storage


@click.group()
def mirror() -> None:
    """The pull-through cache's upstreams (registry:2's proxy section, dockyard.mirrors)."""


@mirror.command("sync")
@click.option(
    "--config", "config_file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path),
    help="The server's config.yml: its storage, and the sync entries of dockyard.mirrors or dockyard.proxy.",
)
@click.option("--prefix", help="Only the entries of the mirror with this prefix.")
@click.option("--repository", help="Only the entries of this repository (as the upstream names it).")
def sync_command(config_file: pathlib.Path, prefix: str | None, repository: str | None) -> None:
    """Fetch the configured tags of upstream repositories into the cache now (each entry waits for a run of
    it that a server may have under way); one line per tag, and per entry what it fetched."""
    try:
        settings = load(config_file, os.environ).settings
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    storage = StorageSettings.of(settings.storage)
    if storage.kind == "inmemory":
        raise click.ClickException("the inmemory storage of a config file holds no cache to sync into")
    if prefix is not None and prefix.removesuffix("/") not in {mirror.prefix.removesuffix("/") for mirror in settings.dockyard.mirrors}:
        raise click.ClickException(f"no mirror of dockyard.mirrors has the prefix {prefix!r}")
    try:
        check_storage(storage)
    except StorageUnavailable as error:
        raise click.ClickException(str(error)) from None

    async def run() -> list[SyncResult]:
        registry = open_registry(storage, settings)
        mirrors = build_mirrors(settings, registry)
        try:
            targets = [
                target for target in (mirrors.sync_targets if mirrors is not None else [])
                if (prefix is None or target.cache.prefix == prefix.removesuffix("/")) and repository in (None, target.entry.repository)
            ]
            if not targets:
                raise click.ClickException(_nothing_to_sync(prefix, repository))
            return [await _run(target) for target in targets]
        finally:
            if mirrors is not None:
                await mirrors.close()
            await registry.close()

    results = uvloop.run(run())
    failed = sum(1 for result in results if result.error)
    if failed:
        raise click.ClickException(f"{failed} of {len(results)} syncs failed")


async def _run(target: SyncTarget) -> SyncResult:
    outcome: list[SyncResult] = []

    async def work() -> None:
        outcome.append(await sync(target, click.echo))

    # Under the server's lock and stamp: the server's next run of it comes an interval after this one.
    await run_when_due(target.cache.registry.driver, paths.proxy_sync_run(target.name), 0.0, work)
    click.echo(f"{target.name}: {outcome[0].summary()}")
    return outcome[0]


def _nothing_to_sync(prefix: str | None, repository: str | None) -> str:
    chosen = " and ".join(part for part in (prefix and f"the prefix {prefix!r}", repository and f"the repository {repository!r}") if part)
    where = f" with {chosen}" if chosen else ""
    return f"no sync entry{where} in dockyard.mirrors' sync or dockyard.proxy.sync"
