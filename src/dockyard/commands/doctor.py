"""``dockyard doctor HOST[:PORT]``: why a client fails against a registry, checked from this machine."""

from __future__ import annotations

import json
import pathlib
import sys

import click

from dockyard.doctor.machine import Credentials, Machine
from dockyard.doctor.network import Target
from dockyard.doctor.push import LONG_REQUEST
from dockyard.doctor.results import Outcome, passed, summary
from dockyard.doctor.run import Options, diagnose
from dockyard.tls.trust import ROOT

_MARKS = {Outcome.OK: "ok  ", Outcome.WARN: "WARN", Outcome.FAIL: "FAIL"}


@click.command("doctor")
@click.argument("address", metavar="HOST[:PORT]")
@click.option("--username", help="Sign in as this user (the password from --password-stdin, or the saved login).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--push-test", "push_repository", metavar="REPO",
    help="Also start uploads to REPO and cancel them: measures what a proxy does to pushes (nothing is committed).",
)
@click.option(
    "--long-request", type=click.FloatRange(min=0), default=LONG_REQUEST, show_default=True, metavar="SECONDS",
    help="With --push-test: how long the slow upload that meets proxies' time limits lasts (0 skips it).",
)
@click.option(
    "--root", type=click.Path(file_okay=False, exists=True, path_type=pathlib.Path), default=ROOT, show_default=True,
    envvar="DOCKYARD_DOCTOR_ROOT",
    help="Read the clients' configuration (/etc/docker, /etc/containers, /etc/containerd, the system store) under this folder.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(
    address: str, username: str | None, password_stdin: bool, push_repository: str | None, long_request: float, root: pathlib.Path, as_json: bool,
) -> None:
    """Check, as docker, podman, skopeo and containerd would, the registry at HOST[:PORT] (443 by default).

    Exits 0 when nothing found would stop docker, podman or skopeo; 1 otherwise.
    """
    try:
        target = Target.parse(address)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="HOST[:PORT]") from None
    machine = Machine(root.absolute())
    credentials = _credentials(machine, target, username, password_stdin)
    if push_repository is not None and long_request > 0:
        click.echo(f"the push test sends one upload slowly for {long_request:.0f} s (--long-request 0 skips it)", err=True)
    checks = diagnose(Options(target, machine, credentials, push_repository, long_request))
    if as_json:
        click.echo(json.dumps({"registry": target.host_port, "passed": passed(checks), "checks": [check.to_json() for check in checks]}, indent=2))
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            click.echo(f"{_MARKS[check.outcome]}  {check.name:<{width}}  {check.message}")
            if check.fix and check.outcome is not Outcome.OK:
                click.echo(f"      {'':<{width}}  fix: {check.fix}")
        click.echo(summary(target.host_port, checks))
    sys.exit(0 if passed(checks) else 1)


def _credentials(machine: Machine, target: Target, username: str | None, password_stdin: bool) -> Credentials | None:
    if password_stdin:
        if username is None:
            raise click.UsageError("--password-stdin needs --username")
        return Credentials(username, sys.stdin.readline().rstrip("\r\n"), "--password-stdin")
    saved = machine.saved_credentials(target.host_port)
    if username is None or saved is not None and saved.username == username:
        return saved
    raise click.UsageError(f"no saved login for {username} at {target.host_port}: give the password with --password-stdin")
