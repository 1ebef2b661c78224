"""A measured figure beside its target, as every benchmark here prints it."""

import json
import sys
from dataclasses import asdict, dataclass


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
