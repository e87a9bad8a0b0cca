"""``dockyard robot``: robot accounts (credentials for CI) in the registry's storage."""

from __future__ import annotations

import asyncio
import datetime
import pathlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from dockyard.auth.robots import USER_PREFIX, Listed, Robot, RobotAccounts, RobotError, parse_lifetime
from dockyard.commands.gc import config_option, root_option, storage_settings
from dockyard.storage.factory import build_driver

Result = TypeVar("Result")


def _lifetime(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    try:
        return None if value is None else parse_lifetime(value)
    except RobotError as error:
        raise click.BadParameter(str(error)) from None


def _with_robots(config_file: pathlib.Path | None, root: pathlib.Path | None, action: Callable[[RobotAccounts], Awaitable[Result]]) -> Result:
    settings, _ = storage_settings(config_file, root)

    async def run() -> Result:
        driver = build_driver(settings)
        try:
            return await action(RobotAccounts(driver))
        finally:
            await driver.close()

    try:
        return asyncio.run(run())
    except RobotError as error:
        raise click.ClickException(str(error)) from None


def moment(timestamp: float | None, missing: str) -> str:
    if timestamp is None:
        return missing
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def permissions(robot: Robot) -> str:
    granted = [f"{action} {' '.join(globs)}" for action, globs in (("pull", robot.pull), ("push", robot.push), ("delete", robot.delete)) if globs]
    return "; ".join(granted)


@click.group()
def robot() -> None:
    """Robot accounts: add, list, remove. A robot signs in as robot$NAME with its secret."""


@robot.command()
@click.argument("name")
@click.option("--pull", "pull", multiple=True, metavar="GLOB", help="Repositories it may pull (* within a path component, ** across them); repeatable.")
@click.option("--push", "push", multiple=True, metavar="GLOB", help="Repositories it may push to (and pull from); repeatable.")
@click.option("--delete", "delete", multiple=True, metavar="GLOB", help="Repositories it may delete in; repeatable.")
@click.option("--expires", "lifetime", callback=_lifetime, metavar="DURATION", help="Expire after this long (90d, 12h, 30m).  [default: never]")
@config_option
@root_option
def add(
    name: str, pull: tuple[str, ...], push: tuple[str, ...], delete: tuple[str, ...], lifetime: float | None,
    config_file: pathlib.Path | None, root: pathlib.Path | None,
) -> None:
    """Add a robot; its secret is the last line printed, and is shown only this once."""
    bare = name.removeprefix(USER_PREFIX)
    made, secret = _with_robots(config_file, root, lambda robots: robots.add(bare, pull, push, delete, lifetime))
    click.echo(f"added {USER_PREFIX}{made.name}: {permissions(made)}; expires {moment(made.expires, 'never')}")
    click.echo(f"its secret (shown only now; sign in as {USER_PREFIX}{made.name}):")
    click.echo(secret)


@robot.command("list")
@config_option
@root_option
def list_robots(config_file: pathlib.Path | None, root: pathlib.Path | None) -> None:
    """List the robots: name, permissions, expiry, last use."""
    found: list[Listed] = _with_robots(config_file, root, lambda robots: robots.list())
    rows = [
        (USER_PREFIX + entry.robot.name, permissions(entry.robot), moment(entry.robot.expires, "never"), moment(entry.last_used, "never"))
        for entry in found
    ]
    header = ("NAME", "PERMISSIONS", "EXPIRES", "LAST USED")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(3)]
    for row in [header, *rows]:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row[:3], widths, strict=True)) + "  " + row[3])


@robot.command()
@click.argument("name")
@config_option
@root_option
def remove(name: str, config_file: pathlib.Path | None, root: pathlib.Path | None) -> None:
    """Remove a robot: its secret and its tokens stop working within seconds."""
    bare = name.removeprefix(USER_PREFIX)
    _with_robots(config_file, root, lambda robots: robots.remove(bare))
    click.echo(f"removed {USER_PREFIX}{bare}")
