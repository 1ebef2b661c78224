"""Read commands: tags, history, log, show, cat, diff, runs."""

import json
import shutil
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypedDict

import click

import core
from core.cli.app import CatalogContext, F, cli, domain_errors, pass_catalog
from core.cli.output import conflict_names, conflicts_json, emit_json, short, table, to_json, when
from core.dag import node_value, value_changes

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (schema: README).")


class HistoryEntry(TypedDict):
    """One line of ``history``: a tag move with the versions it moved between."""

    position: int
    move_id: int
    moved_at: datetime
    moved_by: str | None
    from_id: uuid.UUID | None
    from_version: str | None
    to_id: uuid.UUID | None
    to_version: str | None
    revision: int
    reason: str | None
    run_id: str | None


def limit_option(what: str) -> Callable[[F], F]:
    """``--limit``: how many rows a listing shows (at least one)."""
    return click.option(
        "--limit",
        default=50,
        show_default=True,
        type=click.IntRange(min=1),
        help=f"At most this many {what}.",
    )


def artifact_json(artifact: core.Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "kind": artifact.kind,
        "version_hash": artifact.version_hash,
        "cas_id": artifact.cas_id,
        "parent_id": artifact.parent_id,
        "name": artifact.name,
        "created_at": artifact.created_at,
        "created_by": artifact.created_by,
        "metadata": artifact.metadata,
    }


def run_json(run: core.Run) -> dict[str, Any]:
    """A run as JSON; its outcome's conflicts as ``[{node, partition_key}]``."""
    shown: dict[str, Any] = to_json(run)
    if run.outcome is not None:
        shown["outcome"]["conflicts"] = conflicts_json(run.outcome.conflicts)
    return shown


def outcome_text(outcome: core.RunOutcome | None, version: str | None) -> str:
    """How publishing a run ended, in one line (``-``: not tried yet)."""
    if outcome is None:
        return "-"
    text = outcome.state.value
    if outcome.revision is not None:
        text += f" (revision {outcome.revision}{f', {version}' if version else ''})"
    if outcome.checks:
        text += f": {', '.join(outcome.checks)}"
    if outcome.conflicts:
        text += f": {conflict_names(outcome.conflicts)}"
    return text


@cli.command()
@json_option
@pass_catalog
@domain_errors
def tags(context: CatalogContext, as_json: bool) -> None:
    """List the tags and where they point.

    \b
    Example:
      orchestrator tags --json
    """
    catalog = context.existing
    listed = [(tag, catalog.artifacts.get_by_id(tag.target_id)) for tag in catalog.tags.list_tags()]
    if as_json:
        emit_json(
            [
                {
                    "name": tag.name,
                    "target_id": tag.target_id,
                    "target_kind": tag.target_kind,
                    "version_hash": artifact.version_hash,
                    "revision": tag.revision,
                    "updated_at": tag.updated_at,
                    "updated_by": tag.updated_by,
                }
                for tag, artifact in listed
            ]
        )
        return
    table(
        ["TAG", "VERSION", "KIND", "REV", "UPDATED", "BY"],
        [
            [
                t.name,
                short(a.version_hash),
                t.target_kind,
                t.revision,
                when(t.updated_at),
                t.updated_by or "-",
            ]
            for t, a in listed
        ],
        colours={1: "yellow"},
    )


@cli.command()
@click.argument("tag")
@json_option
@pass_catalog
@domain_errors
def history(context: CatalogContext, tag: str, as_json: bool) -> None:
    """Show a tag's reflog, newest first (position 0 is the latest move).

    \b
    Example:
      orchestrator history main       # main@{1} is the target before the last move
    """
    catalog = context.existing
    moves = list(reversed(catalog.tags.get_history(tag)))
    if not moves:
        raise core.NotFoundError(f"tag {tag!r} has no history")

    def version(artifact_id: uuid.UUID | None) -> str | None:
        return (
            None if artifact_id is None else catalog.artifacts.get_by_id(artifact_id).version_hash
        )

    entries: list[HistoryEntry] = [
        {
            "position": position,
            "move_id": move.id,
            "moved_at": move.moved_at,
            "moved_by": move.moved_by,
            "from_id": move.from_target_id,
            "from_version": version(move.from_target_id),
            "to_id": move.to_target_id,
            "to_version": version(move.to_target_id),
            "revision": move.revision,
            "reason": move.reason,
            "run_id": move.run_id,
        }
        for position, move in enumerate(moves)
    ]
    if as_json:
        emit_json(entries)
        return
    table(
        ["POS", "WHEN", "WHO", "FROM", "TO", "REASON", "RUN"],
        [
            [
                f"{tag}@{{{e['position']}}}",
                when(e["moved_at"]),
                e["moved_by"] or "-",
                short(e["from_version"]),
                short(e["to_version"]),
                e["reason"] or "-",
                short(e["run_id"]),
            ]
            for e in entries
        ],
        colours={3: "yellow", 4: "yellow"},
    )


