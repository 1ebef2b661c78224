"""Landing commands: merge a version into a tag, publish a ``publish="run"`` run."""

import uuid
from collections.abc import Sequence
from typing import Any

import click

import core
from core.cli.app import CatalogContext, cli, domain_errors, pass_catalog
from core.cli.output import conflict_names, conflicts_json, emit_json, table
from core.cli.read import json_option
from core.cli.write import by_option
from core.dag import changed_nodes

reason_option = click.option("--reason", default=None, help="Why (recorded in the history).")


def _version(catalog: core.Services, artifact_id: uuid.UUID | None) -> str | None:
    return None if artifact_id is None else catalog.artifacts.get_by_id(artifact_id).version_hash


def _labelled(rows: Sequence[tuple[str, object]]) -> None:
    for label, value in rows:
        click.echo(f"{click.style(label.ljust(9), bold=True)}{value}")


def _conflicts_out(
    error: core.MergeConflictError, as_json: bool, identity: dict[str, Any]
) -> core.MergeConflictError:
    """Print the conflicts (a table, or JSON with ``identity``); the error to raise."""
    if as_json:
        emit_json({**identity, "changed": False, "conflicts": conflicts_json(error.conflicts)})
    else:
        click.echo("conflicts:")
        table(
            ["NODE", "PARTITION"],
            [[node, "-" if key is None else key] for node, key in error.conflicts],
            colours={0: "red"},
        )
    return error


@cli.command()
@click.argument("source")
@click.argument("into")
@click.option("--dry-run", is_flag=True, help="Only say what would merge; move nothing.")
@click.option("--expect", default=None, help="Merge only if INTO points at this ref now.")
@reason_option
@by_option
@json_option
@pass_catalog
@domain_errors
def merge(
    context: CatalogContext,
    source: str,
    into: str,
    dry_run: bool,
    expect: str | None,
    reason: str | None,
    moved_by: str | None,
    as_json: bool,
) -> None:
    """Merge the version SOURCE (any ref) into the tag INTO, three-way, value by value.

    A fast-forward when INTO is an ancestor of SOURCE, else a merge version; nothing when
    INTO holds it already. Values both sides changed differently are conflicts: they are
    listed, nothing moves, and the exit status is 4 (with --dry-run too).

    \b
    Example:
      orchestrator merge branch/feature-x main --dry-run
      orchestrator merge run:6f1c2a9e-0000-4000-8000-000000000001 main --expect main
    """
    catalog = context.existing
    expected = None if expect is None else catalog.refs.resolve(expect).id
    identity = {"tag": into, "source": source, "dry_run": dry_run}
    if dry_run:
        preview = catalog.workflows.preview_merge(source, into)
        if expected is not None and preview.from_target_id != expected:
            raise core.ConflictError(
                f"tag {into!r} points at {preview.from_target_id}, not the expected "
                f"{expected} ({expect!r}); nothing moved (dry run)"
            )
        if preview.conflicts:
            raise _conflicts_out(
                core.MergeConflictError(
                    f"merging {source!r} into tag {into!r} would conflict on "
                    f"{conflict_names(preview.conflicts)}; nothing moved (dry run)",
                    list(preview.conflicts),
                ),
                as_json,
                identity,
            )
        from_id, to_id, revision = preview.from_target_id, None, None
        fast_forward, nodes = preview.fast_forward, sorted(preview.changed_nodes)
        changed = preview.changed
    else:
        try:
            result = catalog.workflows.merge(
                source, into, expected_target_id=expected, moved_by=moved_by, reason=reason
            )
        except core.MergeConflictError as error:
            raise _conflicts_out(error, as_json, identity) from None
        from_id, to_id, revision = result.from_target_id, result.to_target_id, result.revision
        fast_forward, changed = result.fast_forward, result.changed
        nodes = sorted(_changed_nodes(catalog, from_id, to_id)) if changed else []
    from_version, to_version = _version(catalog, from_id), _version(catalog, to_id)
    if as_json:
        emit_json(
            {
                **identity,
                "from_target_id": from_id,
                "from_version": from_version,
                "to_target_id": to_id,
                "to_version": to_version,
                "revision": revision,
                "fast_forward": fast_forward,
                "changed": changed,
                "changed_nodes": nodes,
            }
        )
        return
    how = "fast-forward" if fast_forward else "merge version" if changed else "nothing to merge"
    if dry_run:
        how = f"{how} (dry run: nothing moved)"
    rows: list[tuple[str, object]] = [
        ("tag", into),
        ("source", source),
        ("merge", how),
        ("from", from_version or "- (no tag yet)"),
    ]
    if not dry_run:
        rows += [("to", to_version or "-"), ("revision", revision)]
    rows.append(("changed", ", ".join(nodes) or "-"))
    _labelled(rows)


def _changed_nodes(
    catalog: core.Services, before: uuid.UUID | None, after: uuid.UUID | None
) -> frozenset[str]:
    """The nodes a move from ``before`` to ``after`` changed."""
    if after is None:
        return frozenset()
    old = {} if before is None else catalog.artifacts.resolve(before)
    return changed_nodes(old, catalog.artifacts.resolve(after))


@cli.command()
@click.argument("run_id", metavar="RUN")
@reason_option
@by_option
@json_option
@pass_catalog
@domain_errors
def publish(
    context: CatalogContext,
    run_id: str,
    reason: str | None,
    moved_by: str | None,
    as_json: bool,
) -> None:
    """Publish a publish="run" run by hand: its staged values land on its tag in one move.

    A fast-forward when the tag has not moved since the run started, else a merge
    version; nothing when it was published before or staged nothing. No check gate: you
    decide. Conflicts are listed, nothing moves, and the exit status is 4; a run that
    publishes each output as it goes (publish="output") is exit 2. RUN is a run's id or
    the first 8 or more characters of one, as for `runs show`.

    \b
    Example:
      orchestrator publish 6f1c2a9e --reason "checked by hand"
    """
    catalog = context.existing
    run = catalog.runs.find_run(run_id)
    try:
        published = catalog.runs.publish(run.run_id, moved_by=moved_by, reason=reason)
    except core.MergeConflictError as error:
        raise _conflicts_out(error, as_json, {"run_id": run.run_id, "tag": run.tag}) from None
    from_version = _version(catalog, published.from_target_id)
    to_version = _version(catalog, published.to_target_id)
    if as_json:
        emit_json(
            {
                "run_id": published.run_id,
                "tag": published.tag,
                "from_target_id": published.from_target_id,
                "from_version": from_version,
                "to_target_id": published.to_target_id,
                "to_version": to_version,
                "revision": published.revision,
                "fast_forward": published.fast_forward,
                "changed": published.changed,
            }
        )
        return
    how = (
        "fast-forward"
        if published.fast_forward
        else "merge version"
        if published.changed
        else "nothing moved (published before, or nothing staged to land)"
    )
    _labelled(
        [
            ("run", published.run_id),
            ("tag", published.tag),
            ("publish", how),
            ("from", from_version or "- (no tag yet)"),
            ("to", to_version or "-"),
            ("revision", published.revision),
        ]
    )
