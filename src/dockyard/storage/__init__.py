"""Storage: the driver interface, its backends, and the registry's layout on top of them."""
