"""Tag resolution benchmark: does ``get_workflow_by_tag`` slow down as a tag's history grows?

Figure (target from the performance issue): the median latency of
``catalog.workflows.get_workflow_by_tag(tag)`` on a tag moved 10,000 times divided by the
median latency on a tag moved 10 times. Target <= 1.5.

Both tags live in one catalog and are measured interleaved (alternating which goes first),
so both measurements see the same table sizes. The figure is for the first call of a
freshly connected catalog (connection opened, nothing about the tag cached in the
process); repeated calls in one process, which hit the cache of resolved documents, are
reported as a raw line.

Each tag holds a 20-node DAG document created with ``create_workflow``; every move is a
one-operation JSON Patch that replaces an attribute of one node with a new value, so every
move changes the content.

The 10-move tag is moved with ``patch_workflow``. The 10,000-move tag is moved through
the services directly, 100 moves per transaction (``catalog.database.transaction()``
is re-entrant per thread, so the service calls inside it join it): for every move, the
patch (or, every 33rd commit, the full document) is stored in the CAS, recorded with
``artifacts.create_patch_set`` (or ``create_dag_version``) on the current head, and the
tag moved with ``tags.compare_and_swap(..., expected_revision=...)``, as
``WorkflowService.patch_workflow`` does (including its compaction, see
``core.service.workflow.DEFAULT_COMPACTION_BOUND``), without paying one connection and
commit per move. To show the shortcut is faithful, a third tag with the same starting
document is first moved ``--verify-moves`` times with ``patch_workflow``; the shortcut must
produce exactly the same artifacts (same version hashes) for those moves. At the end the
long tag's revision must be >= 10,000 and ``get_workflow_by_tag`` on a fresh connection
must return the expected document for both tags.

Run from the project root (a few minutes; most of it building the long tag)::

    .venv/bin/python bench/tag_resolution.py
    .venv/bin/python bench/tag_resolution.py --json
    .venv/bin/python bench/tag_resolution.py \\
        --database-url 'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench_x'

Without ``--database-url`` the catalog is a DuckDB file in a temporary directory (under
``--dir`` if given); a Postgres URL gets a fresh schema, dropped at the end. The blob root
is always in that temporary directory, which is removed at the end.

Output: ``<figure name>: <value> (target <= X) OK|MISS``, followed by indented ``raw``
lines (absolute latencies in milliseconds, chain lengths, build times). With ``--json``
the figures are printed to stdout as a JSON list of ``{"name", "value", "target",
"unit", "ok"}`` objects and the human-readable report goes to stderr. The exit status
is 0 whatever the figures are.
"""

import argparse
import statistics
import sys
import time
import uuid
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
from core.dag import DAG_MEDIA_TYPE, PATCH_MEDIA_TYPE, apply_patch, canonical_json, validate_dag
from core.service.workflow import DEFAULT_COMPACTION_BOUND

RATIO_TARGET = 1.5
SHORT_TAG = "bench-short"
LONG_TAG = "bench-long"
CHECK_TAG = "bench-check"
PATCH_REASON = "patch_workflow"
"""The reason ``patch_workflow`` records on its tag moves."""


def make_dag(nodes: int, variant: str) -> dict[str, Any]:
    """A chain of ``nodes`` nodes; ``variant`` keeps different tags' versions apart."""
    return {
        "nodes": {
            f"n{i}": {
                "deps": [f"n{i - 1}"] if i else [],
                "attempt": 0,
                **({"variant": variant} if i == 0 else {}),
            }
            for i in range(nodes)
        }
    }


def make_patch(move: int, nodes: int) -> list[dict[str, Any]]:
    """The ``move``-th patch (1-based): a new value, so every move changes the document."""
    return [{"op": "replace", "path": f"/nodes/n{move % nodes}/attempt", "value": move}]


def patch_moves(catalog: core.Services, tag: str, moves: int, nodes: int) -> None:
    """Move ``tag`` ``moves`` times the ordinary way, one ``patch_workflow`` each."""
    for move in range(1, moves + 1):
        response = catalog.workflows.patch_workflow(tag, make_patch(move, nodes))
        if not response.changed:
            raise RuntimeError(f"patch {move} did not change {tag!r}")


