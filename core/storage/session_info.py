"""The keys of what a transaction's session carries in ``session.info``.

``MEMO``: on DuckDB, the lease's memo (facts that stay true while this process holds the
file). ``SETTLE``: work started in the transaction that must finish before it ends.
``AFTER_COMMIT``: calls to make once it has committed. ``PENDING``: in a deferred
transaction only, the writes journaled but not yet in the DuckDB file
(``core.storage.duckdb.pending``); repositories stage their writes there instead of running
them.
"""

from collections.abc import Callable

MEMO = "tenure_memo"
SETTLE = "settle"
Settle = Callable[[bool], None]
"""Finishes work a transaction started: ``True`` before it commits, ``False`` after a rollback."""
AFTER_COMMIT = "after_commit"
PENDING = "pending_writes"
PENDING_AWARE = "pending_aware"
"""The execution option of a read that a deferred transaction may run: one that looks at
the pending writes itself, or whose answer they cannot change."""
