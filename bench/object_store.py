"""Blobs in an object store (issue 20): four figures, side by side in one run against the
same loopback S3 server (moto's standalone server, started here; or ``--endpoint``).

1. ``store_content`` of a fresh 256 MiB blob to ``s3://`` ÷ a plain ``obstore.put`` of
   the same bytes to the same server (the same library and the same single PUT, but no
   hashing, no condition, no catalog). Target <= 1.3.
2. ``store_content`` of bytes already stored (a dedup hit) ÷ ``hashlib.sha256`` of the
   same bytes alone. Target <= 1.3.
3. Peak memory of ``store_stream`` of a 1 GiB stream (generated on the fly) to ``s3://``,
   as the growth of the peak RSS (``VmHWM``: unlike ``ru_maxrss``, not carried over from
   the parent across ``exec``) in a child process after it imported ``core`` and
   connected. Target <= 64 MiB.
4. The 6-wide job (``bench/object_store_defs.py``) on the multiprocess executor:
   ``VersionedIOManager`` on the catalog database + ``s3://`` ÷ dagster-aws's
   ``S3PickleIOManager`` on the same server. Target <= 1.15. Needs ``dagster-aws`` (in
   the dev extra).

Figures 1 and 2 interleave their sides over ``--rounds`` rounds, figure 4 over
``--mp-rounds`` (5: a job's time varies more), the order alternating, after an
unrecorded warm-up, and compare medians. The catalog database is a DuckDB file
in a temporary directory, or ``--database-url`` (Postgres: a fresh schema, dropped at the
end). Every object is deleted after its round (moto keeps them in memory).

Run from the project root::

    .venv/bin/python bench/object_store.py
    .venv/bin/python bench/object_store.py --json \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Output as every benchmark here (``bench/figures.py``); exit status 0 whatever the figures.
"""

import argparse
import contextlib
import gc
import hashlib
import importlib
import io
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from figures import (
    Figure,
    catalog_url,
    child_command,
    figure,
    finish,
    format_figure,
    interleave,
    redact,
    work_directory,
)

import core

REPO_ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
STORE_TARGET = 1.3
DEDUP_TARGET = 1.3
MEMORY_TARGET_MIB = 64.0
JOB_TARGET = 1.15
REGION = "us-east-1"


# --- the server -------------------------------------------------------------------------


@contextlib.contextmanager
def loopback_s3(endpoint: str | None, log: Path) -> Iterator[str]:
    """``endpoint``, or a moto server on a free loopback port for the block; the standard
    AWS environment points at it (dummy credentials unless some are set)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    if endpoint is not None:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        yield endpoint
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("ab") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"moto server at {endpoint} did not start") from None
                time.sleep(0.1)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        yield endpoint
    finally:
        server.terminate()
        server.wait(30)


def new_bucket() -> str:
    import boto3

    name = f"bench-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return name


def plain_store(bucket: str):  # type: ignore[no-untyped-def]
    from obstore.store import S3Store

    return S3Store(bucket, client_options={"allow_http": True})


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def raw_line(label: str, values: list[float]) -> str:
    return (
        f"  raw {label} median: {statistics.median(values):.3f} s over {len(values)} rounds: "
        + ", ".join(f"{v:.3f}" for v in values)
    )


# --- figures 1 and 2 ----------------------------------------------------------------------


def measure_store_and_dedup(
    database_url: str, rounds: int, size: int
) -> tuple[list[Figure], list[str]]:
    import obstore

    bucket = new_bucket()
    plain = plain_store(bucket)
    with core.connect(database_url, f"s3://{bucket}/blobs") as catalog:
        stored: list[str] = []

        def candidate() -> float:
            data = os.urandom(size)
            seconds = timed(lambda: stored.append(catalog.cas.store_content(data)))
            forget(catalog, stored.pop(), bucket)
            return seconds

        def baseline() -> float:
            data = os.urandom(size)
            key = f"plain/{uuid.uuid4().hex}"
            seconds = timed(lambda: obstore.put(plain, key, data, use_multipart=False))
            obstore.delete(plain, key)
            return seconds

        store_times, plain_times = interleave(rounds, candidate, baseline)
        data = os.urandom(size)
        kept = catalog.cas.store_content(data)
        dedup_times, hash_times = interleave(
            rounds,
            lambda: timed(lambda: catalog.cas.store_content(data)),
            lambda: timed(lambda: hashlib.sha256(data).hexdigest()),
        )
        forget(catalog, kept, bucket)
    store_ratio = statistics.median(store_times) / statistics.median(plain_times)
    dedup_ratio = statistics.median(dedup_times) / statistics.median(hash_times)
    figures = [
        figure(
            f"s3 store_content {size // MIB} MiB / obstore.put of the same bytes",
            store_ratio,
            STORE_TARGET,
            "ratio",
        ),
        figure(
            f"s3 dedup hit {size // MIB} MiB / sha256 alone", dedup_ratio, DEDUP_TARGET, "ratio"
        ),
    ]
    raw = [
        raw_line("store_content", store_times),
        raw_line("obstore.put", plain_times),
        raw_line("dedup store_content", dedup_times),
        raw_line("sha256", hash_times),
    ]
    return figures, raw


def forget(catalog: core.Services, cas_id: str, bucket: str) -> None:
    """Delete a measured blob's object (moto holds objects in memory); its row stays."""
    import obstore

    digest = cas_id.split(":", 1)[1]
    obstore.delete(plain_store(bucket), f"blobs/sha256/{digest[:2]}/{digest[2:4]}/{digest}")


# --- figure 3 -----------------------------------------------------------------------------


