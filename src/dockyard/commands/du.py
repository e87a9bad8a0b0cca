"""``dockyard du``: storage per repository, shared and exclusive."""

from __future__ import annotations

import asyncio
import json
import pathlib

import click

from dockyard.commands.gc import config_option, root_option, storage_settings
from dockyard.maintenance.usage import Usage, usage
from dockyard.sizes import human_size
from dockyard.storage.factory import build_driver


@click.command()
@config_option
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("repositories", nargs=-1)
def du(config_file: pathlib.Path | None, root: pathlib.Path | None, as_json: bool, repositories: tuple[str, ...]) -> None:
    """Storage per repository: bytes of blobs only it links (exclusive) and linked elsewhere too (shared)."""
    settings, _ = storage_settings(config_file, root)

    async def run() -> Usage:
        driver = build_driver(settings)
        try:
            return await usage(driver, repositories)
        finally:
            await driver.close()

    found = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
        return
    width = max([len("REPOSITORY"), *(len(row.repository) for row in found.repositories)])
    click.echo(f"{'REPOSITORY':<{width}}  {'BLOBS':>7}  {'EXCLUSIVE':>10}  {'SHARED':>10}")
    for row in found.repositories:
        click.echo(f"{row.repository:<{width}}  {row.blobs:>7}  {human_size(row.exclusive_bytes):>10}  {human_size(row.shared_bytes):>10}")
    click.echo(f"total {human_size(found.total_bytes)} in {found.blobs} blobs, {human_size(found.unlinked_bytes)} linked by no repository")
