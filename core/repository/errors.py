"""SQLAlchemy's integrity errors, translated once at the repository edge."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

from core.errors import ConflictError

P = ParamSpec("P")
R = TypeVar("R")


def conflicts_on_integrity_errors(write: Callable[P, R]) -> Callable[P, R]:
    """A write that broke a key or reference raced another writer: a ``ConflictError``."""

    @functools.wraps(write)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return write(*args, **kwargs)
        except sa_exc.IntegrityError as exc:
            raise ConflictError(
                f"{write.__qualname__} lost a race with a concurrent writer: {exc.orig}"
            ) from exc

    return wrapper
