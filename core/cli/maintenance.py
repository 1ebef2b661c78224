"""Maintenance commands: gc and verify."""

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
    with progress("collecting") as report_progress:
        report = context.existing.maintenance.gc(
            grace_seconds, dry_run=dry_run, progress=report_progress
        )
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
    with progress("verifying") as report_progress:
        report = context.existing.maintenance.verify(progress=report_progress)
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
