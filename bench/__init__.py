"""Dockyard's benchmark harness: Dockyard against Debian's registry:2 on this machine.

Run ``bench/run`` (installs what is missing) or ``python -m bench --help``.
"""
