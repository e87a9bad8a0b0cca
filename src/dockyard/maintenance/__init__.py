"""Keeping a registry's storage tidy: garbage collection, upload purging, scrub, usage, retention."""
