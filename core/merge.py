"""Three-way merges of DAG documents, value by value.

Each node splits into parts that merge on their own: its deps, its code version, its
value (an unpartitioned node's ``cas_id``, ``media_type`` and ``size``, and any other
field) and each partition's value. For every part: changed on one side only, that side
wins; changed on both to the same value, that value; changed on both to different values,
a conflict named (node, partition key), ``None`` for anything but a partition. A node
removed on one side and changed on the other is a conflict too; a dep on a node the
merge leaves out is one, on the node that names it.
"""

from collections.abc import Mapping
from typing import Any

from core.dag import canonical_json

Conflict = tuple[str, str | None]
"""A node, and the partition key of the value in conflict (``None``: the node's own)."""

_MISSING: Any = object()
_CONFLICT: Any = object()
_OWN_PARTS = ("deps", "code_version", "partitions")


def merge_documents(
    base: Mapping[str, Any] | None, ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Conflict]]:
    """``ours`` and ``theirs`` (both changed from ``base``, ``None`` for an empty DAG)
    merged; the conflicts, sorted, when there are any (the document is then partial)."""
    base = base or {"nodes": {}}
    conflicts: list[Conflict] = []
    merged: dict[str, Any] = {}
    for key in sorted((base.keys() | ours.keys() | theirs.keys()) - {"nodes"}):
        value = _pick(base.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING))
        if value is _CONFLICT:
            conflicts.append((f"${key}", None))
        elif value is not _MISSING:
            merged[key] = value
    nodes: dict[str, Any] = {}
    old, left, right = base.get("nodes", {}), ours.get("nodes", {}), theirs.get("nodes", {})
    for node in sorted(old.keys() | left.keys() | right.keys()):
        value = _merge_node(
            node, old.get(node, _MISSING), left.get(node, _MISSING), right.get(node, _MISSING),
            conflicts,
        )  # fmt: skip
        if value is not _MISSING:
            nodes[node] = value
    for node, body in nodes.items():
        if isinstance(body, Mapping) and any(dep not in nodes for dep in body.get("deps", ())):
            conflicts.append((node, None))
    merged["nodes"] = nodes
    return merged, sorted(set(conflicts), key=lambda c: (c[0], c[1] or ""))


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
