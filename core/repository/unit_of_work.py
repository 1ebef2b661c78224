"""The unit of work: the repositories that share one open transaction, and its commit."""

from collections.abc import Callable
from typing import Any

from core.repository.artifact import ArtifactRepository
from core.repository.cas_blob import CasBlobRepository
from core.repository.commit_store import RepositoryCommitStore
from core.repository.publish_request import PublishRequestRepository
from core.repository.run import RunIORepository, RunRepository
from core.repository.tag import TagRepository
from core.repository.tag_policy import TagPolicyRepository
from core.storage.commit_record import CommitStore
from core.storage.session_info import Settle
from core.storage.uow import Publishes, Transaction


class UnitOfWork:
    """Repositories bound to one open transaction; ``commit()`` ends it (a unit of work
    that is not committed rolls back). ``commits`` takes decided commits: the storage's
    own store when the transaction has one, else one over these repositories."""

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction
        session = transaction.session
        self.blobs = CasBlobRepository(session)
        self.artifacts = ArtifactRepository(session)
        self.tags = TagRepository(session)
        self.runs = RunRepository(session)
        self.run_io = RunIORepository(session)
        self.tag_policies = TagPolicyRepository(session)
        self.publish_requests = PublishRequestRepository(session)
        self.commits: CommitStore = transaction.commit_store or RepositoryCommitStore(
            self.blobs, self.artifacts, self.tags, self.runs, self.run_io, self.tag_policies,
            postgres=session if session.get_bind().dialect.name == "postgresql" else None,
        )  # fmt: skip

    def commit(self) -> None:
        self._transaction.commit()

    def on_end(self, settle: Settle) -> None:
        """Have the transaction call ``settle(True)`` before it commits (an exception
        stops the commit) or ``settle(False)`` after it rolled back."""
        self._transaction.on_end(settle)

    def after_commit(self, call: Callable[[], None]) -> None:
        """Call ``call`` once the transaction commits; never, if it rolls back."""
        self._transaction.after_commit(call)

    def staged(self, cache: Publishes, *, create: bool = False) -> dict[Any, Any] | None:
        """The entries ``cache`` holds for this transaction until it commits."""
        return self._transaction.staged(cache, create=create)
