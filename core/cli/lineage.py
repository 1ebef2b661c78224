"""Lineage commands: blame (where each value of a version comes from) and lineage (the
runs that produced and read a blob)."""

from typing import Any

import click

import core
from core.cli.app import CatalogContext, cli, domain_errors, pass_catalog
from core.cli.output import emit_json, short, table, to_json, when
from core.cli.read import artifact_json, json_option

BY_HAND = "by hand"
"""What blame shows for a value that no run recorded as its output."""


def _partition(key: str | None) -> str:
    return "-" if key is None else key


def _run_cell(use: core.BlobUse | None) -> str:
    return BY_HAND if use is None else short(use.run_id)


def blame_json(blame: core.Blame) -> dict[str, Any]:
    """A blame as JSON; each ``since`` is the artifact's JSON as ``show`` prints it."""
    return {
        "ref": blame.ref,
        "version": artifact_json(blame.version),
        "entries": [
            {
                "node": entry.node,
                "partition_key": entry.partition_key,
                "cas_id": entry.cas_id,
                "media_type": entry.media_type,
                "size": entry.size,
                "since": artifact_json(entry.since),
                "produced_by": to_json(entry.produced_by),
            }
            for entry in blame.entries
        ],
    }


@cli.command()
@click.argument("ref")
@json_option
@pass_catalog
@domain_errors
def blame(context: CatalogContext, ref: str, as_json: bool) -> None:
    """Show where each value of a version comes from.

    For each node and partition value: SINCE is the oldest version on REF's first-parent
    line from which it held these bytes without a break; RUN is the earliest run that
    produced these bytes for it, and PRODUCED when (a value no run produced was written
    by hand).

    \b
    Example:
      orchestrator blame main
    """
    found = context.existing.lineage.blame(ref)
    if as_json:
        emit_json(blame_json(found))
        return
    table(
        ["NODE", "PARTITION", "VALUE", "SINCE", "SINCE WHEN", "RUN", "PRODUCED", "TAG", "JOB"],
        [
            [
                entry.node,
                _partition(entry.partition_key),
                short(entry.cas_id),
                short(entry.since.version_hash),
                when(entry.since.created_at),
                _run_cell(entry.produced_by),
                when(entry.produced_by and entry.produced_by.recorded_at),
                entry.produced_by.tag if entry.produced_by else "-",
                (entry.produced_by and entry.produced_by.job_name) or "-",
            ]
            for entry in found.entries
        ],
        colours={3: "yellow"},
    )


@cli.command()
@click.argument("cas_id")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many producing runs, and this many reading runs (oldest first).",
)
@json_option
@pass_catalog
@domain_errors
def lineage(context: CatalogContext, cas_id: str, limit: int, as_json: bool) -> None:
    """Show the runs that produced a blob and the runs that read it, with their tags.

    \b
    Example:
      orchestrator lineage sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
    """
    found = context.existing.lineage.of_blob(cas_id, limit=limit)
    if as_json:
        emit_json(found)
        return
    uses = found.produced_by + found.read_by
    if not uses:
        click.echo(f"no run produced or read {cas_id} (written by hand, or a version's content)")
        return
    table(
        ["DIRECTION", "RUN", "NODE", "PARTITION", "WHEN", "TAG", "JOB", "STATUS", "PUBLISH"],
        [
            [
                use.direction.value,
                short(use.run_id),
                use.node,
                _partition(use.partition_key),
                when(use.recorded_at),
                use.tag,
                use.job_name or "-",
                use.status,
                use.publish.value,
            ]
            for use in uses
        ],
    )
