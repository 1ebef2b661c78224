"""Three-way merges of DAG documents, value by value.

Each node splits into parts that merge on their own: its deps, its code version, its
value (an unpartitioned node's ``cas_id``, ``media_type`` and ``size``, and any other
field) and each partition's value. For every part: changed on one side only, that side
wins; changed on both to the same value, that value; changed on both to different values,
a conflict named (node, partition key), ``None`` for anything but a partition. A node
removed on one side and changed on the other is a conflict too; a dep on a node the
merge leaves out is one, on the node that names it.
"""

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from core.dag import canonical_json

Conflict = tuple[str, str | None]
"""A node, and the partition key of the value in conflict (``None``: the node's own)."""

_MISSING: Any = object()
_CONFLICT: Any = object()
_OWN_PARTS = ("deps", "code_version", "partitions")


def merge_documents(
    base: Mapping[str, Any] | None,
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    *,
    theirs_changed: Collection[str] | None = None,
) -> tuple[dict[str, Any], list[Conflict]]:
    """``ours`` and ``theirs`` (both changed from ``base``, ``None`` for an empty DAG)
    merged; the conflicts, sorted, when there are any (the document is then partial).

    ``theirs_changed``, when the caller knows it (``changed_between(base, theirs)``),
    names every node ``theirs`` changed: the others keep ``ours`` as they are (the same
    objects), unread, so merging a few changes into a large document costs little."""
    base = base or {"nodes": {}}
    if theirs_changed is not None:
        return _merge_changed(base, ours, theirs, theirs_changed)
    conflicts: list[Conflict] = []
    merged = _merge_top(base, ours, theirs, conflicts)
    nodes: dict[str, Any] = {}
    old, left, right = base.get("nodes", {}), ours.get("nodes", {}), theirs.get("nodes", {})
    for node in sorted(old.keys() | left.keys() | right.keys()):
        value = _merge_node(
            node, old.get(node, _MISSING), left.get(node, _MISSING), right.get(node, _MISSING),
            conflicts,
        )  # fmt: skip
        if value is not _MISSING:
            nodes[node] = value
    _missing_deps(nodes, nodes, conflicts)
    merged["nodes"] = nodes
    return merged, sorted(set(conflicts), key=lambda c: (c[0], c[1] or ""))


def _merge_changed(
    base: Mapping[str, Any],
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    theirs_changed: Collection[str],
) -> tuple[dict[str, Any], list[Conflict]]:
    """``merge_documents`` when ``theirs`` changed only the nodes ``theirs_changed``. The
    nodes it adds follow those of ``ours``, not key order as in the full merge: the two
    encode alike (canonical JSON sorts keys), and reordering would read every node."""
    conflicts: list[Conflict] = []
    merged = _merge_top(base, ours, theirs, conflicts)
    old, left, right = base.get("nodes", {}), ours.get("nodes", {}), theirs.get("nodes", {})
    nodes = dict(left)
    for node in sorted(theirs_changed):
        value = _merge_node(
            node, old.get(node, _MISSING), left.get(node, _MISSING), right.get(node, _MISSING),
            conflicts,
        )  # fmt: skip
        if value is _MISSING:
            nodes.pop(node, None)
        else:
            nodes[node] = value
    # a node of ``ours`` names only nodes of ``ours``: it can lose a dep only when the
    # merge dropped one of those
    dropped = any(node in left and node not in nodes for node in theirs_changed)
    checked = nodes if dropped else [node for node in theirs_changed if node in nodes]
    _missing_deps(nodes, checked, conflicts)
    merged["nodes"] = nodes
    return merged, sorted(set(conflicts), key=lambda c: (c[0], c[1] or ""))


def _merge_top(
    base: Mapping[str, Any],
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    conflicts: list[Conflict],
) -> dict[str, Any]:
    """The document's fields other than its nodes, merged."""
    merged: dict[str, Any] = {}
    for key in sorted((base.keys() | ours.keys() | theirs.keys()) - {"nodes"}):
        value = _pick(base.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING))
        if value is _CONFLICT:
            conflicts.append((f"${key}", None))
        elif value is not _MISSING:
            merged[key] = value
    return merged


