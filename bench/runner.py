"""The benchmark run: options, servers up, machine limits, workloads A B A B, report."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import pathlib
import signal
import sys
import tempfile
import time
from collections.abc import Sequence

from bench import layout, machine, s3, secrets
from bench.client import IMAGE_CONFIG, image_manifest
from bench.load import available_client
from bench.memory import PeakSampler
from bench.report import Row, complete, table, write_json
from bench.servers import Dockyard, Registry2, Server, SlowReceiver, Upstream, Variant
from bench.workloads import MEMORY_WORKLOADS, WORKLOADS, Catalog, Settings, Workload, random_file, seeding
from tests.support.ldap import ldap_settings, slapd_binary, start_slapd

DEFAULT_JSON = pathlib.Path(__file__).resolve().parent / "results.json"
KEYS = [workload.key for workload in WORKLOADS]
TMPFS = "/dev/shm"  # the tmpfs-root rows' servers keep their roots here


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Dockyard against registry:2 on this machine.")
    parser.add_argument("--size-mib", type=int, default=1024, help="blob size for push and pull (default 1024)")
    parser.add_argument("--chunk-mib", type=int, default=16, help="PATCH chunk size (default 16)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload and server; medians reported (default 5)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of manifest GET load per round (default 10)")
    parser.add_argument("--concurrency", type=int, default=64, help="connections for manifest GET (default 64)")
    parser.add_argument("--repos", type=int, default=10_000, help="repositories in _catalog and tags in tags/list (default 10000)")
    parser.add_argument("--images", type=int, default=50, help="images pushed with skopeo per round (default 50)")
    parser.add_argument("--parallel", type=int, default=8, help="concurrent skopeo copies (default 8)")
    parser.add_argument("--only", default=",".join(KEYS), help=f"comma-separated workloads among {','.join(KEYS)} (default all)")
    parser.add_argument("--workers", type=int, default=0, help="dockyard --workers (default 0, its default: one per usable core)")
    parser.add_argument("--load-client", choices=("auto", "wrk", "aiohttp"), default="auto",
                        help="manifest GET load generator: wrk when installed, else aiohttp (default auto)")
    parser.add_argument("--json", type=pathlib.Path, default=DEFAULT_JSON, help=f"where to write results (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    args.only = [key.strip() for key in args.only.split(",") if key.strip()]
    if unknown := set(args.only) - set(KEYS):
        parser.error(f"unknown workload(s) {', '.join(sorted(unknown))}: choose among {', '.join(KEYS)}")
    if min(args.size_mib, args.chunk_mib, args.rounds, args.concurrency, args.repos, args.images, args.parallel) < 1 or args.workers < 0:
        parser.error("sizes and counts must be at least 1 (--workers at least 0)")
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _described(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _run_workload(workload: Workload, servers: list[Server], rounds: int, rows: list[Row]) -> None:
    """``workload``'s rounds, A B A B, its rows appended to ``rows`` before the first round; a round
    that raises is recorded as that server's failure and the others go on."""
    _log(f"{workload.key}:")
    started = time.perf_counter()
    suffix = f", {workload.variant.label}" if workload.variant.label else ""
    mine = [Row(metric.label + suffix, metric.unit, metric.higher_is_better) for metric in workload.metrics]
    for server in servers:
        workload.prepare(server)
    rows += mine
    for number in range(rounds):
        for server in servers:  # alternately: A B A B ...
            try:
                values = workload.measure(server, number)
            except Exception as error:  # e.g. a 500 from one server: its other rounds still count
                failure = f"round {number + 1}: {_described(error)}"
                _log(f"  [{workload.key}] {server.name} FAILED {failure}")
                for row in mine:
                    row.failures[server.name].append(failure)
                continue
            for row, value in zip(mine, values, strict=True):
                row.samples[server.name].append(value)
            shown = ", ".join(f"{value:.4g} {row.unit}" for row, value in zip(mine, values, strict=True))
            _log(f"  [{workload.key}] round {number + 1}/{rounds} {server.name}: {shown}")
    _log(f"  ({time.perf_counter() - started:.0f} s)")


def _measure(workloads: list[Workload], servers: list[Server], rounds: int, rows: list[Row], problems: list[str]) -> None:
    """Every workload, A B A B, into ``rows``; the peak PSS and RSS of each server's process tree over
    the workloads that push and pull. A workload that cannot be prepared is one of ``problems``."""

    def run_each(chosen: list[Workload]) -> None:
        for workload in chosen:
            try:
                _run_workload(workload, servers, rounds, rows)
            except Exception as error:
                problems.append(f"{workload.key}: {_described(error)}")
                _log(f"  [{workload.key}] FAILED: {_described(error)}")

    sampled = [workload for workload in workloads if workload.key in MEMORY_WORKLOADS]
    with PeakSampler({server.name: server.pid for server in servers}) as sampler:
        run_each(sampled)
    run_each([workload for workload in workloads if workload not in sampled])
    if sampled:
        during = ", ".join(workload.key for workload in sampled)
        for label, peaks in (("PSS", sampler.peak_pss_mib()), ("RSS", sampler.peak_rss_mib())):
            memory = Row(f"peak {label} during {during}", "MiB", False)
            for name, peak in peaks.items():
                memory.samples[name].append(peak)
            rows.append(memory)


