"""CAS throughput and memory benchmark for ``catalog.cas``.

Measures three figures against targets from the performance issue:

1. ``store_content`` of a fresh 256 MiB blob, as a ratio to a baseline measured in the
   same run on the same bytes: ``hashlib.sha256`` plus writing the bytes to a new file in
   the same directory tree and ``os.fsync``. Target <= 1.3.
2. ``store_content`` of bytes that are already stored (a dedup hit), as a ratio to
   ``hashlib.sha256`` of the same bytes alone. Target <= 1.2.
3. Peak memory of ``store_stream`` on a 1 GiB stream generated on the fly, measured in a
   child process as the growth of ``ru_maxrss`` over the value recorded after importing
   ``core`` and connecting. Target <= 64 MiB.

Baseline and candidate are interleaved over several rounds (their order alternating) and
the medians are compared (after one unrecorded warm-up round). Every store gets fresh
random content, so only the dedup figure is a dedup hit. The files of the previous round
are deleted right before each write, so that both sides write into equally warm memory.

The catalog is the embedded default (a DuckDB file) with its blob root in a temporary
directory (under ``--dir`` if given, else the system temp dir), removed at the end.
``--database-url`` points the catalog at another database (Postgres: a fresh schema,
dropped at the end); the blobs still go to the temporary directory.

Run from the project root::

    .venv/bin/python bench/cas_throughput.py
    .venv/bin/python bench/cas_throughput.py --json
    .venv/bin/python bench/cas_throughput.py \\
        --database-url 'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench_x'

Output: one line per figure, ``<figure name>: <value> (target <= X) OK|MISS``, followed by
indented ``raw`` lines with the medians. With ``--json`` the figures are printed to
stdout as a JSON list of ``{"name", "value", "target", "unit", "ok"}`` objects and the
human-readable report goes to stderr. The exit status is 0 whatever the figures are.
"""

import argparse
import gc
import hashlib
import io
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from figures import (
    Figure,
    add_catalog_arguments,
    catalog_url,
    figure,
    finish,
    format_figure,
    redact,
    work_directory,
)

import core

MIB = 1 << 20
STORE_TARGET = 1.3
DEDUP_TARGET = 1.2
MEMORY_TARGET_MIB = 64.0


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes (wall clock)."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def fresh_timed(previous: list[Path], write: Callable[[], Path]) -> float:
    """Seconds ``write`` takes, after deleting the file(s) the previous one wrote.

    The deletion comes right before the write, and earlier writes are flushed first: on a
    VM a file's page cache lands on freed pages that are either still hot or have been
    handed back to the host (and fault in slowly), depending on how long ago they were
    freed, so both sides get the same treatment. The written file joins ``previous``.
    """
    for path in previous:
        path.unlink()
    previous.clear()
    os.sync()
    start = time.perf_counter()
    path = write()
    seconds = time.perf_counter() - start
    previous.append(path)
    return seconds


def blob_path(blob_root: Path, cas_id: str) -> Path:
    """Where the blob store keeps ``cas_id`` (``<root>/sha256/ab/cd/<hex>``)."""
    algorithm, digest = cas_id.split(":", 1)
    return blob_root / algorithm / digest[:2] / digest[2:4] / digest


def baseline_store(data: bytes, directory: Path) -> Path:
    """What storing bytes fundamentally costs: hash them, write them, fsync the file."""
    hashlib.sha256(data).hexdigest()
    path = directory / f"baseline-{uuid.uuid4().hex}"
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def run_pair(
    first: Callable[[], float], second: Callable[[], float], *, swap: bool
) -> tuple[float, float]:
    """Run both measurements once, ``second`` first when ``swap``; return (first, second)."""
    if swap:
        later = second()
        return first(), later
    earlier = first()
    return earlier, second()


