"""What a transaction's session carries in ``session.info``, and the one signal the
storage gives its unit of work.

``MEMO``: on DuckDB, the lease's memo (facts that stay true while this process holds the
file). ``SETTLE``: work started in the transaction that must finish before it ends.
``AFTER_COMMIT``: calls to make once it has committed. ``COMMIT_STORE``: in a deferred
transaction only, the storage's own ``CommitStore`` (``core.storage.duckdb.write_behind``).
``SKIP_NODES``: the skip-list nodes (``core.storage.skip_list``) of artifacts the
transaction read along with a tag, or added, so that a version added on one does not read
them again.
"""

from collections.abc import Callable

MEMO = "tenure_memo"
SETTLE = "settle"
Settle = Callable[[bool], None]
"""Finishes work a transaction started: ``True`` before it commits, ``False`` after a rollback."""
AFTER_COMMIT = "after_commit"
COMMIT_STORE = "commit_store"
SKIP_NODES = "skip_nodes"


class NotDeferrable(Exception):
    """A deferred transaction met work it cannot write behind: the unit of work runs it
    again as an ordinary transaction (``core.storage.uow``). Never leaves the storage."""
