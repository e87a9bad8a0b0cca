"""The benchmark harness runs end to end on tiny sizes and writes a complete JSON result.

Only the shape of the result is checked: never a timing, nor a ratio.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent


def _installed(name: str) -> bool:
    return shutil.which(name) is not None or os.access(f"/usr/sbin/{name}", os.X_OK)


@pytest.mark.slow
def test_bench_runs_on_tiny_sizes(tmp_path: pathlib.Path) -> None:
    for tool in ("docker-registry", "nginx", "htpasswd", "curl"):
        if not _installed(tool):
            message = f"{tool} is not installed (scripts/test installs it)"
            pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    only = [
        "push", "chunked", "push-tmpfs", "chunked-tmpfs", "pull", "manifest", "storm", "catalog", "push-tls", "pull-tls", "storm-tls",
        "manifest-auth", "proxy",
    ]
    only += ["skopeo", "skopeo-events"] if _installed("skopeo") else []
    only += ["manifest-ldap"] if _installed("slapd") or os.environ.get("CI") else []
    # SeaweedFS comes with the test extras: CI has it, so the S3 rows are only left out locally.
    only += ["s3-push", "s3-pull", "s3-pull-redirect", "s3-catalog"] if _installed("weed") or os.environ.get("CI") else []
    result = tmp_path / "results.json"
    run = subprocess.run(
        [
            sys.executable, "-m", "bench", "--size-mib", "2", "--chunk-mib", "1", "--rounds", "1",
            "--duration", "0.5", "--concurrency", "4", "--repos", "20", "--images", "2", "--parallel", "2",
            "--load-client", "aiohttp", "--only", ",".join(only), "--json", str(result),
        ],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, f"python -m bench failed:\n{run.stdout}\n{run.stderr[-5000:]}"
    assert "| workload" in run.stdout

    document = json.loads(result.read_text())
    assert document["date"] and document["cores"] >= 1 and document["memory_mib"] > 0
    assert all(value > 0 for value in document["machine_limits"].values())
    # sha256, nginx's download and a durable write; nginx's static rate for each small request's bytes
    assert len(document["machine_limits"]) == 6

    rows = {row["workload"]: row for row in document["rows"]}
    expected = [
        "blob push, POST + one PUT", "blob push, PATCH 1 MiB chunks", "blob pull",
        "manifest GET by tag", "manifest GET by digest", "tags/list, 1 tag", "/v2/ ping", "pull storm, 32 clients x one 2 MiB blob",
        "_catalog walk, 20 repos", "tags/list walk, 20 tags", "peak PSS during", "peak RSS during",
        "cold pull through the cache", "warm pull through the cache", "8 concurrent cold pulls",
    ] + (["skopeo copy 2 3-layer images", "skopeo copy 2 3-layer images, 2 at a time, events to a 2 s receiver"] if "skopeo" in only else [])
    for prefix in expected:
        matching = [row for name, row in rows.items() if name.startswith(prefix)]
        assert matching, f"no row for {prefix!r} in {sorted(rows)}"
        for row in matching:
            for server in ("dockyard", "registry2"):
                assert row[server] > 0, f"{row['workload']}: {server} {row[server]}"
                assert len(row["samples"][server]) >= 1
            assert row["ratio"] > 0
    # req/s and p99, without and with auth (and with LDAP users)
    assert len([name for name in rows if name.startswith("manifest GET by tag")]) == (6 if "manifest-ldap" in only else 4)
    variants = {
        "blob push, POST + one PUT, 2 MiB, TLS", "blob pull, 2 MiB, TLS",
        "blob push, POST + one PUT, 2 MiB, tmpfs root", "blob push, PATCH 1 MiB chunks, 2 MiB, tmpfs root",
        "manifest GET by tag, 4 conns, aiohttp, basic auth", "manifest GET by tag, 4 conns, aiohttp, p99, basic auth",
        "peak PSS during push-tls, pull-tls", "peak PSS during manifest-auth",
        "peak RSS during push-tls, pull-tls", "peak RSS during manifest-auth",
        "8 concurrent cold pulls, upstream bytes sent / image bytes, proxy",
        "pull storm, 32 clients x one 2 MiB blob, aggregate, TLS", "pull storm, 32 clients x one 2 MiB blob, p99 time to first byte, TLS",
    }
    if "manifest-ldap" in only:
        variants |= {"manifest GET by tag, 4 conns, aiohttp, basic auth + LDAP", "peak RSS during manifest-ldap"}
    if "s3-push" in only:
        variants |= {
            "blob push, POST + one PUT, 2 MiB, S3", "blob pull, 2 MiB, S3", "blob pull, 2 MiB, S3 + redirect",
            "peak PSS during s3-push, s3-pull", "peak PSS during s3-pull-redirect",
            "peak RSS during s3-push, s3-pull", "peak RSS during s3-pull-redirect", "_catalog walk, 20 repos, n=1000, S3",
        }
    assert variants <= set(rows), sorted(variants - set(rows))
    for name in variants:
        for server in ("dockyard", "registry2"):
            assert rows[name][server] > 0, f"{name}: {server} {rows[name][server]}"


def test_bench_skips_the_s3_rows_without_seaweedfs(tmp_path: pathlib.Path) -> None:
    """Without ``weed`` on PATH the S3 rows are left out with one line saying why, not a traceback."""
    for tool in ("docker-registry", "nginx"):
        if not _installed(tool):
            message = f"{tool} is not installed (scripts/test installs it)"
            pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    path = os.pathsep.join(
        folder for folder in os.environ.get("PATH", "").split(os.pathsep) if shutil.which("weed", path=folder) is None
    )
    result = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--size-mib", "1", "--rounds", "1", "--only", "pull,s3-push,s3-pull-redirect",
         "--json", str(result)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, "PATH": path},
    )
    assert run.returncode == 0, f"python -m bench failed:\n{run.stdout}\n{run.stderr[-5000:]}"
    assert "skipping s3-push, s3-pull-redirect: weed is not installed" in run.stderr
    assert [row["workload"] for row in json.loads(result.read_text())["rows"]] == ["blob pull, 1 MiB", "peak PSS during pull", "peak RSS during pull"]
