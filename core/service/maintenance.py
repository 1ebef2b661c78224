"""Garbage collection and verification of the blob store.

``gc`` removes blobs nothing references and nobody stored during the grace period. A
blob is deleted in a transaction that re-checks, under the database's locks, that nothing
references it, moves its file aside, and puts the file back if it was stored again
meanwhile (storing an existing blob touches its file). So a blob referenced by a commit
that lands while ``gc`` runs is never lost.
"""

import contextlib
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from core.dag import referenced_cas_ids
from core.domain import BlobProblem, GcReport, VerifyReport
from core.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    StorageUnavailableError,
    ValidationError,
)
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution
from core.service.tag import TagService
from core.storage.blobs import BlobStore, hash_stream
from core.storage.uow import UnitOfWorkFactory

Progress = Callable[[int, int], None]
"""Called with (done, total) as work advances, between two blobs: an exception it raises
(``KeyboardInterrupt`` on Ctrl-C) stops the work there, with nothing half done."""

ORPHAN_FILE_MIN_AGE = timedelta(hours=1)
"""Files with no catalog entry are younger than this while their writer still records them."""
MAX_GRACE = timedelta(days=36525)
"""The longest grace period ``gc`` takes (a century)."""


class _StoredAgain(Exception):
    """The blob was stored again while being collected; keep it."""


def _no_progress(done: int, total: int) -> None:
    return None


