"""``dockyard serve`` with ``storage.s3``: a bucket that cannot be used is a one-line error at
start, and fails the storage health check (``/debug/health``) while serving."""

from __future__ import annotations

import pathlib

from click.testing import CliRunner

from dockyard.cli import main
from dockyard.config import S3
from dockyard.ops.health import StorageHealth
from dockyard.storage.s3 import S3Driver
from tests.support.registry2 import free_port
from tests.support.seaweedfs import SeaweedFS


def serve(config: pathlib.Path, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--addr", "127.0.0.1:0"], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.splitlines()


def error_line(lines: list[str]) -> str:
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    return errors[0]


def test_missing_bucket_key(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage:\n  s3: {region: us-east-1}\n")
    assert serve(config) == (1, ["Error: storage.s3.bucket: missing"])


def test_unreachable_endpoint(tmp_path: pathlib.Path, seaweedfs: SeaweedFS) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    config = seaweedfs.write_dockyard_config(tmp_path / "config.yml", "images", regionendpoint=nowhere)
    code, lines = serve(config)
    assert code == 1
    assert error_line(lines).startswith(f"Error: cannot reach S3 (s3://images at {nowhere}): ")


def test_bucket_that_does_not_exist(tmp_path: pathlib.Path, seaweedfs: SeaweedFS) -> None:
    config = seaweedfs.write_dockyard_config(tmp_path / "config.yml", "no-such-bucket")
    code, lines = serve(config)
    assert code == 1
    assert error_line(lines) == f"Error: S3 bucket 'no-such-bucket' does not exist (s3://no-such-bucket at {seaweedfs.endpoint})"


def test_wrong_credentials_from_the_environment(tmp_path: pathlib.Path, seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    # No keys in the file: the standard AWS chain reads them from the environment.
    config = seaweedfs.write_dockyard_config(tmp_path / "config.yml", s3_bucket, accesskey="", secretkey="")
    code, lines = serve(config, env={"AWS_ACCESS_KEY_ID": seaweedfs.access_key, "AWS_SECRET_ACCESS_KEY": "wrong"})
    assert code == 1
    assert error_line(lines).startswith(f"Error: S3 refused HeadBucket in s3://{s3_bucket} at {seaweedfs.endpoint}: 403")


async def test_health_check_of_the_bucket(seaweedfs: SeaweedFS, s3_settings: S3) -> None:
    drivers = S3Driver(s3_settings), S3Driver(seaweedfs.settings("no-such-bucket"))
    try:
        assert await StorageHealth(drivers[0]).probe() is None  # an empty rootdirectory is healthy, as in registry:2
        await drivers[0].put_content("/docker/registry/v2/repositories/a/_layers/x", b"x")
        assert await StorageHealth(drivers[0]).probe() is None
        assert await StorageHealth(drivers[1]).probe() == (
            f"S3Error: S3 bucket 'no-such-bucket' does not exist (s3://no-such-bucket at {seaweedfs.endpoint})"
        )
    finally:
        for driver in drivers:
            await driver.close()
