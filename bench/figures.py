"""A measured figure beside its target, as every benchmark here prints it."""

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class Figure:
    """One measured figure and its target: ``value <= target`` (or ``>=``) is OK."""

    name: str
    value: float
    target: float
    unit: str
    ok: bool
    direction: str = "<="


def figure(name: str, value: float, target: float, unit: str, direction: str = "<=") -> Figure:
    ok = value <= target if direction == "<=" else value >= target
    return Figure(name, round(value, 4), target, unit, ok, direction)


def format_figure(fig: Figure) -> str:
    suffix = "" if fig.unit == "ratio" else f" {fig.unit}"
    verdict = "OK" if fig.ok else "MISS"
    return (
        f"{fig.name}: {fig.value:.3f}{suffix} "
        f"(target {fig.direction} {fig.target:g}{suffix}) {verdict}"
    )


def dump_json(figures: list[Figure]) -> None:
    """The figures as a JSON list on stdout (what ``bench/run_all.py`` reads)."""
    json.dump([asdict(fig) for fig in figures], sys.stdout, indent=2)
    print()


def redact(url: str) -> str:
    """A database URL fit to print (no password)."""
    return make_url(url).render_as_string(hide_password=True)


def add_catalog_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dir``, ``--database-url`` and ``--json``, as every catalog benchmark takes them."""
    parser.add_argument("--dir", type=Path, help="parent of the temporary work directory")
    parser.add_argument(
        "--database-url", help="catalog database (default: a DuckDB file in the work directory)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


@contextlib.contextmanager
def work_directory(prefix: str, parent: Path | None) -> Iterator[Path]:
    """A temporary work directory (under ``parent`` if given), removed afterwards."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def catalog_url(database_url: str | None, work: Path) -> Iterator[str]:
    """Where a benchmark's catalog lives: a DuckDB file in ``work`` by default; for a
    Postgres URL a fresh schema ``bench_<hex>``, dropped afterwards, so runs never see
    each other's rows (a DuckDB URL is used as it is)."""
    if database_url is None:
        yield f"duckdb:///{work / 'catalog.duckdb'}"
        return
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        yield database_url
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                hide_password=False
            )
        finally:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def finish(figures: list[Figure], started: float, out: TextIO, as_json: bool) -> int:
    """Print the total wall time (and the figures as JSON when asked); exit status 0."""
    print(f"  raw total wall time: {time.perf_counter() - started:.1f} s", file=out)
    if as_json:
        dump_json(figures)
    return 0


T = TypeVar("T")


def interleave(
    rounds: int, first: Callable[[], T], second: Callable[[], T]
) -> tuple[list[T], list[T]]:
    """One unrecorded warm-up of each side, then ``rounds`` rounds alternating which goes
    first; each side's measurements."""
    first()
    second()
    first_values: list[T] = []
    second_values: list[T] = []
    for index in range(rounds):
        if index % 2 == 0:
            first_values.append(first())
            second_values.append(second())
        else:
            second_values.append(second())
            first_values.append(first())
    return first_values, second_values


def child_command(script: str, call: str) -> list[str]:
    """A command running ``call`` (``"name(args)"``) of the benchmark ``script`` (its
    ``__file__``) in a fresh interpreter started from ``-c``, not as the script:
    multiprocessing's spawned processes import their parent's main script again, and a
    benchmark script imports the catalog, which a baseline's step processes must not load."""
    path = Path(script).resolve()
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(path.parent)!r}); import {path.stem}; "
        f"{path.stem}.{call}",
    ]
