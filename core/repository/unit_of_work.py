"""The unit of work: the repositories that share one open transaction."""

from sqlalchemy.orm import Session

from core.repository.artifact import ArtifactRepository
from core.repository.cas_blob import CasBlobRepository
from core.repository.run import RunIORepository, RunRepository
from core.repository.tag import TagRepository
from core.storage.session_info import SETTLE, Settle


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