class Generated(io.RawIOBase):
    """``size`` bytes made on the fly, 1 MiB at a time (each chunk different)."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = bytearray(os.urandom(MIB))
        self._count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        self._count += 1
        self._block[:8] = self._count.to_bytes(8, "little")
        piece = bytes(self._block[: min(MIB, self._left, size if size > 0 else MIB)])
        self._left -= len(piece)
        return piece


def peak_rss_kib() -> int:
    """This process image's peak RSS (``VmHWM``), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux


def stream_child(database_url: str, blob_root: str, size: int) -> None:
    """In a fresh process: ``store_stream`` ``size`` bytes; print the peak RSS growth."""
    with core.connect(database_url, blob_root) as catalog:
        catalog.cas.store_content(b"warm up")
        gc.collect()
        before = peak_rss_kib()
        started = time.perf_counter()
        cas_id = catalog.cas.store_stream(Generated(size))
        seconds = time.perf_counter() - started
        after = peak_rss_kib()
        assert catalog.cas.get_blob(cas_id).size == size  # type: ignore[union-attr]
    print(json.dumps({"growth_kib": after - before, "seconds": seconds, "cas_id": cas_id}))


def measure_stream(database_url: str, size: int) -> tuple[Figure, list[str]]:
    bucket = new_bucket()
    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            "--stream-child",
            database_url,
            f"s3://{bucket}/blobs",
            str(size),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"store_stream child failed:\n{completed.stderr[-4000:]}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    growth = report["growth_kib"] / 1024
    fig = figure(
        f"s3 store_stream {size / (1 << 30):g} GiB peak RSS growth",
        growth,
        MEMORY_TARGET_MIB,
        "MiB",
    )
    rate = size / MIB / report["seconds"]
    return fig, [f"  raw store_stream: {report['seconds']:.1f} s ({rate:.0f} MiB/s)"]


# --- figure 4 -----------------------------------------------------------------------------


def mp_child(dagster_home: str) -> None:
    """In a fresh process: run the 6-wide job once; print its wall time as JSON."""
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(REPO_ROOT))
    defs = importlib.import_module("bench.object_store_defs")
    job = dg.reconstructable(defs.parallel_job)
    job.get_definition()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    stats_module = importlib.import_module("bench.dagster_overhead_defs")
    with (
        dg.instance_for_test(temp_dir=dagster_home) as instance,
        stats_module.step_stats(dagster_home) as stats,
    ):
        started = time.perf_counter()
        result = dg.execute_job(job, instance=instance, run_config=quiet)
        seconds = time.perf_counter() - started
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    loaded = sum(step["catalog_loaded"] for step in stats)
    report = {"seconds": seconds, "success": result.success, "steps": len(steps)}
    print(json.dumps({**report, "recorded_steps": len(stats), "catalog_loaded": loaded}))


def run_mp(kind: str, env: dict[str, str], home: Path) -> float:
    completed = subprocess.run(
        child_command(__file__, f"mp_child({str(home)!r})"),
        env={**env, "BENCH_S3_IO_MANAGER": kind},
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(completed.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        report = None
    if (
        completed.returncode != 0
        or not report
        or not report["success"]
        or report["steps"] != 7
        or report["recorded_steps"] != 7
        or (kind == "s3pickle" and report["catalog_loaded"])  # the baseline must not pay it
    ):
        raise RuntimeError(f"{kind} run failed: {report}\n{completed.stderr[-4000:]}")
    return float(report["seconds"])


def measure_job(database_url: str, rounds: int, work: Path) -> tuple[list[Figure], list[str]]:
    bucket = new_bucket()
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_BLOB_ROOT": f"s3://{bucket}/catalog",
        "BENCH_S3_BUCKET": bucket,
        "BENCH_S3_PREFIX": "dagster",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONWARNINGS": "ignore",
    }
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    versioned, pickled = interleave(
        rounds, lambda: run_mp("versioned", env, home), lambda: run_mp("s3pickle", env, home)
    )
    ratio = statistics.median(versioned) / statistics.median(pickled)
    fig = figure(
        "s3 multiprocess 6-wide job, VersionedIOManager / S3PickleIOManager",
        ratio,
        JOB_TARGET,
        "ratio",
    )
    return [fig], [
        raw_line("VersionedIOManager", versioned),
        raw_line("S3PickleIOManager", pickled),
    ]


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="parent of the temporary work directory")
    parser.add_argument("--database-url", help="catalog database (default: a DuckDB file)")
    parser.add_argument("--endpoint", help="an S3-compatible server (default: start moto)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mp-rounds", type=int, default=5, help="rounds of the 6-wide job")
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--stream-mib", type=int, default=1024)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--stream-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_child:
        stream_child(args.stream_child[0], args.stream_child[1], int(args.stream_child[2]))
        return 0
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    figures: list[Figure] = []
    with (
        work_directory("bench-object-store-", args.dir) as work,
        loopback_s3(args.endpoint, work / "moto.log") as endpoint,
        catalog_url(args.database_url, work) as database_url,
    ):
        print(f"object store benchmark: {endpoint}, catalog {redact(database_url)}", file=out)
        measured = [
            lambda: measure_stream(database_url, args.stream_mib * MIB),
            lambda: measure_store_and_dedup(database_url, args.rounds, args.size_mib * MIB),
            lambda: measure_job(database_url, args.mp_rounds, work),
        ]
        for measure in measured:
            result, raw = measure()
            for fig in result if isinstance(result, list) else [result]:
                figures.append(fig)
                print(format_figure(fig), file=out)
            print("\n".join(raw), file=out, flush=True)
    return finish(figures, started, out, args.json)


if __name__ == "__main__":
    sys.exit(main())
