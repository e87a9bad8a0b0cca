"""The machine: what it is, and the limits it puts on any registry (hashing, loopback file serving)."""

from __future__ import annotations

import hashlib
import os
import pathlib
import platform
import statistics
import time
from dataclasses import dataclass

from bench.client import curl_download
from bench.load import run_load
from bench.servers import Nginx
from dockyard.storage.linux_files import start_writeback


@dataclass(frozen=True)
class Machine:
    cores: int
    memory_mib: int
    cpu: str
    python: str
    kernel: str


def describe() -> Machine:
    model = ""
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return Machine(os.cpu_count() or 1, memory_kib // 1024, model, platform.python_version(), platform.release())


def sha256_mib_s(seconds: float = 1.0) -> float:
    """hashlib's sha256 over a 64 MiB buffer, repeated for about ``seconds``."""
    data = os.urandom(64 << 20)
    hashed, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or not hashed:
        hashlib.sha256(data).digest()
        hashed += 64
    return hashed / (time.perf_counter() - start)


def nginx_download_mib_s(blob: pathlib.Path, scratch: pathlib.Path, rounds: int) -> float:
    """Median MiB/s of downloading ``blob`` from nginx over loopback with the benchmark's download client."""
    size_mib = blob.stat().st_size / (1 << 20)
    speeds = []
    with Nginx(blob.parent, scratch) as nginx:
        nginx.start()
        url = f"{nginx.url}/{blob.name}"
        curl_download(url)  # warm the page cache
        for _ in range(rounds):
            speeds.append(size_mib / curl_download(url)[2])
    return statistics.median(speeds)


def nginx_small_rates(files: dict[str, bytes], scratch: pathlib.Path, load_client: str, concurrency: int, duration: float,
                      rounds: int) -> dict[str, float]:
    """Median req/s of GETting each of ``files`` (name: bytes) from nginx as a static file, under the
    small-request rows' load: the loopback limit for answers of those sizes."""
    static = scratch / "small-files"
    static.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (static / name).write_bytes(content)
    rates: dict[str, list[float]] = {name: [] for name in files}
    with Nginx(static, scratch) as nginx:
        nginx.start()
        for _ in range(rounds):
            for name in files:
                rates[name].append(run_load(load_client, f"{nginx.url}/{name}", {}, concurrency, duration).requests_per_s)
    return {name: statistics.median(values) for name, values in rates.items()}


def durable_write_mib_s(scratch: pathlib.Path, size_mib: int, rounds: int) -> float:
    """Median MiB/s of writing ``size_mib`` to a new file beside the servers' roots, and fsyncing it.

    Each 4 MiB block is queued for write-back as it is written, as Dockyard's
    uploads do, so this is what the disk can take, not what a write-then-fsync costs.
    """
    block = os.urandom(4 << 20)
    path = scratch / "durable-write.bin"
    speeds = []
    for _ in range(rounds):
        start = time.perf_counter()
        with open(path, "wb", buffering=0) as file:
            for index in range(max(size_mib // 4, 1)):
                file.write(block)
                start_writeback(file.fileno(), index * len(block), len(block))
            os.fsync(file.fileno())
        speeds.append(max(size_mib, 4) / (time.perf_counter() - start))
        path.unlink()
    return statistics.median(speeds)