def _missing_deps(
    nodes: Mapping[str, Any], checked: Iterable[str], conflicts: list[Conflict]
) -> None:
    """A conflict on each node of ``checked`` that names a dep ``nodes`` lacks."""
    for node in checked:
        body = nodes[node]
        if isinstance(body, Mapping) and any(dep not in nodes for dep in body.get("deps", ())):
            conflicts.append((node, None))


def changed_between(base: Mapping[str, Any] | None, theirs: Mapping[str, Any]) -> frozenset[str]:
    """The nodes ``theirs`` added, removed or changed from ``base`` (as JSON: ``1``,
    ``1.0`` and ``true`` differ)."""
    old = (base or {}).get("nodes", {})
    new = theirs.get("nodes", {})
    return frozenset(
        node
        for node in old.keys() | new.keys()
        if not _same(old.get(node, _MISSING), new.get(node, _MISSING))
    )


def cut_to(document: Mapping[str, Any] | None, nodes: Collection[str]) -> dict[str, Any] | None:
    """``document`` with only ``nodes`` of its nodes (and every other field): all that
    ``merge_documents`` reads of a base or of ``theirs`` when ``theirs_changed`` is
    ``nodes``, so merging the cut documents gives the same result."""
    if document is None:
        return None
    cut = {key: value for key, value in document.items() if key != "nodes"}
    whole = document.get("nodes", {})
    cut["nodes"] = {node: whole[node] for node in sorted(nodes) if node in whole}
    return cut


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if a is _MISSING or b is _MISSING:
        return False
    return canonical_json(a) == canonical_json(b)


def _pick(base: Any, ours: Any, theirs: Any) -> Any:
    """The three-way answer for one part: a side's value, ``_MISSING`` (removed or
    never there) or ``_CONFLICT``."""
    if _same(ours, theirs):
        return ours
    if _same(base, ours):
        return theirs
    if _same(base, theirs):
        return ours
    return _CONFLICT


def _merge_node(node: str, base: Any, ours: Any, theirs: Any, conflicts: list[Conflict]) -> Any:
    whole = _pick(base, ours, theirs)
    if whole is not _CONFLICT:
        return whole
    if ours is _MISSING or theirs is _MISSING or not _all_mappings(base, ours, theirs):
        conflicts.append((node, None))  # removed on one side, changed on the other
        return _MISSING
    base = {} if base is _MISSING else base
    merged: dict[str, Any] = {}
    own_conflict = False
    for part in ("deps", "code_version"):
        value = _pick(
            base.get(part, _MISSING), ours.get(part, _MISSING), theirs.get(part, _MISSING)
        )
        own_conflict |= value is _CONFLICT
        if value not in (_MISSING, _CONFLICT):
            merged[part] = value
    value = _pick(_own_value(base), _own_value(ours), _own_value(theirs))
    own_conflict |= value is _CONFLICT
    if value not in (_MISSING, _CONFLICT):
        merged.update(value)
    if own_conflict:
        conflicts.append((node, None))
    partitions = _merge_partitions(
        node, base.get("partitions", {}), ours.get("partitions", {}),
        theirs.get("partitions", {}), conflicts,
    )  # fmt: skip
    if partitions:
        merged["partitions"] = partitions
    return merged


def _all_mappings(*values: Any) -> bool:
    return all(value is _MISSING or isinstance(value, Mapping) for value in values)


def _own_value(node: Any) -> Any:
    """A node's value fields (everything but its deps, code version and partitions)."""
    if node is _MISSING:
        return _MISSING
    value = {key: item for key, item in node.items() if key not in _OWN_PARTS}
    return value or _MISSING


def _merge_partitions(
    node: str,
    base: Mapping[str, Any],
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    conflicts: list[Conflict],
) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in sorted(base.keys() | ours.keys() | theirs.keys()):
        value = _pick(base.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING))
        if value is _CONFLICT:
            conflicts.append((node, key))
        elif value is not _MISSING:
            merged[key] = value
    return merged