def _by_variant(workloads: list[Workload]) -> dict[Variant, list[Workload]]:
    """The workloads grouped by the servers they need, in their order (plain HTTP first)."""
    groups: dict[Variant, list[Workload]] = {}
    for workload in workloads:
        groups.setdefault(workload.variant, []).append(workload)
    return groups


def _measure_variant(variant: Variant, workloads: list[Workload], scratch: pathlib.Path, args: argparse.Namespace,
                     shared: secrets.Secrets | None, rows: list[Row], problems: list[str]) -> None:
    """Start a Dockyard and a registry:2 with ``variant``'s settings (and for S3, one SeaweedFS with
    a bucket for each; for proxy, one upstream both mirror), measure ``workloads`` on them into
    ``rows``, stop them."""
    folder = scratch / (variant.label.replace(" + ", "-").replace(" ", "-").lower() if variant.label else "")
    with contextlib.ExitStack() as stack:
        if variant.tmpfs:
            folder = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-bench-", dir=TMPFS)))
        buckets: dict[str, s3.Bucket | None] = {"dockyard": None, "registry2": None}
        if variant.s3:
            seaweedfs = stack.enter_context(s3.start(folder / "seaweedfs"))
            _log(f"{variant.label}: SeaweedFS S3 at {seaweedfs.endpoint} (pid {seaweedfs.process and seaweedfs.process.pid})")
            buckets = {name: s3.Bucket.create(seaweedfs, name) for name in buckets}
        upstream = None
        if variant.proxy:
            assert shared is not None
            upstream = Upstream(folder / "upstream-root", shared)
            stack.enter_context(upstream)
            upstream.start()
            _log(f"{variant.label}: upstream at {upstream.url} (pid {upstream.pid}), asking for Bearer tokens")
        ldap = None
        if variant.ldap:
            slapd = start_slapd(folder / "slapd")
            stack.callback(slapd.stop)
            slapd.add_person(secrets.USER, secrets.PASSWORD)
            ldap = ldap_settings(slapd)
            _log(f"{variant.label}: slapd at {slapd.url} (pid {slapd.process and slapd.process.pid}), Dockyard's user there")
        events_url = stack.enter_context(SlowReceiver()).url if variant.events else ""
        dockyard = stack.enter_context(Dockyard(
            folder / "dockyard-root", args.workers, variant, shared, buckets["dockyard"], upstream, events_url=events_url, ldap=ldap,
        ))
        registry2 = stack.enter_context(Registry2(folder / "registry2-root", variant, shared, buckets["registry2"], upstream, events_url))
        servers: list[Server] = [dockyard, registry2]
        if any(isinstance(workload, Catalog) for workload in workloads):
            _log(f"seeding {args.repos} repositories and {args.repos} tags in both {'buckets' if variant.s3 else 'roots'}")
            for server in servers:
                with seeding(server) as write:
                    layout.seed(write, args.repos)
        dockyard.start()
        registry2.start()
        _log(f"{variant.label or 'plain HTTP'}: dockyard at {dockyard.url} (pid {dockyard.pid}), "
             f"registry:2 at {registry2.url} (pid {registry2.pid})")
        _measure(workloads, servers, args.rounds, rows, problems)


def _without_missing_tools(groups: dict[Variant, list[Workload]]) -> dict[Variant, list[Workload]]:
    """``groups`` without the S3 workloads when SeaweedFS is not installed, nor the LDAP ones without slapd (said once, on stderr)."""
    missing = {"s3": None if s3.available() else s3.MISSING, "ldap": None if slapd_binary() else "slapd is not installed (apt-get install slapd)"}
    kept = dict(groups)
    for kind, reason in missing.items():
        skipped = [workload.key for variant, workloads in kept.items() if getattr(variant, kind) for workload in workloads]
        if skipped and reason is not None:
            _log(f"skipping {', '.join(skipped)}: {reason}")
            kept = {variant: workloads for variant, workloads in kept.items() if not getattr(variant, kind)}
    return kept


