"""``dockyard du``: storage per repository, shared and exclusive."""

from __future__ import annotations

import asyncio
import json
import pathlib

import click

from dockyard.commands.gc import config_option, open_registry, root_option, storage_settings
from dockyard.maintenance.usage import Usage, usage
from dockyard.sizes import human_size
from dockyard.storage.quotas import QuotaUse


@click.command()
@config_option
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("repositories", nargs=-1)
def du(config_file: pathlib.Path | None, root: pathlib.Path | None, as_json: bool, repositories: tuple[str, ...]) -> None:
    """Storage per repository: bytes of blobs only it links (exclusive) and linked elsewhere too (shared);
    with --config, each dockyard.quotas rule's use, counted again and rewritten."""
    storage, settings = storage_settings(config_file, root)

    async def run() -> tuple[Usage, list[QuotaUse]]:
        registry = open_registry(storage, settings)
        try:
            # The quotas' records are counted again from the layout and rewritten (a reconcile).
            return await usage(registry.driver, repositories), await registry.quotas.reconcile()
        finally:
            await registry.close()

    found, quotas = asyncio.run(run())
    if as_json:
        click.echo(json.dumps({**found.to_json(), "quotas": [
            {"repositories": use.rule.repositories, "used_bytes": use.used_bytes, "max_bytes": use.rule.max_bytes, "blobs": use.blobs}
            for use in quotas
        ]}, indent=2))
        return
    width = max([len("REPOSITORY"), *(len(row.repository) for row in found.repositories)])
    click.echo(f"{'REPOSITORY':<{width}}  {'BLOBS':>7}  {'EXCLUSIVE':>10}  {'SHARED':>10}")
    for row in found.repositories:
        click.echo(f"{row.repository:<{width}}  {row.blobs:>7}  {human_size(row.exclusive_bytes):>10}  {human_size(row.shared_bytes):>10}")
    click.echo(f"total {human_size(found.total_bytes)} in {found.blobs} blobs, {human_size(found.unlinked_bytes)} linked by no repository")
    for use in quotas:
        click.echo(
            f"quota {use.rule.repositories}: {human_size(use.used_bytes)} / {human_size(use.rule.max_bytes)} used "
            f"({use.used_bytes} / {use.rule.max_bytes} bytes, {use.blobs} blobs)",
        )