def fast_moves(
    catalog: core.Services,
    tag: str,
    moves: int,
    nodes: int,
    *,
    batch: int,
    expected_ids: list[uuid.UUID],
) -> dict[str, Any]:
    """Move ``tag`` ``moves`` times as ``patch_workflow`` would, ``batch`` moves per
    transaction; move ``i`` (1-based) must land on ``expected_ids[i - 1]`` if given.
    Returns the document the tag should resolve to."""
    head = catalog.tags.get_tag(tag)
    target, revision = head.target_id, head.revision
    name = catalog.artifacts.get_by_id(target).name
    document = catalog.workflows.get_workflow_by_tag(tag)
    chain_length = len(catalog.artifacts.get_patch_chain(target))
    for first in range(1, moves + 1, batch):
        with catalog.database.transaction():
            for move in range(first, min(first + batch, moves + 1)):
                patch = make_patch(move, nodes)
                document = validate_dag(apply_patch(document, patch))
                # WorkflowService._record: a patch set while the chain above the last full
                # version is shorter than the compaction bound, else a full version.
                if chain_length - 1 < DEFAULT_COMPACTION_BOUND:
                    cas_id = catalog.cas.store_content(canonical_json(patch), PATCH_MEDIA_TYPE)
                    new = catalog.artifacts.create_patch_set(name, cas_id, parent_id=target)
                    chain_length += 1
                else:
                    cas_id = catalog.cas.store_content(canonical_json(document), DAG_MEDIA_TYPE)
                    new = catalog.artifacts.create_dag_version(name, cas_id, parent_id=target)
                    chain_length = 1
                if move <= len(expected_ids) and new != expected_ids[move - 1]:
                    raise RuntimeError(
                        f"move {move}: the shortcut made artifact {new}, "
                        f"patch_workflow made {expected_ids[move - 1]}"
                    )
                if not catalog.tags.compare_and_swap(
                    tag, target, new, reason=PATCH_REASON, expected_revision=revision
                ):
                    raise RuntimeError(f"lost the compare-and-swap on {tag!r} at move {move}")
                target, revision = new, revision + 1
    return document


def expected_document(nodes: int, variant: str, moves: int) -> dict[str, Any]:
    document = make_dag(nodes, variant)
    for move in range(1, moves + 1):
        document = apply_patch(document, make_patch(move, nodes))
    return document


def latency(catalog: core.Services, tag: str) -> float:
    start = time.perf_counter()
    catalog.workflows.get_workflow_by_tag(tag)
    return time.perf_counter() - start


def interleaved_latencies(
    catalog: core.Services, tags: list[str], samples: int, warmup: int = 5
) -> dict[str, list[float]]:
    """``samples`` latencies per tag, alternating which tag goes first."""
    for _ in range(warmup):
        for tag in tags:
            latency(catalog, tag)
    results: dict[str, list[float]] = {tag: [] for tag in tags}
    for index in range(samples):
        for tag in tags if index % 2 == 0 else reversed(tags):
            results[tag].append(latency(catalog, tag))
    return results


