"""The unit of work: one transaction and the repositories that share it."""

import contextlib
from collections.abc import Iterator

from sqlalchemy.orm import Session

from core.db import SETTLE, Database, Settle
from core.repository import (
    ArtifactRepository,
    CasBlobRepository,
    RunIORepository,
    RunRepository,
    TagRepository,
)


class UnitOfWork:
    """Repositories bound to one open transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.blobs = CasBlobRepository(session)
        self.artifacts = ArtifactRepository(session)
        self.tags = TagRepository(session)
        self.runs = RunRepository(session)
        self.run_io = RunIORepository(session)

    def on_end(self, settle: Settle) -> None:
        """Have the transaction call ``settle(True)`` before it commits (an exception
        stops the commit) or ``settle(False)`` after it rolled back."""
        self._session.info[SETTLE].append(settle)


class UnitOfWorkFactory:
    """``with uow() as work: ...`` commits when the outermost block exits cleanly and
    rolls back on any exception. Nested blocks in one thread join the outer transaction,
    so a use case that calls other services still commits once, all or nothing."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def nested(self) -> bool:
        """Whether a block opened now would join an enclosing transaction."""
        return self._db.in_transaction

    @contextlib.contextmanager
    def __call__(self) -> Iterator[UnitOfWork]:
        with self._db.transaction() as session:
            yield UnitOfWork(session)
