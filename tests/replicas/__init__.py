"""Three real Dockyard replicas on one storage (a shared root, or one S3 bucket) behind nginx."""
