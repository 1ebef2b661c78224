"""SQLAlchemy's integrity errors, translated once at the repository edge."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

from core.errors import ConflictError, NotFoundError

P = ParamSpec("P")
R = TypeVar("R")

FOREIGN_KEY_VIOLATION = "23503"
"""Postgres' SQLSTATE for a broken reference (DuckDB says it in words)."""


def conflicts_on_integrity_errors(write: Callable[P, R]) -> Callable[P, R]:
    """A write that broke a key or reference raced another writer: a ``ConflictError``."""

    @functools.wraps(write)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return write(*args, **kwargs)
        except sa_exc.IntegrityError as exc:
            raise _lost_race(write, exc) from exc

    return wrapper


def missing_rows_not_found(write: Callable[P, R]) -> Callable[P, R]:
    """A write whose row names a row that does not exist (one the service did not check,
    or one a concurrent ``gc`` just removed): a ``NotFoundError``; a write that broke a
    key raced another writer: a ``ConflictError``."""

    @functools.wraps(write)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return write(*args, **kwargs)
        except sa_exc.IntegrityError as exc:
            text = str(exc.orig)
            if getattr(exc.orig, "sqlstate", None) == FOREIGN_KEY_VIOLATION or (
                "foreign key" in text and "does not exist" in text
            ):
                detail = " ".join(text.split())  # Postgres names the key on a DETAIL line
                raise NotFoundError(f"{write.__qualname__}: {detail}") from exc
            raise _lost_race(write, exc) from exc

    return wrapper


def _lost_race(write: Callable[..., object], exc: sa_exc.IntegrityError) -> ConflictError:
    return ConflictError(
        f"{write.__qualname__} lost a race with a concurrent writer: {_first_line(exc)}"
    )


def _first_line(exc: sa_exc.IntegrityError) -> str:
    return str(exc.orig).strip().splitlines()[0]