def _notes(args: argparse.Namespace, cores: int) -> list[str]:
    notes = [
        "both servers: filesystem storage in a fresh temporary root, deletes enabled, "
        "warning-level logs and no access log",
        "rows marked S3: both servers on one SeaweedFS (weed mini on 127.0.0.1, started for those rows), a bucket each, "
        "registry:2's default S3 settings (10 MiB parts); without redirect the server streams the blob from S3, "
        "with redirect it answers 307 to a presigned SeaweedFS URL and the time includes following it",
        "plain HTTP without auth unless a row says TLS (both servers: one certificate from a local CA) "
        "or basic auth (both servers: one htpasswd file, bcrypt from htpasswd -B)",
        f"dockyard --workers {args.workers or f'0 (its default: {cores}, one per usable core)'}; registry:2 uses every core (GOMAXPROCS default)",
        "pushed blobs and their repository are deleted from the root or bucket after each push round",
        "peak PSS and peak RSS are each summed over the server's process and its children (sampled every 50 ms); "
        "PSS counts a page shared by forked workers once in all, RSS once per process (so it overstates)",
        "rows marked proxy: both servers are pull-through caches (registry:2's proxy section) of one Dockyard upstream "
        "with --token-auth on 127.0.0.1; every cold pull is of an image of new random bytes pushed to the upstream just before; "
        "a pull is the manifest by tag, the config and the layer, read and dropped; the warm pull comes 5 s after the cold one; "
        "upstream bytes are those the upstream's access log counts for the GETs of that image's repository (headers included)",
        "rows marked events: both servers send registry:2's events (one endpoint, timeout 5s) to one receiver on 127.0.0.1 "
        "that answers each after 2 s; compare with the same row without events",
        f"rows marked tmpfs root: both servers' roots on a tmpfs ({TMPFS}), so the disk takes no part; compare with the same row without",
        "rows marked LDAP: Dockyard's user is in a slapd on 127.0.0.1 (started for those rows; sign-ins cached for dockyard.ldap.cache_ttl), "
        "registry:2, which has no LDAP, keeps the htpasswd file: compare Dockyard's column with the basic auth row's",
    ]
    if cores <= 2:
        notes.append(f"only {cores} cores: the load generator and clients compete with the server for CPU")
    return notes


def run(args: argparse.Namespace) -> int:
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    description = machine.describe()
    load_client = available_client(args.load_client)
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as temporary:
        scratch = pathlib.Path(temporary)
        _log(f"writing a {args.size_mib} MiB random blob in {scratch}")
        blob = scratch / "static" / "blob.bin"
        digest = random_file(blob, args.size_mib)

        _log("measuring the machine: sha256, nginx loopback download, durable disk write")
        limits = {
            "python sha256 MiB/s": machine.sha256_mib_s(),
            f"nginx loopback download {args.size_mib} MiB, MiB/s": machine.nginx_download_mib_s(blob, scratch, args.rounds),
            f"disk write + fsync {args.size_mib} MiB, MiB/s": machine.durable_write_mib_s(scratch, args.size_mib, args.rounds),
        }

        if {"manifest", "manifest-auth"} & set(args.only):
            _log("measuring nginx's static rate for the small requests' bytes")
            small = machine.nginx_small_rates(
                _small_answers(), scratch, load_client, args.concurrency, args.duration, args.rounds,
            )
            limits |= {f"nginx static GET of {name}'s bytes, {args.concurrency} conns, {load_client}, req/s": rate for name, rate in small.items()}

        settings = Settings(
            scratch=scratch, blob=blob, digest=digest, size_mib=args.size_mib, chunk_mib=args.chunk_mib,
            duration=args.duration, concurrency=args.concurrency, repos=args.repos, images=args.images,
            parallel=args.parallel, load_client=load_client,
        )
        groups = _without_missing_tools(_by_variant([kind(settings) for kind in WORKLOADS if kind.key in args.only]))
        shared = secrets.make(scratch / "secrets") if any(variant.tls or variant.auth or variant.proxy for variant in groups) else None
        rows: list[Row] = []
        problems: list[str] = []  # row groups or workloads that could not run at all
        try:
            for variant, workloads in groups.items():
                try:
                    _measure_variant(variant, workloads, scratch, args, shared, rows, problems)
                except Exception as error:  # e.g. a server that would not start: the other groups still run
                    keys = ", ".join(workload.key for workload in workloads)
                    problems.append(f"{variant.label or 'plain HTTP'} group ({keys}): {_described(error)}")
                    _log(f"FAILED {problems[-1]}")
        except KeyboardInterrupt:
            problems.append("interrupted: the rows after the last one shown were not measured")
            raise
        finally:  # what was measured is always reported, even when interrupted
            notes = _notes(args, description.cores)
            print(table(rows, description, limits, problems), flush=True)
            for note in notes:
                print(f"note: {note}")
            settings_json = {key: value for key, value in vars(args).items() if key != "json"} | {"load_client": load_client}
            write_json(args.json, rows, description, limits, settings_json, started, notes, problems)
            print(f"results written to {args.json}", flush=True)
        _log("removing the temporary files (minutes for large --repos on a busy disk)")
    return 0 if complete(rows, problems) else 1


def _small_answers() -> dict[str, bytes]:
    """What the small-request rows are answered, as files for nginx: the manifest (by tag or digest,
    of the same size as the one pushed there), the tag list and the version check."""
    layer = "sha256:" + hashlib.sha256(os.urandom(1024)).hexdigest()
    manifest = image_manifest("sha256:" + hashlib.sha256(IMAGE_CONFIG).hexdigest(), layer, 1024)
    return {
        "manifest": manifest,
        "tags-list": json.dumps({"name": "bench/manifest", "tags": ["latest"]}).encode(),
        "v2-ping": b"{}",
    }


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)  # unwind, so that every server is stopped
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    try:
        return run(args)
    except KeyboardInterrupt:
        _log("interrupted: servers stopped, temporary files removed")
        return 130