@cli.command()
@click.argument("ref")
@limit_option("versions")
@json_option
@pass_catalog
@domain_errors
def log(context: CatalogContext, ref: str, limit: int, as_json: bool) -> None:
    """Show a version and its parents down to the first version.

    \b
    Example:
      orchestrator log main --limit 10
    """
    catalog = context.existing
    line = catalog.artifacts.get_ancestry(catalog.refs.resolve(ref).id, limit=limit)
    if as_json:
        emit_json([artifact_json(artifact) for artifact in line])
        return
    table(
        ["VERSION", "KIND", "CREATED", "BY", "NAME", "MESSAGE"],
        [
            [
                short(a.version_hash),
                a.kind,
                when(a.created_at),
                a.created_by or "-",
                a.name,
                a.metadata.get("message", ""),
            ]
            for a in line
        ],
        colours={0: "yellow"},
    )


@cli.command()
@click.argument("ref")
@json_option
@pass_catalog
@domain_errors
def show(context: CatalogContext, ref: str, as_json: bool) -> None:
    """Show one version: kind, hashes, parent, metadata and its nodes' values.

    \b
    Example:
      orchestrator show main@{1}
    """
    catalog = context.existing
    artifact = catalog.refs.resolve(ref)
    document = catalog.artifacts.resolve(artifact.id)
    nodes = document.get("nodes", {})
    if as_json:
        emit_json({"artifact": artifact_json(artifact), "nodes": nodes})
        return
    parent = catalog.artifacts.get_by_id(artifact.parent_id) if artifact.parent_id else None
    for label, value in [
        ("version", artifact.version_hash),
        ("kind", artifact.kind),
        ("id", artifact.id),
        ("content", artifact.cas_id),
        ("parent", parent.version_hash if parent else "-"),
        ("name", artifact.name),
        ("created", f"{when(artifact.created_at)} by {artifact.created_by or '-'}"),
        ("metadata", json.dumps(artifact.metadata, sort_keys=True)),
    ]:
        click.echo(f"{click.style(label.ljust(9), bold=True)}{value}")
    click.echo()
    rows = []
    for name, node in sorted(nodes.items()):
        partitions = node.get("partitions", {})
        deps = ",".join(node.get("deps", [])) or "-"
        if "cas_id" in node or not partitions:
            rows.append([name, "-", short(node.get("cas_id")), node.get("size", "-"), deps])
        rows += [
            [name, key, short(entry.get("cas_id")), entry.get("size", "-"), deps]
            for key, entry in sorted(partitions.items())
        ]
    table(["NODE", "PARTITION", "CAS ID", "SIZE", "DEPS"], rows, colours={2: "yellow"})


@cli.command()
@click.argument("node")
@click.option("--ref", default="main", show_default=True, help="The version to read from.")
@click.option("--partition", default=None, help="The partition key, for partitioned nodes.")
@click.option(
    "--decode",
    is_flag=True,
    help="Print JSON pretty-printed (a JSON string as its text), text as text.",
)
@pass_catalog
@domain_errors
def cat(context: CatalogContext, node: str, ref: str, partition: str | None, decode: bool) -> None:
    """Write a node's stored bytes (verified) to stdout.

    \b
    Example:
      orchestrator cat sales/orders --ref prod --decode
    """
    catalog = context.existing
    artifact = catalog.refs.resolve(ref)
    document = catalog.artifacts.resolve(artifact.id)
    entry = node_value(document, node, partition)
    if entry is None:
        raise core.NotFoundError(_no_value(document, node, partition, ref))
    if not decode:
        with catalog.cas.open_content(entry["cas_id"]) as verified:
            shutil.copyfileobj(verified, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    content = catalog.cas.get_content(entry["cas_id"])
    media_type = entry.get("media_type", "")
    try:
        if media_type == "application/json" or media_type.endswith("+json"):
            value = json.loads(content)
            if not isinstance(value, str):
                value = json.dumps(value, indent=2, ensure_ascii=False)
            click.echo(value)
        elif media_type.startswith("text/"):
            click.echo(content.decode())
        else:
            raise ValueError("not a JSON or text media type")
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise core.ValidationError(
            f"cannot decode node {node!r} ({media_type!r}) here: {exc}; drop --decode for "
            "the raw bytes"
        ) from None


def _no_value(document: dict[str, Any], node: str, partition: str | None, ref: str) -> str:
    """Why ``node`` (``partition``) has no value at ``ref``, and what to ask for instead."""
    spec = document.get("nodes", {}).get(node)
    if spec is None:
        return f"no node {node!r} at {ref!r}"
    partitions = sorted(spec.get("partitions", {}))
    if partition is None and partitions:
        return f"node {node!r} is partitioned: pass --partition (one of {', '.join(partitions)})"
    part = f" partition {partition!r}" if partition is not None else ""
    return f"node {node!r}{part} has no stored value at {ref!r}"


@cli.command()
@click.argument("ref1")
@click.argument("ref2")
@json_option
@pass_catalog
@domain_errors
def diff(context: CatalogContext, ref1: str, ref2: str, as_json: bool) -> None:
    """Show the nodes added, removed or changed from REF1 to REF2.

    \b
    Example:
      orchestrator diff main@{1} main
    """
    catalog = context.existing
    before, after = catalog.refs.resolve(ref1), catalog.refs.resolve(ref2)
    changes = catalog.workflows.diff(before.id, after.id)
    if as_json:
        emit_json(
            {
                "from": before.version_hash,
                "to": after.version_hash,
                "nodes": {
                    node: {
                        "change": change["change"],
                        "before_cas_id": (change["before"] or {}).get("cas_id"),
                        "after_cas_id": (change["after"] or {}).get("cas_id"),
                        "values": [
                            {"partition_key": key, "before_cas_id": old, "after_cas_id": new}
                            for key, old, new in value_changes(change["before"], change["after"])
                        ],
                        "before": change["before"],
                        "after": change["after"],
                    }
                    for node, change in changes.items()
                },
            }
        )
        return
    signs = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}
    for node, change in changes.items():
        sign, colour = signs[change["change"]]
        values = value_changes(change["before"], change["after"])
        if not values:  # a node without values, or only its dependencies changed
            note = "  (no stored value changed)" if change["change"] == "changed" else ""
            click.echo(click.style(f"{sign} {node}", fg=colour) + note)
        for partition, before_cas, after_cas in values:
            name = node if partition is None else f"{node} [{partition}]"
            cas = f"{short(before_cas)} -> {short(after_cas)}"
            click.echo(click.style(f"{sign} {name}", fg=colour) + f"  {cas}")


