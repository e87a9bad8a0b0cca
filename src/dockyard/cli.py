"""The ``dockyard`` command."""

from __future__ import annotations

import click

from dockyard import __version__
from dockyard.commands.certs import certs
from dockyard.commands.config import config
from dockyard.commands.du import du
from dockyard.commands.gc import gc
from dockyard.commands.proxy_config import proxy_config
from dockyard.commands.scrub import scrub
from dockyard.commands.serve import serve
from dockyard.commands.trust import trust_command
from dockyard.commands.user import user


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dockyard")
def main() -> None:
    """Dockyard: a private container registry."""


main.add_command(serve)
main.add_command(certs)
main.add_command(trust_command)
main.add_command(user)
main.add_command(config)
main.add_command(proxy_config)
main.add_command(gc)
main.add_command(scrub)
main.add_command(du)
