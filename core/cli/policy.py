"""Policy commands: policy set|show|list|delete|history (tag policies)."""

import click

import core
from core.cli.app import CatalogContext, cli, domain_errors, pass_catalog
from core.cli.output import emit_json, table, when
from core.cli.read import json_option


def _flags(immutable: bool | None, protected: bool | None) -> str:
    """``immutable``, ``protected``, both, ``-`` (neither) or ``none`` (no policy)."""
    if immutable is None:
        return "none"
    return (
        ", ".join(n for n, on in (("immutable", immutable), ("protected", protected)) if on) or "-"
    )


def _show(policies: list[core.TagPolicy]) -> None:
    table(
        ["PATTERN", "RULE", "UPDATED", "BY"],
        [[p.pattern, _flags(p.immutable, p.protected), when(p.updated_at), p.updated_by or "-"]
         for p in policies],
    )  # fmt: skip


@cli.group()
def policy() -> None:
    """Tag policies: which tags may move how.

    \b
    immutable: created once, never moved, swapped or deleted (release tags).
    protected: moved only by publish or merge, never by a direct move,
    compare-and-swap, rollback, delete or a publish="output" run.
    A refused move exits 6 and changes nothing. The most specific matching
    pattern governs a tag: the name itself, then the most literal characters.

    \b
    Example:
      orchestrator policy set 'v*' --immutable
    """


@policy.command("set")
@click.argument("pattern")
@click.option("--immutable", is_flag=True, help="Created once, never moved or deleted.")
@click.option("--protected", is_flag=True, help="Moved only by publish or merge.")
@click.option("--by", "moved_by", default=None, help="Who changes it (policy history).")
@pass_catalog
@domain_errors
def policy_set(
    context: CatalogContext, pattern: str, immutable: bool, protected: bool, moved_by: str | None
) -> None:
    """Set the policy of the tags matching PATTERN (a glob: *, ?, [...]); with neither
    flag, the names it matches are exempt from broader patterns.

    \b
    Example:
      orchestrator policy set main --protected --by ann
      orchestrator policy set 'release/*' --immutable
    """
    emit_json(
        context.catalog.tags.set_policy(
            pattern, immutable=immutable, protected=protected, moved_by=moved_by
        )
    )


@policy.command("show")
@click.argument("tag")
@pass_catalog
@domain_errors
def policy_show(context: CatalogContext, tag: str) -> None:
    """Print the policy that governs TAG (JSON; null when none does).

    \b
    Example:
      orchestrator policy show v1.4
    """
    emit_json(context.existing.tags.get_policy(tag))


@policy.command("list")
@json_option
@pass_catalog
@domain_errors
def policy_list(context: CatalogContext, as_json: bool) -> None:
    """List every policy, by pattern.

    \b
    Example:
      orchestrator policy list --json
    """
    policies = context.existing.tags.list_policies()
    if as_json:
        emit_json(policies)
    elif policies:
        _show(policies)
    else:
        click.echo("no tag policies")


@policy.command("delete")
@click.argument("pattern")
@click.option("--by", "moved_by", default=None, help="Who deletes it (policy history).")
@pass_catalog
@domain_errors
def policy_delete(context: CatalogContext, pattern: str, moved_by: str | None) -> None:
    """Delete the policy stored under exactly PATTERN (exit 3 if there is none).

    \b
    Example:
      orchestrator policy delete 'release/*'
    """
    context.existing.tags.delete_policy(pattern, moved_by=moved_by)
    emit_json({"pattern": pattern, "deleted": True})


@policy.command("history")
@click.argument("pattern", required=False)
@json_option
@pass_catalog
@domain_errors
def policy_history(context: CatalogContext, pattern: str | None, as_json: bool) -> None:
    """Show every change of every policy (or of PATTERN), oldest first.

    \b
    Example:
      orchestrator policy history main
    """
    changes = context.existing.tags.policy_history(pattern)
    if as_json:
        emit_json(changes)
        return
    table(
        ["ID", "PATTERN", "FROM", "TO", "CHANGED", "BY"],
        [
            [
                c.id,
                c.pattern,
                _flags(c.old_immutable, c.old_protected),
                _flags(c.new_immutable, c.new_protected),
                when(c.changed_at),
                c.changed_by or "-",
            ]
            for c in changes
        ],
    )
