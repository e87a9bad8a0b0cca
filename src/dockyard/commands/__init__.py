"""The ``dockyard`` subcommands, one module each."""
