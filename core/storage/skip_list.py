"""First-parent skip pointers, so ``REF~N`` takes O(log N) steps however long the line.

Each artifact stores its ``generation`` (how many first parents lie below it) and a
``skip_id``: a first-parent ancestor chosen as in Myers' skew-binary random-access lists
("An applicative random-access stack", 1983). A walk down to a generation follows the
skip pointer whenever it does not overshoot, else the parent; both the insert and the
walk touch O(1) and O(log N) rows: the span of every skip pointer follows from the
generation alone (``skip_length``), so a walk decides each step from the row it is on.
"""

import uuid
from collections.abc import Callable
from typing import NamedTuple


class SkipNode(NamedTuple):
    generation: int
    skip_id: uuid.UUID


def skip_node(
    artifact_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    stored: Callable[[uuid.UUID], SkipNode],
) -> SkipNode:
    """The pointers of a new artifact, from its parent's (``stored`` reads a node).

    A first version skips to itself. Otherwise the new artifact skips over its parent's
    skip and that skip's skip when they span equal lengths (its ``skip_length`` is then
    more than 1), else to its parent.
    """
    if parent_id is None:
        return SkipNode(0, artifact_id)
    parent = stored(parent_id)
    generation = parent.generation + 1
    if skip_length(generation) == 1:
        return SkipNode(generation, parent_id)
    return SkipNode(generation, stored(parent.skip_id).skip_id)


def skip_length(generation: int) -> int:
    """How many generations an artifact's skip pointer spans (0 for a first version): the
    least term of ``generation`` written greedily as a sum of numbers 2**k - 1 (its
    skew-binary form), which the insert rule of ``skip_node`` yields."""
    last = 0
    while generation > 0:
        term = (1 << generation.bit_length()) - 1
        if term > generation:
            term >>= 1
        last, generation = term, generation - term
    return last


def skip_nodes(
    rows: list[tuple[uuid.UUID, uuid.UUID | None]],
    stored: Callable[[uuid.UUID], SkipNode] | None = None,
) -> dict[uuid.UUID, SkipNode]:
    """The pointers of new artifacts ``(id, parent id)``, each after its parent when both
    are new; ``stored`` reads the nodes of artifacts already stored (none: every parent
    is among ``rows``)."""
    known: dict[uuid.UUID, SkipNode] = {}

    def node(artifact_id: uuid.UUID) -> SkipNode:
        found = known.get(artifact_id)
        if found is None:
            if stored is None:
                raise AssertionError(f"artifact {artifact_id} comes before its parent")
            found = known[artifact_id] = stored(artifact_id)
        return found

    new: dict[uuid.UUID, SkipNode] = {}
    for artifact_id, parent_id in rows:
        new[artifact_id] = known[artifact_id] = skip_node(artifact_id, parent_id, node)
    return new
