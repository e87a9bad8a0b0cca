"""Two ``dockyard serve`` replicas on one SeaweedFS (S3) bucket share each quota's count: pushes racing
for a quota's last bytes through both, each upload started at one replica and finished at the other,
never take it over its limit, and exactly as many win as fit. The metrics of either show the use."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
from collections.abc import Callable

import httpx

from tests.ops.conftest import debug_url
from tests.ops.test_metrics import samples, value
from tests.support.registry_client import sha256
from tests.support.seaweedfs import SeaweedFS
from tests.support.server import DockyardProcess

ROUNDS = 4
PUSHES = 8
BLOB = 1000
FITS = 3


def edge_config(path: pathlib.Path, seaweedfs: SeaweedFS) -> pathlib.Path:
    path.write_text(json.dumps({
        "version": 0.1,
        "storage": {
            "s3": seaweedfs.storage_config(seaweedfs.create_bucket(), "/quotas"),
            "redirect": {"disable": True}, "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": "127.0.0.1:0", "relativeurls": True},
        "dockyard": {"quotas": [{"repositories": f"edge{round_}/*", "max_bytes": FITS * BLOB + BLOB // 2} for round_ in range(ROUNDS)]},
    }))
    return path


def push_across(first: DockyardProcess, second: DockyardProcess, name: str, data: bytes) -> int:
    """Start an upload at one replica and finish it (with all the bytes) at the other."""
    with httpx.Client(base_url=first.url, timeout=60) as starting, httpx.Client(base_url=second.url, timeout=60) as finishing:
        started = starting.post(f"/v2/{name}/blobs/uploads/")
        assert started.status_code == 202, started.text
        finished = finishing.put(f"{started.headers['Location']}?digest={sha256(data)}", content=data)
        if finished.status_code == 403:
            assert f"({FITS * BLOB} / {FITS * BLOB + BLOB // 2} bytes)" in finished.json()["errors"][0]["message"]
        return finished.status_code


def test_two_replicas_on_s3_racing_at_a_quota_s_edge(
    start_server: Callable[..., DockyardProcess], seaweedfs: SeaweedFS, tmp_path: pathlib.Path,
) -> None:
    config = edge_config(tmp_path / "config.yml", seaweedfs)
    replicas = [
        start_server("--config", str(config), root="a"),
        start_server("--config", str(config), "--debug-addr", "127.0.0.1:0", "--metrics", root="b"),
    ]
    with concurrent.futures.ThreadPoolExecutor(PUSHES) as pool:
        for round_ in range(ROUNDS):
            pushes = [
                pool.submit(push_across, replicas[number % 2], replicas[1 - number % 2], f"edge{round_}/r{number}",
                            (f"{round_}-{number}-".encode() * BLOB)[:BLOB])
                for number in range(PUSHES)
            ]
            statuses = sorted(push.result() for push in pushes)
            assert statuses == [201] * FITS + [403] * (PUSHES - FITS), (round_, statuses)
    found = samples(f"{debug_url(replicas[1])}/metrics")
    for round_ in range(ROUNDS):
        assert value(found, "dockyard_quota_used_bytes", repositories=f"edge{round_}/*") == FITS * BLOB
        assert value(found, "dockyard_quota_limit_bytes", repositories=f"edge{round_}/*") == FITS * BLOB + BLOB // 2
