"""DAG documents: validation, canonical encoding and JSON Patch application."""

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import jsonpatch

from core.errors import ValidationError
from core.identifiers import (
    check_cas_id,
    check_media_type,
    check_node_id,
    check_partition_key,
    check_size,
)

DAG_MEDIA_TYPE = "application/vnd.orchestrator.dag+json"
MAX_DEPTH = 100
"""How deeply values may nest in a document, a patch or metadata."""
PATCH_MEDIA_TYPE = "application/json-patch+json"
SNAPSHOT_MEDIA_TYPE = "application/vnd.orchestrator.run-snapshot+json"


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON: sorted keys, no whitespace, UTF-8.

    Raises ``ValidationError`` for anything that is not plain JSON (NaN, sets, bytes...).
    """
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"value is not plain JSON: {exc}") from exc
    except RecursionError:
        raise ValidationError(f"value nests deeper than JSON allows here ({MAX_DEPTH})") from None


def sha256_id(data: bytes) -> str:
    """The content id of ``data``: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def validate_dag(
    document: object,
    *,
    base: Mapping[str, Any] | None = None,
    among: Collection[str] | None = None,
) -> dict[str, Any]:
    """Check that ``document`` is a DAG document and return it.

    A DAG document is ``{"nodes": {"<id>": {"deps": [...], ...}}}``: every dep names a
    node of the document, the graph is acyclic, and every value is plain JSON.

    ``base`` is a valid document that ``document`` was made from without modifying it:
    nodes the two share (the same objects) are not checked again, and cycles are looked
    for only through the others, so changing one node of a large document costs little.
    A document that dropped a node of ``base`` is checked whole. ``among``, when the
    caller knows it, names every node that may differ from ``base``: the others are not
    looked at at all.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("nodes"), Mapping):
        raise ValidationError("DAG document must be an object with a 'nodes' object")
    nodes = document["nodes"]
    before = base.get("nodes", {}) if base is not None else {}
    if among is not None and base is not None and all(n in nodes for n in among if n in before):
        changed = [node_id for node_id in among if node_id in nodes]
    elif before.keys() <= nodes.keys():
        changed = [
            node_id
            for node_id, node in nodes.items()
            if node_id not in before or before[node_id] is not node
        ]
    else:
        changed = list(nodes)
    for node_id in changed:
        _check_node(nodes, node_id)
    if len(changed) == len(nodes):
        _check_acyclic(nodes)
    else:
        _check_no_cycle_through(nodes, changed)
    _check_plain_json({k: v for k, v in document.items() if k != "nodes"}, "DAG document")
    return dict(document)


def _check_node(nodes: Mapping[Any, Any], node_id: object) -> None:
    """One node: its id and its deps' are node ids as ``commit_output`` takes them, its
    deps name nodes of the document, its partition keys are partition keys, its
    partitions objects, its values plain JSON, and the stored values it names (its own,
    each partition's) have a well-formed cas id, media type and size where given."""
    node = nodes[node_id]
    check_node_id(node_id, "in nodes")
    if not isinstance(node, Mapping):
        raise ValidationError(f"DAG node {node_id!r} must be an object")
    deps = node.get("deps", [])
    if not isinstance(deps, list):
        raise ValidationError(f"DAG node {node_id!r}: 'deps' must be a list of node ids")
    for dep in deps:
        check_node_id(dep, f"in deps of node {node_id!r}")
        if dep not in nodes:
            raise ValidationError(f"DAG node {node_id!r} depends on unknown node {dep!r}")
    _check_plain_json(node, f"DAG node {node_id!r}")
    _check_value_fields(node, f"in node {node_id!r}")
    partitions = node.get("partitions", {})
    if not isinstance(partitions, Mapping):
        raise ValidationError(f"DAG node {node_id!r}: 'partitions' must be an object")
    for key, entry in partitions.items():
        check_partition_key(key, f"in node {node_id!r}")
        if not isinstance(entry, Mapping):
            raise ValidationError(f"partition {key!r} of DAG node {node_id!r} must be an object")
        _check_value_fields(entry, f"in partition {key!r} of node {node_id!r}")


def _check_value_fields(entry: Mapping[str, Any], where: str) -> None:
    """The fields of a stored value as ``commit_output`` writes them, where given."""
    if entry.get("cas_id") is not None:
        check_cas_id(entry["cas_id"], where)
    if "media_type" in entry:
        check_media_type(entry["media_type"], where)
    if "size" in entry:
        check_size(entry["size"], where)


def _check_plain_json(value: Any, where: str) -> None:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationError(f"{where}: values nest deeper than {MAX_DEPTH} levels")
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ValidationError(f"{where}: key {key!r} is not a string")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(f"{where}: {item!r} is not a JSON number")
        elif item is not None and not isinstance(item, str | int | bool):
            raise ValidationError(
                f"{where}: value {item!r} of type {type(item).__name__} is not JSON"
            )


def _check_acyclic(nodes: Mapping[str, Any]) -> None:
    """Kahn's algorithm; on a cycle, name a node that lies on it."""
    indegree = {node_id: 0 for node_id in nodes}
    dependents: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for node_id, node in nodes.items():
        for dep in node.get("deps", []):
            indegree[node_id] += 1
            dependents[dep].append(node_id)
    ready = [node_id for node_id, degree in indegree.items() if degree == 0]
    while ready:
        for dependent in dependents[ready.pop()]:
            indegree[dependent] -= 1
            if indegree[dependent] == 0:
                ready.append(dependent)
    on_cycle = sorted(node_id for node_id, degree in indegree.items() if degree > 0)
    if on_cycle:
        raise ValidationError(f"DAG has a cycle through node {on_cycle[0]!r}")


def _check_no_cycle_through(nodes: Mapping[str, Any], starts: list[str]) -> None:
    """Whether a node of ``starts`` reaches itself (every new cycle passes through one)."""
    for start in starts:
        seen: set[str] = set()
        stack = list(nodes[start].get("deps", []))
        while stack:
            node_id = stack.pop()
            if node_id == start:
                raise ValidationError(f"DAG has a cycle through node {start!r}")
            if node_id not in seen:
                seen.add(node_id)
                stack.extend(nodes[node_id].get("deps", []))


def validate_patch(patch: object) -> list[dict[str, Any]]:
    """Check that ``patch`` is an RFC 6902 JSON Patch (a list of operations)."""
    if not isinstance(patch, list) or not all(isinstance(op, Mapping) for op in patch):
        raise ValidationError("JSON Patch must be a list of operation objects")
    for index, op in enumerate(patch):
        where = f"JSON Patch operation {index} ({op.get('op')!r} at {op.get('path')!r})"
        _check_plain_json(op, where)
        try:
            jsonpatch.JsonPatch([op])
        except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPointerException, TypeError) as exc:
            raise ValidationError(f"invalid {where}: {exc}") from exc
    return [dict(op) for op in patch]


