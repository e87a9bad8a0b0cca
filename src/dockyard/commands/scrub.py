"""``dockyard scrub``: re-hash every blob, check every link."""

from __future__ import annotations

import asyncio
import pathlib

import click

from dockyard.commands.gc import config_option, open_registry, root_option, storage_settings
from dockyard.maintenance.progress import for_terminal
from dockyard.maintenance.scrub import Scrubber, ScrubReport


@click.command()
@config_option
@root_option
@click.option(
    "--repair", is_flag=True,
    help="Move corrupt blobs to dockyard/quarantine/, remove dangling links and write missing referrer links (nothing else is deleted).",
)
def scrub(config_file: pathlib.Path | None, root: pathlib.Path | None, repair: bool) -> None:
    """Re-hash every blob and check every link; exit 1 when something is corrupt, dangling or
    missing (stale layer links and leftovers of interrupted writes do not count)."""
    storage, settings = storage_settings(config_file, root)

    async def run() -> ScrubReport:
        registry = open_registry(storage, settings)
        try:
            return await Scrubber(registry, repair, for_terminal()).run()
        finally:
            await registry.close()

    report = asyncio.run(run())
    for problem in report.problems:
        click.echo(str(problem))
    click.echo(report.summary())
    if report.failures:
        raise SystemExit(1)
