"""Closed-loop HTTP load on one URL: ``wrk`` when installed, else an aiohttp client on uvloop.

wrk (C, one thread here) drives a server much harder per client CPU second than
Python can, which matters when client and server share a small machine.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

import aiohttp
import uvloop

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    p99_ms: float


def available_client(choice: str) -> str:
    """``wrk`` or ``aiohttp`` for ``choice`` ``auto``/``wrk``/``aiohttp``."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "aiohttp"
    if choice == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (apt-get install wrk, or use bench/run)")
    return choice


def run_load(client: str, url: str, headers: dict[str, str], concurrency: int, duration: float) -> LoadResult:
    if client == "wrk":
        return _wrk(url, headers, concurrency, duration)
    return uvloop.run(_aiohttp(url, headers, concurrency, duration))


def _wrk(url: str, headers: dict[str, str], concurrency: int, duration: float) -> LoadResult:
    seconds = max(1, math.ceil(duration))  # wrk takes whole seconds only
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        raise RuntimeError(f"wrk: {match.group(1)} error responses from {url}\n{output}")
    if (match := re.search(r"Socket errors: .*timeout (\d+)", output)) and int(match.group(1)):
        raise RuntimeError(f"wrk: {match.group(1)} timeouts on {url}\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if rate is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return LoadResult(float(rate.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)])


async def _aiohttp(url: str, headers: dict[str, str], concurrency: int, duration: float) -> LoadResult:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=False)  # loopback load: no need to verify a certificate
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.perf_counter()
        deadline = started + duration

        async def worker() -> None:
            while (start := time.perf_counter()) < deadline:
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {url}: {response.status}")
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
    return LoadResult(len(latencies) / elapsed, p99 * 1e3)