def interleave(
    rounds: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Run both measurements ``rounds`` times, alternating which goes first."""
    pairs = [run_pair(first, second, swap=index % 2 == 1) for index in range(rounds)]
    return [a for a, _ in pairs], [b for _, b in pairs]


class PatternStream(io.RawIOBase):
    """``size`` bytes made on the fly from one random 1 MiB block, each block stamped
    with its index so no two blocks are equal; holds 1 MiB whatever ``size`` is."""

    def __init__(self, size: int, block_size: int = MIB) -> None:
        super().__init__()
        self._block = os.urandom(block_size)
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), self._size - self._position)
        block_size = len(self._block)
        done = 0
        while done < count:
            offset = self._position % block_size
            take = min(count - done, block_size - offset)
            view[done : done + take] = self._block[offset : offset + take]
            if offset == 0 and take >= 8:
                view[done : done + 8] = struct.pack("<Q", self._position // block_size)
            done += take
            self._position += take
        return count


def vm_hwm_kib() -> int | None:
    """This process image's own peak RSS (``VmHWM``, Linux only), in KiB.

    Unlike ``ru_maxrss`` it starts afresh at ``exec``: a child's ``ru_maxrss`` starts at
    its parent's peak, so it is only trustworthy when the parent was smaller.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def memory_child(database_url: str, blob_root: str, stream_mib: int) -> None:
    """In a fresh process: peak RSS growth of ``store_stream`` over the connected baseline."""
    with core.connect(database_url, blob_root) as catalog:
        stream = PatternStream(stream_mib * MIB)
        gc.collect()
        baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        baseline_hwm_kib = vm_hwm_kib()
        start = time.perf_counter()
        cas_id = catalog.cas.store_stream(stream)
        seconds = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_hwm_kib = vm_hwm_kib()
        size = catalog.cas.get_blob(cas_id).size  # type: ignore[union-attr]
    json.dump(
        {
            "baseline_kib": baseline_kib,
            "peak_kib": peak_kib,
            "baseline_hwm_kib": baseline_hwm_kib,
            "peak_hwm_kib": peak_hwm_kib,
            "seconds": seconds,
            "size": size,
            "cas_id": cas_id,
        },
        sys.stdout,
    )


def measure_memory(database_url: str, blob_root: Path, stream_mib: int) -> dict[str, Any]:
    """Run ``memory_child`` in a new interpreter. Call it before this process grows: the
    child's ``ru_maxrss`` starts at this process's peak RSS (Linux carries it over exec)."""
    completed = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--memory-child",
            "--database-url",
            database_url,
            "--blob-root",
            str(blob_root),
            "--stream-mib",
            str(stream_mib),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    if result["size"] != stream_mib * MIB:
        raise RuntimeError(f"child stored {result['size']} bytes, not {stream_mib} MiB")
    return result


def run(
    database_url: str,
    blob_root: Path,
    work: Path,
    *,
    rounds: int,
    dedup_rounds: int,
    size_mib: int,
    stream_mib: int,
    out: TextIO,
) -> list[Figure]:
    size = size_mib * MIB
    baseline_dir = blob_root / "bench-baseline"
    baseline_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []

    # Peak memory of store_stream, in a child process. Measured first, while this process
    # is smaller than the child will be (see measure_memory).
    memory = measure_memory(database_url, blob_root, stream_mib)
    growth_mib = (memory["peak_kib"] - memory["baseline_kib"]) / 1024
    figures.append(
        figure(
            f"store_stream {stream_mib} MiB peak RSS growth", growth_mib, MEMORY_TARGET_MIB, "MiB"
        )
    )
    print(format_figure(figures[-1]), file=out)
    print(
        f"  raw child ru_maxrss: baseline {memory['baseline_kib'] / 1024:.1f} MiB, "
        f"peak {memory['peak_kib'] / 1024:.1f} MiB; store_stream took "
        f"{memory['seconds']:.2f} s ({stream_mib / memory['seconds']:.0f} MiB/s)",
        file=out,
    )
    if memory["baseline_hwm_kib"] is not None:
        inherited_mib = (memory["baseline_kib"] - memory["baseline_hwm_kib"]) / 1024
        hwm_growth_mib = (memory["peak_hwm_kib"] - memory["baseline_hwm_kib"]) / 1024
        print(
            f"  raw child VmHWM: baseline {memory['baseline_hwm_kib'] / 1024:.1f} MiB, "
            f"growth {hwm_growth_mib:.1f} MiB (ru_maxrss baseline inherited from the "
            f"parent: {max(inherited_mib, 0):.1f} MiB)",
            file=out,
        )

    with core.connect(database_url, blob_root) as catalog:
        catalog.cas.store_content(os.urandom(64))  # warm up: first transaction, imports

        # store_content of fresh content vs sha256 + write + fsync of the same bytes.
        store_times: list[float] = []
        baseline_times: list[float] = []
        stored_paths: list[Path] = []
        baseline_paths: list[Path] = []
        data = b""
        for index in range(-1, rounds):  # round -1 warms the page cache up, unrecorded
            data = os.urandom(size)  # fresh bytes: never a dedup hit
            stored, base = run_pair(
                lambda data=data: fresh_timed(
                    stored_paths,
                    lambda: blob_path(catalog.blob_root, catalog.cas.store_content(data)),
                ),
                lambda data=data: fresh_timed(
                    baseline_paths, lambda: baseline_store(data, baseline_dir)
                ),
                swap=index % 2 == 1,
            )
            if index >= 0:
                store_times.append(stored)
                baseline_times.append(base)
        for path in baseline_paths:
            path.unlink()
        store_median = statistics.median(store_times)
        baseline_median = statistics.median(baseline_times)
        figures.append(
            figure(
                f"store_content {size_mib} MiB / (sha256 + write + fsync)",
                store_median / baseline_median,
                STORE_TARGET,
                "ratio",
            )
        )
        print(format_figure(figures[-1]), file=out)
        print(
            f"  raw store_content median: {store_median:.3f} s "
            f"({size_mib / store_median:.0f} MiB/s) over {rounds} rounds: "
            + ", ".join(f"{t:.3f}" for t in store_times),
            file=out,
        )
        print(
            f"  raw baseline median: {baseline_median:.3f} s "
            f"({size_mib / baseline_median:.0f} MiB/s) over {rounds} rounds: "
            + ", ".join(f"{t:.3f}" for t in baseline_times),
            file=out,
        )

        # A dedup hit: the last round's bytes are stored already.
        cas_id = catalog.cas.compute_hash(data)
        if not catalog.cas.exists(cas_id):
            raise RuntimeError(f"{cas_id} should be stored before the dedup measurement")
        dedup_times, hash_times = interleave(
            dedup_rounds,
            lambda data=data: timed(lambda: catalog.cas.store_content(data)),
            lambda data=data: timed(lambda: hashlib.sha256(data).hexdigest()),
        )
        dedup_median = statistics.median(dedup_times)
        hash_median = statistics.median(hash_times)
        figures.append(
            figure(
                f"store_content {size_mib} MiB dedup hit / sha256",
                dedup_median / hash_median,
                DEDUP_TARGET,
                "ratio",
            )
        )
        print(format_figure(figures[-1]), file=out)
        print(
            f"  raw dedup store_content median: {dedup_median * 1000:.1f} ms over {dedup_rounds} "
            "rounds: " + ", ".join(f"{t * 1000:.1f}" for t in dedup_times),
            file=out,
        )
        print(
            f"  raw sha256 median: {hash_median * 1000:.1f} ms over {dedup_rounds} rounds: "
            + ", ".join(f"{t * 1000:.1f}" for t in hash_times),
            file=out,
        )

    print(f"  raw work dir: {work}, database: {redact(database_url)}", file=out)
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_catalog_arguments(parser)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--dedup-rounds", type=int, default=9, help="interleaved dedup-hit rounds (default 9)"
    )
    parser.add_argument("--size-mib", type=int, default=256, help="blob size (default 256)")
    parser.add_argument(
        "--stream-mib", type=int, default=1024, help="stream size for the memory figure"
    )
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--blob-root", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.database_url, args.blob_root, args.stream_mib)
        return 0
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    with (
        work_directory("bench-cas-", args.dir) as work,
        catalog_url(args.database_url, work) as database_url,
    ):
        figures = run(
            database_url,
            work / "blobs",
            work,
            rounds=args.rounds,
            dedup_rounds=args.dedup_rounds,
            size_mib=args.size_mib,
            stream_mib=args.stream_mib,
            out=out,
        )
    return finish(figures, started, out, args.json)


if __name__ == "__main__":
    sys.exit(main())
