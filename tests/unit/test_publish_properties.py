"""Property: runs that change different values land on ``main`` the same whatever order
they publish in (the fake unit of work: the rule, not the storage)."""

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import core
from tests.support.fakes import fake_services

JSON = "application/json"
NODES = ["a", "b", "c", "d"]
KEYS = ["2026-01", "2026-02", "2026-03"]

# each run owns a set of (node, partition key) values no other run touches
Slot = tuple[str, str | None]
slots = st.sampled_from([(n, None) for n in NODES[:2]] + [(n, k) for n in NODES[2:] for k in KEYS])


@st.composite
def disjoint_runs(draw: st.DrawFn) -> list[list[tuple[Slot, bytes]]]:
    owned = draw(st.lists(slots, min_size=1, max_size=8, unique=True))
    count = draw(st.integers(min_value=1, max_value=min(4, len(owned))))
    runs: list[list[tuple[Slot, bytes]]] = [[] for _ in range(count)]
    for index, slot in enumerate(owned):
        content = draw(st.binary(min_size=1, max_size=4))
        runs[index % count].append((slot, content))
    return runs


def land(runs: list[list[tuple[Slot, bytes]]], order: list[int]) -> dict:
    """Stage every run on the same base, publish them in ``order``; main's document."""
    with tempfile.TemporaryDirectory() as folder:
        catalog = fake_services(Path(folder) / "blobs").services
        catalog.assets.commit_output("seed", "main", "a", b"seed", media_type=JSON)
        for index, values in enumerate(runs):
            catalog.runs.create_run(f"run-{index}", "main", publish="run")
            for (node, key), content in values:
                catalog.assets.commit_output(
                    f"run-{index}", "main", node, content, media_type=JSON, partition_key=key
                )
        for index in order:
            catalog.runs.publish(f"run-{index}")
            outcome = catalog.runs.get_run(f"run-{index}").outcome
            assert outcome is not None and outcome.state in (
                core.OutcomeState.PUBLISHED,
                core.OutcomeState.UNCHANGED,
            )
        return catalog.workflows.get_workflow_by_tag("main")


@settings(max_examples=25, deadline=None)
@given(runs=disjoint_runs(), data=st.data())
def test_non_conflicting_runs_land_the_same_in_any_order(
    runs: list[list[tuple[Slot, bytes]]], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(range(len(runs))))
    assert land(runs, list(order)) == land(runs, list(range(len(runs))))