class MaintenanceService:
    """Keeps the blob store lean (``gc``) and honest (``verify``)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        blobs: BlobStore,
        artifacts: ArtifactResolution,
        tags: TagService,
    ) -> None:
        self._uow = uow
        self._blobs = blobs
        self._artifacts = artifacts
        self._tags = tags

    def gc(
        self,
        grace: timedelta = timedelta(hours=1),
        *,
        dry_run: bool = False,
        progress: Progress = _no_progress,
    ) -> GcReport:
        """Remove unreferenced blobs older than ``grace`` (never one stored after ``gc`` began),
        and publish requests left an hour or more ago by publishers that died."""
        if not isinstance(grace, timedelta) or not timedelta(0) <= grace <= MAX_GRACE:
            raise ValidationError(
                f"invalid grace period {grace}: expected 0 to {MAX_GRACE.days} days"
            )
        started = datetime.now(UTC)
        cutoff = started - grace
        stored = list(self._blobs.stored_ids())  # walk the disk before taking the lock
        with self._uow() as uow:
            candidates = uow.blobs.unreferenced()
            cataloged = uow.blobs.known(stored)
            uow.commit()
        orphan_cutoff = started - max(grace, ORPHAN_FILE_MIN_AGE)
        files_without_row = [cas_id for cas_id in stored if cas_id not in cataloged]
        orphans = [cas_id for cas_id in files_without_row if self._older(cas_id, orphan_cutoff)]
        removed, removed_bytes = [], 0
        kept = len(files_without_row) - len(orphans)  # young: their writers may record them
        total = len(candidates) + len(orphans)
        for done, (cas_id, size, recorded_at) in enumerate(
            [(blob.cas_id, blob.size, blob.created_at) for blob in candidates]
            + [(cas_id, self._blobs.size(cas_id) or 0, None) for cas_id in orphans],
            start=1,
        ):  # an orphan has no row, and its file is older than ``orphan_cutoff`` already
            recent = recorded_at is not None and recorded_at >= cutoff
            if recent or not self._older(cas_id, cutoff):
                kept += 1
            elif dry_run or self._collect(cas_id, cutoff):
                removed.append(cas_id)
                removed_bytes += size
            progress(done, total)
        if not dry_run:
            self._sweep_temporary_files(orphan_cutoff)
            with self._uow() as uow:  # left by publishers that died while they waited
                uow.publish_requests.forget_abandoned(orphan_cutoff)
                uow.commit()
        return GcReport(removed, removed_bytes, kept, dry_run)

    def verify(self, *, progress: Progress = _no_progress) -> VerifyReport:
        """Re-hash every referenced blob; report the missing and corrupt ones.

        A corrupt file is set aside (as a read does), so that storing the same bytes
        again repairs the blob.
        """
        with self._uow() as uow:
            referenced = list(uow.blobs.referenced())
            uow.commit()
        problems: dict[str, str] = {}
        for done, blob in enumerate(referenced, start=1):
            try:
                with self._blobs.open(blob.cas_id) as handle:
                    if hash_stream(handle) != blob.cas_id:
                        problems[blob.cas_id] = "corrupt"
                        with contextlib.suppress(StorageUnavailableError):  # read-only: stays
                            self._blobs.set_aside(blob.cas_id, handle)
            except FileNotFoundError:
                problems[blob.cas_id] = "missing"
            progress(done, len(referenced))
        if not problems:
            return VerifyReport(len(referenced), [])
        reach = self._tag_reach()
        with self._uow() as uow:
            report = [
                BlobProblem(
                    cas_id,
                    problem,
                    uow.artifacts.referencing(cas_id),
                    sorted(tag for tag, cas_ids in reach.items() if cas_id in cas_ids),
                )
                for cas_id, problem in sorted(problems.items())
            ]
            uow.commit()
        return VerifyReport(len(referenced), report)

    def _collect(self, cas_id: str, cutoff: datetime) -> bool:
        """Delete one blob if nothing references it and nobody stored it since ``cutoff``;
        whether this call removed it (its catalog entry or its file), so that concurrent
        collections count each blob once.

        The file is moved aside inside the transaction that deletes the entry, and put
        back unless that transaction commits, whatever stops it (a read-only folder, a
        lost race, an interrupt): never an entry without its bytes.
        """
        quarantined: str | None = None
        try:
            with self._uow() as uow:
                deleted = uow.blobs.delete_if_unreferenced(cas_id)
                if not deleted and uow.blobs.get(cas_id):
                    return False  # referenced after all
                moved = self._blobs.quarantine(cas_id)  # None: gone (another gc took it)
                if moved is not None:
                    quarantined, modified = moved
                    if modified >= cutoff.timestamp():
                        raise _StoredAgain
                uow.commit()
        except (_StoredAgain, ConflictError):  # stored again, or a commit referenced it
            if quarantined is not None:
                self._blobs.restore(cas_id, quarantined)
            return False
        except BaseException:
            if quarantined is not None:
                self._blobs.restore(cas_id, quarantined)
            raise
        if quarantined is not None:
            self._blobs.discard(quarantined)
        return deleted or quarantined is not None

    def _older(self, cas_id: str, cutoff: datetime) -> bool:
        modified = self._blobs.modified_at(cas_id)
        return modified is None or modified < cutoff.timestamp()

    def _sweep_temporary_files(self, cutoff: datetime) -> None:
        for location, modified in self._blobs.temporary_files():
            if modified < cutoff.timestamp():
                self._blobs.discard(location)

    def _tag_reach(self) -> dict[str, set[str]]:
        """Per tag, the blobs it needs: its chain's contents and its document's values."""
        reach: dict[str, set[str]] = {}
        for tag in self._tags.list_tags():
            chain = self._artifacts.get_patch_chain(tag.target_id)
            needed = {artifact.cas_id for artifact in chain}
            with contextlib.suppress(IntegrityError, NotFoundError):  # broken: see ``needed``
                needed |= referenced_cas_ids(self._artifacts.resolve(tag.target_id))
            reach[tag.name] = needed
        return reach


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``7d`` (or plain seconds), at most ``MAX_GRACE``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_GRACE.total_seconds():  # NaN and infinities fail this too
        raise ValidationError(
            f"invalid duration {text!r}: expected e.g. 30s, 15m, 1h or 7d, "
            f"at most {MAX_GRACE.days} days"
        )
    return timedelta(seconds=seconds)
