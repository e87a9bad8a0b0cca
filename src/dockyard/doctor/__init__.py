"""``dockyard doctor``: why docker, podman, skopeo or containerd fail against a registry, seen from
the client's machine. Each module checks one group and returns :class:`~dockyard.doctor.results.Check`
results; :mod:`dockyard.doctor.run` runs them in order. Any registry, not only Dockyard."""
