"""Write commands: tag create|move|delete, rollback, workflow create|get|patch."""

import json
from pathlib import Path
from typing import Any

import click

import core
from core.cli.app import CatalogContext, cli, domain_errors, pass_catalog
from core.cli.output import emit_json

by_option = click.option("--by", "moved_by", default=None, help="Who makes the move (history).")


MAX_INPUT_BYTES = 64 * 1024 * 1024
"""The largest DAG document or patch file read (``/dev/zero`` would never end)."""


def read_json(path: Path) -> Any:
    """The JSON value in ``path`` (a file, or a pipe such as ``<(...)``), at most
    ``MAX_INPUT_BYTES`` long."""
    try:
        with path.open("rb") as handle:
            content = handle.read(MAX_INPUT_BYTES + 1)
        if len(content) > MAX_INPUT_BYTES:
            raise core.ValidationError(
                f"cannot read JSON from {str(path)!r}: longer than {MAX_INPUT_BYTES} bytes"
            )
        return json.loads(content.decode())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise core.ValidationError(f"cannot read JSON from {str(path)!r}: {exc}") from exc


def tag_json(tag: core.Tag, catalog: core.Services) -> dict[str, Any]:
    return {
        "name": tag.name,
        "target_id": tag.target_id,
        "version_hash": catalog.artifacts.get_by_id(tag.target_id).version_hash,
        "revision": tag.revision,
    }


@cli.group()
def tag() -> None:
    """Create, move or delete a tag (compare-and-swap with --expect).

    \b
    Example:
      orchestrator tag move prod main --expect prod@{0}
    """


@tag.command("create")
@click.argument("name")
@click.argument("ref")
@click.option("--reason", default=None, help="Why (recorded in the history).")
@by_option
@pass_catalog
@domain_errors
def tag_create(
    context: CatalogContext, name: str, ref: str, reason: str | None, moved_by: str | None
) -> None:
    """Create NAME at REF (exit 4 if NAME exists).

    \b
    Example:
      orchestrator tag create v1.4 main
    """
    catalog = context.existing
    target = catalog.refs.resolve(ref)
    emit_json(
        tag_json(
            catalog.tags.create_tag(name, target.id, moved_by=moved_by, reason=reason), catalog
        )
    )


@tag.command("move")
@click.argument("name")
@click.argument("ref")
@click.option("--expect", default=None, help="Move only if NAME points at this ref now.")
@click.option("--reason", default=None, help="Why (recorded in the history).")
@by_option
@pass_catalog
@domain_errors
def tag_move(
    context: CatalogContext,
    name: str,
    ref: str,
    expect: str | None,
    reason: str | None,
    moved_by: str | None,
) -> None:
    """Move NAME to REF; with --expect, a compare-and-swap (exit 4 if it lost).

    \b
    Example:
      orchestrator tag move prod main --expect sha256:3f2a9c1e
    """
    catalog = context.existing
    target = catalog.refs.resolve(ref)
    moved: core.Tag | None
    if expect is None:
        moved = catalog.tags.move_tag(name, target.id, moved_by=moved_by, reason=reason)
    else:
        expected = catalog.refs.resolve(expect).id
        moved = catalog.tags.move_if_at(name, expected, target.id, moved_by=moved_by, reason=reason)
        assert moved is not None
    emit_json(tag_json(moved, catalog))


@tag.command("delete")
@click.argument("name")
@click.option("--expect", default=None, help="Delete only if NAME points at this ref now.")
@click.option("--reason", default=None, help="Why (recorded in the history).")
@by_option
@pass_catalog
@domain_errors
def tag_delete(
    context: CatalogContext,
    name: str,
    expect: str | None,
    reason: str | None,
    moved_by: str | None,
) -> None:
    """Delete NAME (its history stays).

    \b
    Example:
      orchestrator tag delete scratch/try-1
    """
    catalog = context.existing
    if expect is None:
        catalog.tags.delete_tag(name, moved_by=moved_by, reason=reason)
    else:
        expected = catalog.refs.resolve(expect).id
        catalog.tags.move_if_at(name, expected, None, moved_by=moved_by, reason=reason)
    emit_json({"name": name, "deleted": True})


@cli.command()
@click.argument("tag_name", metavar="TAG")
@click.option(
    "--to", "to_ref", default=None, help="Target (default: TAG@{1}, before the last move)."
)
@by_option
@pass_catalog
@domain_errors
def rollback(
    context: CatalogContext, tag_name: str, to_ref: str | None, moved_by: str | None
) -> None:
    """Move TAG back (a compare-and-swap recorded with reason 'rollback').

    \b
    Example:
      orchestrator rollback main            # undo the last move of main
      orchestrator rollback prod --to v1.3
    """
    catalog = context.existing
    target = None if to_ref is None else catalog.refs.resolve(to_ref).id
    emit_json(tag_json(catalog.tags.rollback(tag_name, target, moved_by=moved_by), catalog))


@cli.group()
def workflow() -> None:
    """Create, read or patch a workflow's DAG document.

    \b
    Example:
      orchestrator workflow get main
    """


@workflow.command("create")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="The workflow's name.")
@click.option("--tag", "tag_name", default="main", show_default=True, help="The tag to move.")
@click.option("--expect-revision", type=int, default=None, help="Compare-and-swap on revision.")
@click.option("--message", default=None, help="Why (recorded in the history).")
@by_option
@pass_catalog
@domain_errors
def workflow_create(
    context: CatalogContext,
    file: Path,
    name: str,
    tag_name: str,
    expect_revision: int | None,
    message: str | None,
    moved_by: str | None,
) -> None:
    """Store the DAG document in FILE as a new version and move the tag to it.

    \b
    Example:
      orchestrator workflow create dag.json --name sales --tag main
    """
    request = core.CreateWorkflowRequest(
        name,
        read_json(file),
        tag=tag_name,
        expected_revision=expect_revision,
        created_by=moved_by,
        message=message,
    )
    emit_json(context.catalog.workflows.create_workflow(request))


@workflow.command("get")
@click.argument("tag_name", metavar="TAG")
@pass_catalog
@domain_errors
def workflow_get(context: CatalogContext, tag_name: str) -> None:
    """Print the resolved DAG document TAG points at.

    \b
    Example:
      orchestrator workflow get main > dag.json
    """
    emit_json(context.existing.workflows.get_workflow_by_tag(tag_name))


@workflow.command("patch")
@click.argument("tag_name", metavar="TAG")
@click.argument("patch_file", metavar="PATCH.json", type=click.Path(path_type=Path))
@click.option("--expect-revision", type=int, default=None, help="Compare-and-swap on revision.")
@click.option("--message", default=None, help="Why (recorded in the history).")
@by_option
@pass_catalog
@domain_errors
def workflow_patch(
    context: CatalogContext,
    tag_name: str,
    patch_file: Path,
    expect_revision: int | None,
    message: str | None,
    moved_by: str | None,
) -> None:
    """Apply the RFC 6902 JSON Patch in PATCH.json to TAG's document.

    \b
    Example:
      orchestrator workflow patch main add-node.json --expect-revision 7
    """
    emit_json(
        context.existing.workflows.patch_workflow(
            tag_name,
            read_json(patch_file),
            expected_revision=expect_revision,
            created_by=moved_by,
            message=message,
        )
    )
