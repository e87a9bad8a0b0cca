"""The pull-through cache: an upstream registry's manifests and blobs, fetched when first pulled."""
