"""``dockyard repo delete``: delete a whole repository from storage (registry:2 cannot)."""

from __future__ import annotations

import asyncio
import pathlib

import click

from dockyard.commands.gc import config_option, open_registry, root_option, storage_settings
from dockyard.deletes import delete_repository
from dockyard.errors import DockyardError, NameInvalid
from dockyard.events import notifier_from
from dockyard.reference import check_name
from dockyard.storage.registry import DeletedRepository


@click.group()
def repo() -> None:
    """Manage whole repositories."""


@repo.command()
@config_option
@root_option
@click.option("--force", is_flag=True, help="Delete it even when it holds immutable tags (dockyard.immutable_tags).")
@click.argument("name")
def delete(config_file: pathlib.Path | None, root: pathlib.Path | None, force: bool, name: str) -> None:
    """Delete the repository NAME: its tags, manifests, layer links and uploads in progress, at once
    (also while the registry serves). Its blobs are freed by the next gc unless another repository links
    them; the repositories below NAME stay. A repository holding immutable tags is refused without --force."""
    try:
        check_name(name)
    except NameInvalid:
        raise click.BadParameter(f"{name!r} is not a repository name", param_hint="NAME") from None
    storage, settings = storage_settings(config_file, root)

    async def run() -> DeletedRepository:
        registry = open_registry(storage, settings)
        notifier = notifier_from(settings, registry.driver) if settings is not None else None  # sent by the running server's delivery
        try:
            return await delete_repository(registry, name, None, None, notifier, force)
        finally:
            await registry.close()

    try:
        deleted = asyncio.run(run())
    except DockyardError as error:
        raise click.ClickException(str(error)) from None
    cancelled = f", cancelled {deleted.uploads} uploads in progress" if deleted.uploads else ""
    click.echo(f"deleted {name}: {len(deleted.tags)} tags, {deleted.manifests} manifests{cancelled}; run dockyard gc to free its blobs")