@cli.group(invoke_without_command=True)
@limit_option("runs")
@json_option
@click.pass_context
@domain_errors
def runs(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List recent runs (newest first); ``runs show RUN_ID`` for one.

    \b
    Example:
      orchestrator runs --limit 5
    """
    if ctx.invoked_subcommand is not None:
        return
    listed = ctx.ensure_object(CatalogContext).existing.runs.list_runs(limit=limit)
    if as_json:
        emit_json([run_json(run) for run in listed])
        return
    table(
        ["RUN", "JOB", "TAG", "STATUS", "STARTED", "FINISHED"],
        [
            [r.run_id, r.job_name or "-", r.tag, r.status, when(r.started_at), when(r.finished_at)]
            for r in listed
        ],
    )


@runs.command("show")
@click.argument("run_id")
@json_option
@pass_catalog
@domain_errors
def runs_show(context: CatalogContext, run_id: str, as_json: bool) -> None:
    """Show a run: its pinned base, status, how it publishes (its staged head and how
    publishing it ended, for publish="run"), and the values it produced and read.

    RUN_ID is a run's id or the first 8 or more characters of one, as the Dagster UI
    shows them.

    \b
    Example:
      orchestrator runs show 6f1c2a9e
    """
    catalog = context.existing
    run = catalog.runs.find_run(run_id)
    base = catalog.artifacts.get_by_id(run.base_id) if run.base_id else None
    head = catalog.artifacts.get_by_id(run.head_id) if run.head_id else None
    landed = run.outcome.to_target_id if run.outcome else None
    landed_version = catalog.artifacts.get_by_id(landed).version_hash if landed else None
    lineage = catalog.runs.get_run_io(run.run_id)
    outputs = [io for io in lineage if io.direction is core.Direction.OUTPUT]
    inputs = [io for io in lineage if io.direction is core.Direction.INPUT]
    if as_json:
        emit_json(
            {
                "run": run_json(run),
                "base_version": base.version_hash if base else None,
                "head_version": head.version_hash if head else None,
                "outputs": outputs,
                "inputs": inputs,
            }
        )
        return
    for label, value in [
        ("run", run.run_id),
        ("job", run.job_name or "-"),
        ("tag", run.tag),
        ("base", base.version_hash if base else "- (the tag did not exist)"),
        ("status", run.status),
        ("publish", run.publish.value),
        *(
            [
                ("head", head.version_hash if head else "- (nothing staged: at its base)"),
                ("outcome", outcome_text(run.outcome, landed_version)),
            ]
            if run.publish is core.PublishMode.RUN
            else []
        ),
        ("started", when(run.started_at)),
        ("finished", when(run.finished_at)),
    ]:
        click.echo(f"{click.style(label.ljust(9), bold=True)}{value}")
    for title, rows in (("outputs", outputs), ("inputs", inputs)):
        click.echo(f"\n{title}:")
        table(
            ["NODE", "PARTITION", "CAS ID", "SIZE", "MEDIA TYPE"],
            [
                [io.node, io.partition_key or "-", short(io.cas_id), io.size, io.media_type]
                for io in rows
            ],
            colours={2: "yellow"},
        )