def cold_latencies(
    database_url: str, blob_root: Path, tags: list[str], samples: int
) -> dict[str, list[float]]:
    """The first ``get_workflow_by_tag`` call of a freshly connected catalog (nothing
    cached in the process yet), ``samples`` per tag, alternating which tag goes first."""
    results: dict[str, list[float]] = {tag: [] for tag in tags}
    for index in range(samples):
        for tag in tags if index % 2 == 0 else reversed(tags):
            with core.connect(database_url, blob_root) as fresh:
                fresh.tags.list_tags()  # open the connection; cache nothing about the tag
                results[tag].append(latency(fresh, tag))
    return results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def run(
    database_url: str,
    blob_root: Path,
    *,
    long_moves: int,
    short_moves: int,
    verify_moves: int,
    nodes: int,
    samples: int,
    cold_samples: int,
    batch: int,
    out: TextIO,
) -> list[Figure]:
    with core.connect(database_url, blob_root) as catalog:
        workflows = catalog.workflows

        start = time.perf_counter()
        workflows.create_workflow(
            core.CreateWorkflowRequest("bench-short", make_dag(nodes, "short"), tag=SHORT_TAG)
        )
        patch_moves(catalog, SHORT_TAG, short_moves, nodes)
        short_build = time.perf_counter() - start
        early = interleaved_latencies(catalog, [SHORT_TAG], samples)[SHORT_TAG]

        # The reference for the shortcut: the same start, moved with patch_workflow.
        start = time.perf_counter()
        workflows.create_workflow(
            core.CreateWorkflowRequest("bench-long", make_dag(nodes, "long"), tag=CHECK_TAG)
        )
        patch_moves(catalog, CHECK_TAG, verify_moves, nodes)
        check_build = time.perf_counter() - start
        reference = [
            move.to_target_id
            for move in catalog.tags.get_history(CHECK_TAG)[1:]
            if move.to_target_id is not None
        ]

        start = time.perf_counter()
        workflows.create_workflow(
            core.CreateWorkflowRequest("bench-long", make_dag(nodes, "long"), tag=LONG_TAG)
        )
        document = fast_moves(
            catalog,
            LONG_TAG,
            long_moves,
            nodes,
            batch=batch,
            expected_ids=reference,
        )
        long_build = time.perf_counter() - start

        # Verify what was built, reading it back through a fresh connection.
        short_tag, long_tag = catalog.tags.get_tag(SHORT_TAG), catalog.tags.get_tag(LONG_TAG)
        if long_tag.revision != long_moves + 1:
            raise RuntimeError(f"{LONG_TAG} is at revision {long_tag.revision}")
        if short_tag.revision != short_moves + 1:
            raise RuntimeError(f"{SHORT_TAG} is at revision {short_tag.revision}")
        if document != expected_document(nodes, "long", long_moves):
            raise RuntimeError("the shortcut's document differs from the patches' result")
        with core.connect(database_url, blob_root) as fresh:
            if fresh.workflows.get_workflow_by_tag(LONG_TAG) != document:
                raise RuntimeError(f"{LONG_TAG} does not resolve to the expected document")
            if fresh.workflows.get_workflow_by_tag(SHORT_TAG) != expected_document(
                nodes, "short", short_moves
            ):
                raise RuntimeError(f"{SHORT_TAG} does not resolve to the expected document")
        history = len(catalog.tags.get_history(LONG_TAG))
        if history != long_tag.revision:
            raise RuntimeError(f"{LONG_TAG} has {history} history rows")
        short_chain = len(catalog.artifacts.get_patch_chain(short_tag.target_id))
        long_chain = len(catalog.artifacts.get_patch_chain(long_tag.target_id))

        measured = interleaved_latencies(catalog, [SHORT_TAG, LONG_TAG], samples)
        short_median = statistics.median(measured[SHORT_TAG])
        long_median = statistics.median(measured[LONG_TAG])
    cold = cold_latencies(database_url, blob_root, [SHORT_TAG, LONG_TAG], cold_samples)

    cold_short = statistics.median(cold[SHORT_TAG])
    cold_long = statistics.median(cold[LONG_TAG])
    result = figure(
        f"get_workflow_by_tag latency {long_moves} moves / {short_moves} moves "
        "(nothing cached in the process)",
        cold_long / cold_short,
        RATIO_TARGET,
        "ratio",
    )
    print(format_figure(result), file=out)
    print(
        f"  raw median latency, {long_moves} moves ({LONG_TAG}, revision "
        f"{long_tag.revision}, chain length {long_chain}): {ms(long_median)} "
        f"(min {ms(min(measured[LONG_TAG]))}, max {ms(max(measured[LONG_TAG]))}, "
        f"{samples} calls)",
        file=out,
    )
    print(
        f"  raw median latency, {short_moves} moves ({SHORT_TAG}, revision "
        f"{short_tag.revision}, chain length {short_chain}): {ms(short_median)} "
        f"(min {ms(min(measured[SHORT_TAG]))}, max {ms(max(measured[SHORT_TAG]))}, "
        f"{samples} calls)",
        file=out,
    )
    print(
        f"  raw median latency, {short_moves} moves, before the long tag was built "
        f"(smaller tables): {ms(statistics.median(early))}",
        file=out,
    )
    print(
        f"  raw median latency of the first call on a fresh connection: {long_moves} moves "
        f"{ms(cold_long)}, {short_moves} moves {ms(cold_short)} ({cold_samples} connections "
        f"per tag); repeated calls in one process (resolved documents cached): ratio "
        f"{long_median / short_median:.3f}",
        file=out,
    )
    print(
        f"  raw build: {SHORT_TAG} {short_build:.1f} s ({short_moves} patch_workflow "
        f"calls); {CHECK_TAG} {check_build:.1f} s ({verify_moves} patch_workflow calls, "
        f"{check_build / max(verify_moves, 1) * 1000:.0f} ms each); {LONG_TAG} "
        f"{long_build:.1f} s ({long_moves} moves in transactions of {batch}, "
        f"{long_build / long_moves * 1000:.1f} ms each); shortcut matched patch_workflow "
        f"on the first {min(verify_moves, long_moves)} moves",
        file=out,
    )
    print(
        f"  raw verified: {LONG_TAG} revision {long_tag.revision} "
        f"({'>=' if long_tag.revision >= 10_000 else '<'} 10000), {history} history rows, "
        f"resolves to the expected document; {SHORT_TAG} revision {short_tag.revision} "
        "resolves to the expected document",
        file=out,
    )
    return [result]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_catalog_arguments(parser)
    parser.add_argument("--moves", type=int, default=10_000, help="long tag moves (10000)")
    parser.add_argument("--short-moves", type=int, default=10, help="short tag moves (10)")
    parser.add_argument(
        "--verify-moves",
        type=int,
        default=70,
        help="moves replayed with patch_workflow to check the shortcut (70)",
    )
    parser.add_argument("--nodes", type=int, default=20, help="DAG nodes (20)")
    parser.add_argument("--samples", type=int, default=100, help="calls per tag (100)")
    parser.add_argument(
        "--cold-samples",
        type=int,
        default=20,
        help="fresh connections per tag for the first-call latency (20)",
    )
    parser.add_argument("--batch", type=int, default=100, help="moves per transaction (100)")
    args = parser.parse_args(argv)
    if args.cold_samples < 1:
        parser.error("--cold-samples must be at least 1: the figure is the first-call latency")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    with (
        work_directory("bench-tags-", args.dir) as work,
        catalog_url(args.database_url, work) as database_url,
    ):
        figures = run(
            database_url,
            work / "blobs",
            long_moves=args.moves,
            short_moves=args.short_moves,
            verify_moves=args.verify_moves,
            nodes=args.nodes,
            samples=args.samples,
            cold_samples=args.cold_samples,
            batch=args.batch,
            out=out,
        )
        print(f"  raw work dir: {work}, database: {redact(database_url)}", file=out)
    return finish(figures, started, out, args.json)


if __name__ == "__main__":
    sys.exit(main())
