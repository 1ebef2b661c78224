"""A measured figure beside its target, as every benchmark here prints it."""

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

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
