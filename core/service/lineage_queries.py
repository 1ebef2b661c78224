"""Lineage you can ask for: where each value of a version comes from (``blame``) and
which runs produced and read a blob (``of_blob``).

"Since" (the version a value first appeared in) is the oldest version on the blamed
version's first-parent line from which that node, or partition, held the same cas id
without a break up to the blamed version: what ``git blame --first-parent`` reports for a
line. A value that went ``X -> Y -> X`` is blamed on the version that brought ``X`` back; a
value a merge (or a ``publish="run"`` publish that merged) brought in is blamed on the
merge version; a fast-forwarded publish keeps the run's staged versions, so its values
are blamed on them.

Finding it walks down the first-parent line, comparing each version's value with its
parent's, and stops as soon as every value's streak has ended: one read of a version
per step (documents replay from the resolution cache, a whole patch chain at a time),
never past the oldest streak's start. ``blob_refs`` cannot shorten the walk exactly:
its rows are per node, not per partition, and every full version (one per compaction
bound of commits) names every blob, so telling whether one changed a value needs its
parent's document all the same (``docs/lineage.md``).
"""

from typing import Any

from core.domain import (
    Artifact,
    Blame,
    BlameEntry,
    BlobLineage,
    BlobUse,
    Direction,
    Run,
    RunIO,
)
from core.errors import NotFoundError
from core.identifiers import check_cas_id, check_limit
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution
from core.service.ref import RefService
from core.storage.uow import UnitOfWorkFactory

Slot = tuple[str, str | None]
"""A node and partition key (``None``: the node's own value)."""

WALK_PAGE = 256
"""First parents read per transaction while blaming (DuckDB serves one process at a time)."""


def slot_values(document: dict[str, Any]) -> dict[Slot, dict[str, Any]]:
    """Every stored value of a DAG document, by node and partition, in that order."""
    found: dict[Slot, dict[str, Any]] = {}
    for node_id in sorted(document.get("nodes", {})):
        node = document["nodes"][node_id]
        if isinstance(node.get("cas_id"), str):
            found[(node_id, None)] = node
        for key in sorted(node.get("partitions", {})):
            entry = node["partitions"][key]
            if isinstance(entry, dict) and isinstance(entry.get("cas_id"), str):
                found[(node_id, key)] = entry
    return found


def _cas_id_at(document: dict[str, Any], slot: Slot) -> object:
    node = document.get("nodes", {}).get(slot[0])
    if not isinstance(node, dict):
        return None
    entry = node if slot[1] is None else node.get("partitions", {}).get(slot[1])
    return entry.get("cas_id") if isinstance(entry, dict) else None


class LineageQueries:
    """Read-only questions about where values come from; every lookup of ``run_io`` goes
    through its index on ``cas_id``."""

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        artifacts: ArtifactResolution,
        refs: RefService,
    ) -> None:
        self._uow = uow
        self._artifacts = artifacts
        self._refs = refs

    def blame(self, ref: str) -> Blame:
        """Each node and partition value of the version ``ref`` names: since which
        version it has held these bytes, and the earliest run that produced them."""
        version = self._refs.resolve(ref)
        with self._uow() as uow:
            document = self._artifacts.resolve_in(uow, version.id)
            uow.commit()
        values = slot_values(document)
        since = self._since(version, {slot: entry["cas_id"] for slot, entry in values.items()})
        with self._uow() as uow:
            outputs = {
                slot: uow.run_io.first_output(slot[0], slot[1], entry["cas_id"])
                for slot, entry in values.items()
            }
            runs = uow.runs.get_many([io.run_id for io in outputs.values() if io is not None])
            uow.commit()
        entries = tuple(
            BlameEntry(
                node=node,
                partition_key=key,
                cas_id=entry["cas_id"],
                media_type=entry.get("media_type"),
                size=entry.get("size"),
                since=since[(node, key)],
                produced_by=_use(outputs[(node, key)], runs),
            )
            for (node, key), entry in values.items()
        )
        return Blame(ref=ref, version=version, entries=entries)

    def _since(self, head: Artifact, streaks: dict[Slot, str]) -> dict[Slot, Artifact]:
        """For each slot holding a cas id at ``head`` (``streaks``, emptied), the oldest
        version of its unbroken streak, walking first parents down from ``head`` a page
        per transaction until every streak has ended."""
        found: dict[Slot, Artifact] = {}
        child = head
        while child.parent_id is not None and streaks:
            with self._uow() as uow:
                page = uow.artifacts.ancestry(child.parent_id, WALK_PAGE)
                if not page:
                    raise NotFoundError(f"artifact {child.parent_id} not found")
                for parent in page:
                    document = self._artifacts.resolve_in(uow, parent.id)
                    for slot, cas_id in list(streaks.items()):
                        if _cas_id_at(document, slot) != cas_id:
                            found[slot] = child
                            del streaks[slot]
                    child = parent
                    if not streaks:
                        break
                uow.commit()
        for slot in streaks:  # held since the line's first version
            found[slot] = child
        return found

    def of_blob(self, cas_id: str, *, limit: int = 100) -> BlobLineage:
        """The runs that produced ``cas_id`` and the runs that read it (the first
        ``limit`` of each, oldest first), with each run's tag."""
        check_cas_id(cas_id)
        check_limit(limit)
        with self._uow() as uow:
            blob = uow.blobs.get(cas_id)
            if blob is None:
                raise NotFoundError(f"blob {cas_id} not found")
            produced = uow.run_io.of_blob(cas_id, Direction.OUTPUT, limit)
            read = uow.run_io.of_blob(cas_id, Direction.INPUT, limit)
            runs = uow.runs.get_many([io.run_id for io in produced + read])
            uow.commit()
        return BlobLineage(
            blob=blob,
            produced_by=tuple(use for io in produced if (use := _use(io, runs))),
            read_by=tuple(use for io in read if (use := _use(io, runs))),
        )


def _use(io: RunIO | None, runs: dict[str, Run]) -> BlobUse | None:
    """``io`` with its run's tag, job, status and publish mode."""
    if io is None:
        return None
    run = runs[io.run_id]  # run_io rows reference their run
    return BlobUse(
        run_id=io.run_id,
        direction=io.direction,
        node=io.node,
        partition_key=io.partition_key,
        recorded_at=io.recorded_at,
        tag=run.tag,
        job_name=run.job_name,
        status=run.status,
        publish=run.publish,
    )