def apply_patch(
    document: dict[str, Any], patch: list[dict[str, Any]], *, in_place: bool = False
) -> dict[str, Any]:
    """Apply ``patch`` to a copy of ``document`` (``in_place``: to ``document`` itself,
    which a patch that does not apply leaves half changed); ``ValidationError`` when it
    does not apply."""
    try:
        patched: dict[str, Any] = jsonpatch.apply_patch(document, patch, in_place=in_place)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
        raise ValidationError(f"JSON Patch does not apply: {exc}") from exc
    return patched


def make_patch(
    source: dict[str, Any], target: dict[str, Any], *, among: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """The JSON Patch that turns ``source`` into ``target``.

    Objects are compared key by key (removals first, in key order), anything else that
    differs as JSON (``1``, ``1.0`` and ``true`` differ) is replaced whole. Values the two
    documents share by identity are skipped unread, so a change to one node of a large
    document costs little. ``among``, when the caller knows it, names every node that
    may differ: the others are not looked at at all.
    """
    patch: list[dict[str, Any]] = []
    _diff("", source, target, patch, among)
    return patch


def _diff(
    path: str,
    before: Any,
    after: Any,
    patch: list[dict[str, Any]],
    among: Collection[str] | None = None,
) -> None:
    """``among``: at the top, the only nodes that may differ (their operations in key
    order, whatever order ``after`` holds its nodes in)."""
    if before is after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        if among is not None and path == "/nodes":
            removed = {key for key in among if key in before and key not in after}
            keys: Iterable[str] = sorted(key for key in among if key in after)
        else:
            removed, keys = before.keys() - after.keys(), after
        for key in sorted(removed):
            patch.append({"op": "remove", "path": f"{path}/{_escape(key)}"})
        for key in keys:
            value = after[key]
            old = before.get(key, _ABSENT)
            if old is value:
                continue
            where = f"{path}/{_escape(key)}"
            if old is _ABSENT:
                patch.append({"op": "add", "path": where, "value": value})
            else:
                _diff(where, old, value, patch, among if path == "" else None)
    elif canonical_json(before) != canonical_json(after):
        patch.append({"op": "replace", "path": path, "value": after})


_ABSENT: Any = object()


def _escape(key: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


EMPTY_DAG: dict[str, Any] = {"nodes": {}}


def node_value(
    document: dict[str, Any], node_id: str, partition_key: str | None = None
) -> dict[str, Any] | None:
    """The stored-value entry (``cas_id``, ``media_type``, ``size``) of a node or partition."""
    node = document.get("nodes", {}).get(node_id)
    if node is None:
        return None
    entry = node.get("partitions", {}).get(partition_key) if partition_key is not None else node
    return entry if entry and "cas_id" in entry else None


def with_node_value(
    document: dict[str, Any],
    node_id: str,
    value: dict[str, Any],
    *,
    deps: list[str],
    partition_key: str | None = None,
    code_version: str | None = None,
) -> dict[str, Any]:
    """A copy of ``document`` where ``node_id`` (or its partition) holds ``value``.

    The node's deps are replaced by ``deps``; a dep the document does not know yet is
    added as a node with no value, so the result stays a valid DAG.
    """
    nodes = dict(document.get("nodes", {}))
    for dep in deps:
        nodes.setdefault(dep, {"deps": []})
    node = dict(nodes.get(node_id, {}))
    node["deps"] = sorted(set(deps))
    if code_version is not None:
        node["code_version"] = code_version
    if partition_key is None:
        node.update(value)
    else:
        node["partitions"] = {**node.get("partitions", {}), partition_key: dict(value)}
    nodes[node_id] = node
    return {**document, "nodes": nodes}


def changed_nodes(
    before: dict[str, Any], after: dict[str, Any], *, among: Collection[str] | None = None
) -> frozenset[str]:
    """Nodes added, removed or changed between two DAG documents (nodes the two share,
    the same objects, are skipped unread; with ``among``, only those nodes are looked at:
    the caller knows no other differs)."""
    old, new = before.get("nodes", {}), after.get("nodes", {})
    return frozenset(
        node
        for node in (old.keys() | new.keys() if among is None else among)
        if old.get(node) is not new.get(node)
        and canonical_json(old.get(node)) != canonical_json(new.get(node))
    )


def referenced_cas_ids(content: Any) -> frozenset[str]:
    """Every ``cas_id`` value named anywhere in a DAG document or JSON Patch."""
    found: set[str] = set()
    stack = [content]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            cas_id = item.get("cas_id")
            if isinstance(cas_id, str):
                found.add(cas_id)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return frozenset(found)


def added_cas_ids(
    before: dict[str, Any], after: dict[str, Any], *, among: Collection[str] | None = None
) -> frozenset[str]:
    """The cas ids ``after`` names where ``before`` did not name them.

    Every id that ``after`` names and ``before`` does not is included (an id ``before``
    names elsewhere may be too). Nodes and values the documents share (the same objects)
    are skipped unread, so changing one node of a large document costs little; with
    ``among``, only those nodes are looked at (the caller knows no other differs).
    """
    found: set[str] = set()
    old_nodes, new_nodes = before.get("nodes", {}), after.get("nodes", {})
    for key, value in after.items():
        if key != "nodes" and (key not in before or before[key] is not value):
            found |= referenced_cas_ids(value) - referenced_cas_ids(before.get(key))
    candidates = new_nodes if among is None else [n for n in among if n in new_nodes]
    for node_id in candidates:
        node = new_nodes[node_id]
        if node_id not in old_nodes or old_nodes[node_id] is not node:
            found |= referenced_cas_ids(node) - referenced_cas_ids(old_nodes.get(node_id))
    return frozenset(found)


def diff_nodes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per node that differs: ``{"change": added|removed|changed, "before": .., "after": ..}``."""
    old, new = before.get("nodes", {}), after.get("nodes", {})
    diff = {}
    for node in sorted(changed_nodes(before, after)):
        change = "added" if node not in old else "removed" if node not in new else "changed"
        diff[node] = {"change": change, "before": old.get(node), "after": new.get(node)}
    return diff


def value_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[tuple[str | None, str | None, str | None]]:
    """The stored values that differ between two states of one node, as
    ``(partition_key, before_cas_id, after_cas_id)``: ``None`` for the node's own value,
    else each partition's, in key order."""

    def values(node: Mapping[str, Any] | None) -> dict[str | None, str | None]:
        if node is None:
            return {}
        found = {key: entry.get("cas_id") for key, entry in node.get("partitions", {}).items()}
        return {None: node["cas_id"], **found} if node.get("cas_id") else found

    old, new = values(before), values(after)
    keys = sorted(old.keys() | new.keys(), key=lambda key: (key is not None, key or ""))
    return [(key, old.get(key), new.get(key)) for key in keys if old.get(key) != new.get(key)]
