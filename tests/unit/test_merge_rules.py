"""Property: merging only the nodes ``theirs`` changed (``theirs_changed``, as a publish
does) gives what merging every node gives: the same document and the same conflicts; and
so does merging the base and ``theirs`` cut down to those nodes and sent as JSON (as a
queued publish is landed by another publisher)."""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.dag import canonical_json
from core.merge import changed_between, cut_to, merge_documents

NODES = ["a", "b", "c", "d", "e"]
values = st.sampled_from([1, 2, 1.0, True, "x"])


@st.composite
def node(draw: st.DrawFn, present: list[str]) -> dict[str, Any]:
    deps = draw(st.sets(st.sampled_from(present), max_size=2)) if present else set()
    body: dict[str, Any] = {"deps": sorted(deps)}
    if draw(st.booleans()):
        body["size"] = draw(values)
    if draw(st.booleans()):
        body["partitions"] = draw(
            st.dictionaries(st.sampled_from(["p1", "p2"]), st.fixed_dictionaries({"v": values}))
        )
    return body


@st.composite
def document(draw: st.DrawFn) -> dict[str, Any]:
    present = sorted(draw(st.sets(st.sampled_from(NODES), max_size=len(NODES))))
    nodes = {name: draw(node([other for other in present if other < name])) for name in present}
    return {"nodes": nodes, **draw(st.dictionaries(st.just("meta"), values))}


@st.composite
def changed(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with some nodes replaced, added or removed, still a valid DAG (nodes it
    keeps are the same objects, as a resolved document and its merge share them)."""
    other = draw(document())
    nodes = dict(base["nodes"])
    for name in draw(st.sets(st.sampled_from(NODES), max_size=3)):
        if name in other["nodes"]:
            nodes[name] = other["nodes"][name]
        else:
            nodes.pop(name, None)
    for name, body in list(nodes.items()):  # a dep on a removed node: drop the dep
        if any(dep not in nodes for dep in body["deps"]):
            nodes[name] = {**body, "deps": [dep for dep in body["deps"] if dep in nodes]}
    return {**base, "nodes": nodes}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_merging_the_changed_nodes_is_merging_them_all(data: st.DataObject) -> None:
    base = data.draw(document())
    ours, theirs = data.draw(changed(base)), data.draw(changed(base))
    whole, whole_conflicts = merge_documents(base, ours, theirs)
    part, part_conflicts = merge_documents(
        base, ours, theirs, theirs_changed=changed_between(base, theirs)
    )
    assert part_conflicts == whole_conflicts
    if not whole_conflicts:
        assert canonical_json(part) == canonical_json(whole)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_merging_the_cut_documents_is_merging_them_all(data: st.DataObject) -> None:
    base = data.draw(st.none() | document())
    ours = data.draw(changed(base or {"nodes": {}}))
    theirs = data.draw(changed(base or {"nodes": {}}))
    whole, whole_conflicts = merge_documents(base, ours, theirs)
    changes = changed_between(base, theirs)
    sent = json.loads(json.dumps([cut_to(base, changes), cut_to(theirs, changes)]))
    part, part_conflicts = merge_documents(sent[0], ours, sent[1], theirs_changed=changes)
    assert part_conflicts == whole_conflicts
    if not whole_conflicts:
        assert canonical_json(part) == canonical_json(whole)


def _both(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> tuple[dict[str, Any], list[Any]]:
    """The merge of the changed nodes, asserted equal to the merge of them all."""
    whole = merge_documents(base, ours, theirs)
    part = merge_documents(base, ours, theirs, theirs_changed=changed_between(base, theirs))
    assert part[1] == whole[1] and canonical_json(part[0]) == canonical_json(whole[0])
    return part


def test_a_value_changed_only_in_its_json_type_is_a_change() -> None:
    base = {"nodes": {"a": {"deps": [], "size": 1}}}
    theirs = {"nodes": {"a": {"deps": [], "size": 1.0}}}
    merged, conflicts = _both(base, base, theirs)
    assert conflicts == [] and canonical_json(merged) == canonical_json(theirs)


def test_a_node_of_ours_naming_a_node_theirs_removed_conflicts() -> None:
    base: dict[str, Any] = {"nodes": {"y": {"deps": []}}}
    ours = {"nodes": {"y": base["nodes"]["y"], "z": {"deps": ["y"]}}}
    _, conflicts = _both(base, ours, {"nodes": {}})
    assert conflicts == [("z", None)]
