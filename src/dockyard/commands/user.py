"""``dockyard user``: manage an htpasswd file (bcrypt, mode 0600)."""

from __future__ import annotations

import pathlib
import sys

import click

from dockyard.auth import htpasswd

_FILE = click.option("--htpasswd", "path", required=True, type=click.Path(dir_okay=False, path_type=pathlib.Path), help="The htpasswd file.")
_STDIN = click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")


def _entries(path: pathlib.Path, must_exist: bool = True) -> dict[str, str]:
    if not path.exists():
        if must_exist:
            raise click.ClickException(f"{path} does not exist")
        return {}
    try:
        return htpasswd.read_entries(path)
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror}") from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("the password is empty")
    return password


def _save(path: pathlib.Path, entries: dict[str, str]) -> None:
    try:
        htpasswd.write_entries(path, entries)
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None


def _check_name(name: str) -> None:
    if not name or ":" in name or any(character.isspace() for character in name):
        raise click.BadParameter("a user name has no colon and no white space", param_hint="NAME")


@click.group()
def user() -> None:
    """Users of an htpasswd file: add, passwd, remove, list."""


@user.command()
@click.argument("name")
@_FILE
@_STDIN
def add(name: str, path: pathlib.Path, password_stdin: bool) -> None:
    """Add a user (the file is created, mode 0600, if missing)."""
    _check_name(name)
    entries = _entries(path, must_exist=False)
    if name in entries:
        raise click.ClickException(f"user {name} exists in {path}: use 'dockyard user passwd'")
    entries[name] = htpasswd.hash_password(_password(password_stdin))
    _save(path, entries)
    click.echo(f"added {name} to {path}")


@user.command()
@click.argument("name")
@_FILE
@_STDIN
def passwd(name: str, path: pathlib.Path, password_stdin: bool) -> None:
    """Change a user's password."""
    entries = _entries(path)
    if name not in entries:
        raise click.ClickException(f"no user {name} in {path}")
    entries[name] = htpasswd.hash_password(_password(password_stdin))
    _save(path, entries)
    click.echo(f"changed the password of {name}")


@user.command()
@click.argument("name")
@_FILE
def remove(name: str, path: pathlib.Path) -> None:
    """Remove a user."""
    entries = _entries(path)
    if entries.pop(name, None) is None:
        raise click.ClickException(f"no user {name} in {path}")
    _save(path, entries)
    click.echo(f"removed {name} from {path}")


@user.command("list")
@_FILE
def list_users(path: pathlib.Path) -> None:
    """List the users."""
    for name in sorted(_entries(path)):
        click.echo(name)
