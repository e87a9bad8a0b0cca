"""Dockyard: a private container registry."""

__version__ = "0.1.0"
