"""How the command line prints: JSON for machines, tables for people."""

import json
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import click

HASH_WIDTH = 19
"""``sha256:`` plus 12 hex characters: how hashes are shortened in tables."""


def to_json(value: Any) -> Any:
    """Plain JSON for dataclasses, UUIDs, datetimes and enums (recursively)."""
    if is_dataclass(value) and not isinstance(value, type):
        return to_json(asdict(value))
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_json(item) for item in value]
        return sorted(items) if isinstance(value, set | frozenset) else items
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def conflicts_json(conflicts: Sequence[tuple[str, str | None]]) -> list[dict[str, str | None]]:
    """Merge conflicts as ``[{node, partition_key}]`` (``partition_key`` null: the node's
    own value or attributes)."""
    return [{"node": node, "partition_key": key} for node, key in conflicts]


def conflict_names(conflicts: Sequence[tuple[str, str | None]]) -> str:
    """``node[partition]`` (or ``node``) for each merge conflict, comma-separated."""
    return ", ".join(node if key is None else f"{node}[{key}]" for node, key in conflicts)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(to_json(value), indent=2, sort_keys=True))


def short(value: object) -> str:
    """A hash or id shortened for a table (``-`` for nothing)."""
    if value is None or value == "":
        return "-"
    text = str(value)
    return (
        text[:HASH_WIDTH] if text.startswith("sha256:") else text[:8] if len(text) == 36 else text
    )


def when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    colours: dict[int, str] | None = None,
) -> None:
    """Print rows as aligned columns fitted to the terminal (the widest are cut first)."""
    if not rows:
        return
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    room = shutil.get_terminal_size((120, 24)).columns - 2 * (len(widths) - 1)
    while sum(widths) > room:
        widest = max(range(len(widths)), key=lambda i: widths[i])
        if widths[widest] <= max(len(headers[widest]), 8):
            break
        widths[widest] -= 1
    colours = colours or {}

    def line(values: Sequence[str], style: Callable[[int, str], str]) -> str:
        parts = [style(i, value[: widths[i]].ljust(widths[i])) for i, value in enumerate(values)]
        return "  ".join(parts).rstrip()

    click.echo(line(headers, lambda i, text: click.style(text, bold=True)))
    for row in cells:
        click.echo(line(row, lambda i, text: click.style(text, fg=colours.get(i))))


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (when it is a terminal) fed by (done, total) callbacks."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    bar: Any = None
    shown = 0

    def update(done: int, total: int) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr)
            bar.__enter__()
        bar.update(done - shown)
        shown = done

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
