"""Maintenance commands: gc and verify."""

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import click

from core.cli.app import EXIT_PROBLEM, CatalogContext, cli, domain_errors, pass_catalog
from core.cli.output import emit_json, progress, table
from core.service.maintenance import parse_duration


@cli.command()
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Keep unreferenced blobs stored more recently than this (30s, 15m, 1h, 7d).",
)
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema: README).")
@pass_catalog
@domain_errors
def gc(context: CatalogContext, grace: str, dry_run: bool, as_json: bool) -> None:
    """Remove blobs no artifact or run references (never one stored after gc began).

    \b
    Example:
      orchestrator gc --grace 1h --dry-run
    """
    grace_seconds = parse_duration(grace)  # a usage error before the catalog is opened
    with progress("collecting") as report_progress, stop_between_blobs(report_progress) as step:
        report = context.existing.maintenance.gc(grace_seconds, dry_run=dry_run, progress=step)
    if as_json:
        emit_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {len(report.removed)} blobs, {report.removed_bytes} bytes"
        f" ({report.kept_recent} unreferenced blobs kept: stored within the grace period)"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema: README).")
@pass_catalog
@domain_errors
def verify(context: CatalogContext, as_json: bool) -> None:
    """Re-hash every referenced blob; exit 1 if any is missing or corrupt.

    A corrupt file is moved to the blob folder's tmp/ so that storing the same bytes
    again (or materialising the asset again) repairs the blob.

    \b
    Example:
      orchestrator verify --json
    """
    with progress("verifying") as report_progress, stop_between_blobs(report_progress) as step:
        report = context.existing.maintenance.verify(progress=step)
    if as_json:
        emit_json(report)
    else:
        click.echo(f"checked {report.checked} blobs: {len(report.problems)} problems")
        table(
            ["CAS ID", "PROBLEM", "ARTIFACTS", "TAGS"],
            [
                [
                    p.cas_id,
                    p.problem,
                    ",".join(str(a)[:8] for a in p.artifact_ids) or "-",
                    ",".join(p.tags) or "-",
                ]
                for p in report.problems
            ],
            colours={1: "red"},
        )
    if report.problems:
        raise SystemExit(EXIT_PROBLEM)


Step = Callable[[int, int], None]


@contextlib.contextmanager
def stop_between_blobs(report_progress: Step) -> Iterator[Step]:
    """A progress callback that, after a Ctrl-C, stops the work at its next blob (between
    two transactions) rather than in the middle of one; a second Ctrl-C stops at once.

    The interrupt surfaces as ``KeyboardInterrupt`` (status 130, see ``domain_errors``).
    """
    if threading.current_thread() is not threading.main_thread():  # no signals here
        yield report_progress
        return
    requested = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    restored = signal.SIG_DFL if previous is None else previous

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        requested.set()
        signal.signal(signal.SIGINT, restored)

    def step(done: int, total: int) -> None:
        report_progress(done, total)
        if requested.is_set():
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield step
        if requested.is_set():  # there was no blob left to stop at
            raise KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, restored)
