"""Functions run in child processes by the load tests (importable under spawn).

Each worker connects, waits for a shared wall-clock start (``tests.support.workers.wait_until``),
does its work and returns plain data (latencies in seconds, error tracebacks) to the parent.
"""

import json
import math
import os
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import core
from core.dag import canonical_json
from core.storage.duckdb.lease import DuckDBFileLock
from tests.support.workers import wait_until, warm_up

STORM_OPS = (
    ("assets.commit_output", 30),
    ("workflows.get_workflow_by_tag", 20),
    ("tags.get_history", 15),
    ("tags.compare_and_swap", 15),
    ("cas.store_content+get_content", 20),
)
"""The lock storm's operation kinds and their weights."""


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values`` (nan if empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def storm_worker(
    url: str,
    blob_root: str,
    worker: int,
    targets: list[str],
    start_at: float,
    stop_at: float,
) -> dict[str, Any]:
    """Run a random mix of reads and writes until ``stop_at``; never raise.

    Returns ``{"latencies": {kind: [seconds]}, "errors": [text], "commits": n,
    "swaps": n, "late": seconds}``: every failed operation's traceback is in ``errors``.
    ``commits`` counts commits that moved ``main``; ``swaps`` the moves of this worker's
    own tag ``storm/w<worker>``, which no other process touches.
    """
    rng = random.Random(worker)
    pool = [uuid.UUID(t) for t in targets]
    own_tag = f"storm/w{worker}"
    run_id = f"storm-{worker}"
    latencies: dict[str, list[float]] = {kind: [] for kind, _ in STORM_OPS}
    errors: list[str] = []
    counts = {"commits": 0, "swaps": 0}
    sequence = 0

    with core.connect(url, blob_root) as catalog:
        late = time.time() - start_at
        wait_until(start_at)
        own_target = catalog.tags.get_tag(own_tag).target_id

        def commit_output() -> None:
            content = json.dumps({"worker": worker, "seq": sequence, "nonce": uuid.uuid4().hex})
            result = catalog.assets.commit_output(
                run_id,
                "main",
                f"w{worker}-n{sequence % 4}",
                content.encode(),
                media_type="application/json",
            )
            if not result.changed:
                raise AssertionError(f"fresh content did not move main: {result}")
            counts["commits"] += 1

        def get_workflow() -> None:
            document = catalog.workflows.get_workflow_by_tag("main")
            if "nodes" not in document:
                raise AssertionError(f"not a DAG document: {document!r}")

        def get_history() -> None:
            if not catalog.tags.get_history("main"):
                raise AssertionError("main has no history")

        def compare_and_swap() -> None:
            nonlocal own_target
            new = pool[(pool.index(own_target) + 1) % len(pool)]
            if not catalog.tags.compare_and_swap(
                own_tag, own_target, new, moved_by=f"storm:{worker}"
            ):
                raise AssertionError(f"lost a swap of {own_tag!r}, which no one else moves")
            own_target = new
            counts["swaps"] += 1

        def store_and_read() -> None:
            content = f"worker {worker} blob {sequence} {uuid.uuid4().hex}".encode()
            cas_id = catalog.cas.store_content(content, "text/plain")
            if catalog.cas.get_content(cas_id) != content:
                raise AssertionError(f"{cas_id} read back different bytes")

        operations: dict[str, Callable[[], None]] = {
            "assets.commit_output": commit_output,
            "workflows.get_workflow_by_tag": get_workflow,
            "tags.get_history": get_history,
            "tags.compare_and_swap": compare_and_swap,
            "cas.store_content+get_content": store_and_read,
        }
        kinds = [kind for kind, _ in STORM_OPS]
        weights = [weight for _, weight in STORM_OPS]
        while time.time() < stop_at:
            kind = rng.choices(kinds, weights)[0]
            sequence += 1
            began = time.perf_counter()
            try:
                operations[kind]()
            except Exception:
                errors.append(f"worker {worker} {kind}:\n{traceback.format_exc()}")
                continue
            latencies[kind].append(time.perf_counter() - began)
    return {"latencies": latencies, "errors": errors, "late": late, **counts}


def poll_moves(
    url: str,
    blob_root: str,
    tag: str,
    cursor: int,
    start_at: float,
    stop_file: str,
    interval: float = 0.2,
    give_up_at: float | None = None,
) -> dict[str, Any]:
    """Poll ``workflows.get_moves(tag, cursor)`` every ``interval`` s, as a sensor does.

    Polls until ``stop_file`` exists, then once more until a poll returns nothing (or
    until ``give_up_at``). Returns ``{"moves": [[id, revision, from, to]], "latencies":
    [seconds], "errors": [text], "polls": n}``; every move seen is listed in the order seen.
    """
    seen: list[list[Any]] = []
    latencies: list[float] = []
    errors: list[str] = []
    polls = 0
    with core.connect(url, blob_root) as catalog:
        wait_until(start_at)
        draining = False
        while give_up_at is None or time.time() < give_up_at:
            draining = draining or Path(stop_file).exists()
            tick = time.perf_counter()
            try:
                page = catalog.workflows.get_moves(tag, cursor)
            except Exception:
                errors.append(f"poller get_moves after {cursor}:\n{traceback.format_exc()}")
            else:
                latencies.append(time.perf_counter() - tick)
                polls += 1
                for item in page.moves:
                    move = item.move
                    seen.append(
                        [move.id, move.revision, str(move.from_target_id), str(move.to_target_id)]
                    )
                if page.moves and page.cursor != page.moves[-1].move.id:
                    errors.append(f"cursor {page.cursor} is not the last move's id {seen[-1]}")
                cursor = page.cursor
                if draining and not page.moves:
                    break
            time.sleep(max(0.0, interval - (time.perf_counter() - tick)))
    return {"moves": seen, "latencies": latencies, "errors": errors, "polls": polls}


def cas_moves(
    url: str, blob_root: str, tag: str, worker: int, targets: list[str], moves: int, start_at: float
) -> dict[str, Any]:
    """Make ``moves`` successful compare-and-swap moves of ``tag`` (read, swap, retry on loss).

    Returns ``{"losses": n, "finished_at": wall-clock seconds, "late": seconds}``; moves are
    recorded with ``moved_by=f"load:{worker}"``.
    """
    pool = [uuid.UUID(t) for t in targets]
    losses = 0
    with core.connect(url, blob_root) as catalog:
        late = time.time() - start_at
        wait_until(start_at)
        done = 0
        while done < moves:
            current = catalog.tags.get_tag(tag).target_id
            new = pool[(pool.index(current) + 1 + (worker + done) % (len(pool) - 1)) % len(pool)]
            if catalog.tags.compare_and_swap(tag, current, new, moved_by=f"load:{worker}"):
                done += 1
            else:
                losses += 1
        finished_at = time.time()
    return {"losses": losses, "finished_at": finished_at, "late": late}


STORM_WORKERS = 8
STORM_POLL_INTERVAL = 0.2
STORM_START_MARGIN = 3.0
"""Seconds between handing out the work and the shared start (pool processes are warm)."""


@dataclass(frozen=True)
class StormRun:
    """What a lock storm did: each worker's result, the poller's, and the timing."""

    url: str
    blob_root: str
    cursor: int
    """The last move of ``main`` before the storm."""
    results: list[dict[str, Any]]
    polled: dict[str, Any]
    wall: float
    """Seconds from the shared start to the last worker's finish."""
    pids: set[int]

    def latencies(self) -> dict[str, list[float]]:
        """Every operation's latency (seconds), by kind, the poller's included."""
        by_kind: dict[str, list[float]] = {}
        for result in self.results:
            for kind, values in result["latencies"].items():
                by_kind.setdefault(kind, []).extend(values)
        by_kind["workflows.get_moves (poller)"] = self.polled["latencies"]
        return by_kind

    def errors(self) -> list[str]:
        return [e for result in self.results for e in result["errors"]] + self.polled["errors"]


def run_storm(
    work: Path,
    duration: float,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> StormRun:
    """``STORM_WORKERS`` processes of mixed reads and writes and a sensor-like poller on
    one fresh DuckDB catalog in ``work`` for ``duration`` seconds (``initializer`` runs
    in each pool process first, as ``ProcessPoolExecutor`` runs it)."""
    url = f"duckdb:///{work / 'catalog.duckdb'}"
    blob_root = str(work / "blobs")
    with core.connect(url, blob_root) as catalog:
        targets = []
        for i in range(3):
            cas_id = catalog.cas.store_content(canonical_json({"nodes": {f"t{i}": {"deps": []}}}))
            targets.append(str(catalog.artifacts.create_dag_version("storm-targets", cas_id)))
        for worker in range(STORM_WORKERS):
            catalog.tags.create_tag(f"storm/w{worker}", uuid.UUID(targets[0]))
        catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("storm", {"nodes": {"seed": {"deps": []}}})
        )
        cursor = catalog.tags.get_history("main")[-1].id
    stop_file = work / "stop"
    with ProcessPoolExecutor(
        STORM_WORKERS + 1,
        mp_context=get_context("spawn"),
        initializer=initializer,
        initargs=initargs,
    ) as pool:
        warm = [pool.submit(warm_up, 1.0) for _ in range(STORM_WORKERS + 1)]
        pids = {future.result() for future in warm}
        start_at = time.time() + STORM_START_MARGIN
        stop_at = start_at + duration
        poller = pool.submit(
            poll_moves,
            url,
            blob_root,
            "main",
            cursor,
            start_at,
            str(stop_file),
            STORM_POLL_INTERVAL,
            stop_at + 300,
        )
        futures = [
            pool.submit(storm_worker, url, blob_root, worker, targets, start_at, stop_at)
            for worker in range(STORM_WORKERS)
        ]
        try:
            results: list[dict[str, Any]] = [future.result() for future in futures]
            workers_done = time.time()
        finally:
            stop_file.touch()  # the poller drains the last moves, then returns
        polled: dict[str, Any] = poller.result()
    return StormRun(url, blob_root, cursor, results, polled, workers_done - start_at, pids)


def hold_file_lock(database: str, seconds: float) -> None:
    """Take the DuckDB file lock of ``database`` in turn and hold it for ``seconds``."""
    lock = DuckDBFileLock(Path(database), budget=60)
    lock.acquire()
    time.sleep(seconds)


def take_file_lock_in_turn(database: str, log: str, label: str) -> None:
    """Take the DuckDB file lock of ``database`` in turn, append ``label`` to ``log``
    while holding it, then give it up."""
    lock = DuckDBFileLock(Path(database), budget=60)
    tenure = lock.acquire()
    try:
        with open(log, "a") as out:
            out.write(label + "\n")
    finally:
        lock.release(tenure)


def fork_while_waiting(database: str, child_pid_file: str) -> None:
    """Queue for the DuckDB file lock of ``database`` on a thread, then fork a child (as
    the ``fork`` start method does) that outlives this process; write the child's pid to
    ``child_pid_file`` and wait to be killed."""
    lock = DuckDBFileLock(Path(database), budget=600)
    threading.Thread(target=lock.acquire, daemon=True).start()
    while lock.queued() < 2:  # the holder's ticket and this one
        time.sleep(0.01)
    child = os.fork()
    if child == 0:
        time.sleep(600)
        os._exit(0)
    Path(child_pid_file).write_text(str(child))
    time.sleep(600)
