"""First-parent skip pointers: the insert rule, the span formula and the walk's length."""

import uuid

from core.storage.skip_list import SkipNode, skip_length, skip_nodes


def line(length: int) -> tuple[list[uuid.UUID], dict[uuid.UUID, SkipNode]]:
    ids = [uuid.uuid4() for _ in range(length)]
    nodes = skip_nodes(list(zip(ids, [None, *ids[:-1]], strict=True)))
    return ids, nodes


def test_the_span_of_every_pointer_follows_from_the_generation() -> None:
    ids, nodes = line(5000)
    generation_of = {artifact_id: g for g, artifact_id in enumerate(ids)}
    for generation, artifact_id in enumerate(ids):
        node = nodes[artifact_id]
        assert node.generation == generation
        assert generation - generation_of[node.skip_id] == skip_length(generation)


def walk(
    ids: list[uuid.UUID], nodes: dict[uuid.UUID, SkipNode], head: int, n: int
) -> tuple[int, int]:
    """The generation a walk of ``n`` first parents from ``ids[head]`` ends on, and its steps."""
    generation_of = {artifact_id: g for g, artifact_id in enumerate(ids)}
    at, target, steps = head, head - n, 0
    while at > target:
        skips_to = generation_of[nodes[ids[at]].skip_id]
        at = skips_to if skips_to >= target else at - 1
        steps += 1
    return at, steps


def test_a_walk_lands_on_the_right_generation_in_few_steps() -> None:
    ids, nodes = line(5000)
    for head in range(0, 5000, 97):
        for n in range(0, head + 1, 13):
            at, steps = walk(ids, nodes, head, n)
            assert at == head - n
            assert steps <= 3 * max(1, n.bit_length()), (head, n, steps)


def test_branches_keep_their_own_pointers() -> None:
    ids, nodes = line(10)
    side = [uuid.uuid4() for _ in range(5)]
    stored = dict(nodes)
    branch = skip_nodes(list(zip(side, [ids[6], *side[:-1]], strict=True)), stored.__getitem__)
    assert [branch[a].generation for a in side] == [7, 8, 9, 10, 11]
    for artifact_id in side:
        skip = branch[artifact_id].skip_id
        assert skip in ids[:7] or skip in side  # never onto the other branch
