"""The domain error tree.

Every error the core raises on purpose is an ``OrchestratorError``::

    OrchestratorError
    ├── NotFoundError        an id, hash or tag that does not exist
    ├── ConflictError        a compare-and-swap lost (or an expectation did not hold)
    │   ├── MergeConflictError  both sides of a merge changed one value differently
    │   └── PolicyError      a tag policy refused the move
    ├── ValidationError      bad input, rejected before anything changed
    ├── IntegrityError       stored bytes do not match their content id
    ├── StorageBusyError     the database stayed locked past the retry budget
    └── StorageUnavailableError  the database cannot be reached or its files used
        └── TransactionLostError  a transaction dropped before its commit: run it again

Messages always name the offending value, so adapters can show them as they are.
"""


class OrchestratorError(Exception):
    """Base class of every domain error."""


class NotFoundError(OrchestratorError):
    """The named artifact, blob, tag or run does not exist."""


class ConflictError(OrchestratorError):
    """A compare-and-swap lost: the state changed since the caller last read it."""


class MergeConflictError(ConflictError):
    """A three-way merge found values both sides changed, to different values; nothing
    moved. ``conflicts`` names each (node, partition key), ``None`` for a whole node."""

    def __init__(self, message: str, conflicts: list[tuple[str, str | None]]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


class PolicyError(ConflictError):
    """A tag policy (``immutable`` or ``protected``) refused a move; nothing changed.
    ``tag`` is the tag, ``pattern`` the policy's pattern that governs it."""

    def __init__(self, message: str, *, tag: str, pattern: str) -> None:
        super().__init__(message)
        self.tag = tag
        self.pattern = pattern


class ValidationError(OrchestratorError, ValueError):
    """The input is malformed; nothing was changed."""


class IntegrityError(OrchestratorError):
    """Bytes on disk do not hash to the id they are stored under."""


class StorageBusyError(OrchestratorError):
    """The database stayed locked by other processes past the retry budget."""


class StorageUnavailableError(OrchestratorError):
    """The database server cannot be reached (down, a wrong address, refused credentials),
    or the catalog's files cannot be used (not regular files, a journal that does not fit)."""


class TransactionLostError(StorageUnavailableError):
    """The database server dropped a transaction before its commit was sent (a broken
    connection, a server shutting down): nothing of it was kept, so it can run again."""
