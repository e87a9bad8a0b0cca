"""The ``dockyard`` command."""

from __future__ import annotations

import importlib

import click

from dockyard import __version__

# name → module:attribute. A subcommand's module is imported when that command runs (or
# help lists it): ``dockyard gc`` need not load the server, the web page or the TLS tools.
_COMMANDS = {
    "serve": "dockyard.commands.serve:serve",
    "certs": "dockyard.commands.certs:certs",
    "trust": "dockyard.commands.trust:trust_command",
    "user": "dockyard.commands.user:user",
    "robot": "dockyard.commands.robot:robot",
    "config": "dockyard.commands.config:config",
    "proxy-config": "dockyard.commands.proxy_config:proxy_config",
    "gc": "dockyard.commands.gc:gc",
    "scrub": "dockyard.commands.scrub:scrub",
    "du": "dockyard.commands.du:du",
    "doctor": "dockyard.commands.doctor:doctor",
    "repo": "dockyard.commands.repo:repo",
    "mirror": "dockyard.commands.mirror:mirror",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, _, attribute = _COMMANDS[cmd_name].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dockyard")
def main() -> None:
    """Dockyard: a private container registry."""
