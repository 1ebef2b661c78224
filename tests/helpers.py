"""Helpers shared by the tests (not fixtures)."""

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

import core

TABLES = ("cas_blobs", "artifacts", "tags", "tag_moves", "runs")


def row_counts(catalog: core.Services) -> dict[str, int]:
    """How many rows each catalog table holds (to prove bad input changed nothing)."""
    with catalog.database.transaction() as session:
        return {table: session.scalar(sa.text(f"SELECT count(*) FROM {table}")) for table in TABLES}


def statements_sent(catalog: core.Services) -> list[str]:
    """A list that fills with every statement the catalog sends from now on."""
    sent: list[str] = []
    event.listen(
        catalog.database.engine,
        "before_cursor_execute",
        lambda _c, _cursor, statement, *_: sent.append(statement),
    )
    return sent


def blob_files(catalog: core.Services) -> list[Path]:
    return sorted(p for p in (catalog.blob_root / "sha256").rglob("*") if p.is_file())


DAG = {
    "nodes": {
        "raw": {"deps": []},
        "clean": {"deps": ["raw"]},
        "report": {"deps": ["clean"], "owner": "analytics"},
    }
}
