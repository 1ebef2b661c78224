"""Property-based tests: every input is accepted and round-trips, or is a domain error.

Each property runs on both backends against one function-scoped ``catalog``, so state
accumulates across Hypothesis examples: every example works under its own tag name (or
computes what it expects from the state it finds), never from an empty catalog.
"""

import copy
import hashlib
import itertools
import json
import math
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import jsonpatch
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import make_url

import core
from core.dag import (
    added_cas_ids,
    canonical_json,
    changed_nodes,
    make_patch,
    referenced_cas_ids,
    validate_dag,
)
from core.storage.blobstore import FolderBlobStore
from tests.support.helpers import DAG, row_counts

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MACHINE_SETTINGS = settings(
    max_examples=15,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_unique = itertools.count()


def unique_tag(prefix: str) -> str:
    """A tag name no earlier example of this test used."""
    return f"{prefix}/{next(_unique)}"


def blob_paths(catalog: core.Services) -> set[Path]:
    """Every file and directory under the blob root (temporary folder included)."""
    return set(catalog.blob_root.rglob("*"))


def sha256_files(catalog: core.Services) -> set[Path]:
    return {p for p in (catalog.blob_root / "sha256").rglob("*") if p.is_file()}


def snapshot(catalog: core.Services) -> tuple[dict[str, int], set[Path]]:
    """What a rejected call must leave as it was: row counts and stored blob files."""
    return row_counts(catalog), sha256_files(catalog)


def strict(value: Any) -> str:
    """A type-aware rendering for equality (``1``, ``1.0`` and ``True`` stay distinct)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)


# --- independent oracles (written from the contract, not from the implementation) ---

TAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
CAS_ID = re.compile(r"sha256:[0-9a-f]{64}")


def is_valid_tag_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and TAG_NAME.fullmatch(name) is not None
        and ".." not in name
        and "//" not in name
    )


def is_plain_json(value: object) -> bool:
    """Strings (UTF-8 encodable), finite numbers, booleans, null, lists, string-keyed dicts."""
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(is_plain_json(item) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and is_plain_json(k) and is_plain_json(v) for k, v in value.items()
        )
    return False


def is_node_id(value: object) -> bool:
    """What ``commit_output`` takes as an asset's node: 1-1000 printable characters."""
    return isinstance(value, str) and 0 < len(value) <= 1000 and value.isprintable()


def has_valid_value_fields(node: dict[str, Any]) -> bool:
    """A node's ``size`` and ``media_type``, where given, as ``commit_output`` writes them."""
    size, media_type = node.get("size", 0), node.get("media_type", "a/b")
    return (
        type(size) is int
        and size >= 0
        and isinstance(media_type, str)
        and "/" in media_type
        and 0 < len(media_type) <= 255
        and media_type.isprintable()
    )


def is_valid_dag(document: object) -> bool:
    """``{"nodes": {id: {"deps": [ids]...}}}``: node ids, known deps, acyclic, plain JSON,
    value fields (sizes, media types) as an output commit writes them."""
    if not isinstance(document, dict) or not isinstance(document.get("nodes"), dict):
        return False
    if not is_plain_json(document):
        return False
    nodes: dict[Any, Any] = document["nodes"]
    for node_id, node in nodes.items():
        if not is_node_id(node_id) or not isinstance(node, dict):
            return False
        if not has_valid_value_fields(node):
            return False
        deps = node.get("deps", [])
        if not isinstance(deps, list) or not all(is_node_id(d) and d in nodes for d in deps):
            return False
    done: set[str] = set()
    for start in nodes:  # iterative depth-first search for a back edge
        if start in done:
            continue
        on_path = {start}
        stack = [(start, iter(nodes[start].get("deps", [])))]
        while stack:
            node_id, deps_left = stack[-1]
            dep = next(deps_left, None)
            if dep is None:
                stack.pop()
                on_path.discard(node_id)
                done.add(node_id)
            elif dep in on_path:
                return False
            elif dep not in done:
                on_path.add(dep)
                stack.append((dep, iter(nodes[dep].get("deps", []))))
    return True


# --- strategies ---

TAG_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/-"

NAME_JUNK = [".", "..", "/", "//", "-", "\x00", "\n", " ", "é", "~", ":", "\\", "\ud800"]


@st.composite
def near_miss_tag_names(draw: st.DrawFn) -> str:
    """A valid-looking name with one character inserted, dropped or swapped."""
    name = draw(st.from_regex(r"[a-z0-9]{1,4}(/[a-z0-9._-]{1,4}){0,2}", fullmatch=True))
    at = draw(st.integers(0, len(name)))
    how = draw(st.sampled_from(["insert", "drop", "replace", "pad"]))
    if how == "pad":
        return name + "a" * draw(st.integers(190 - len(name), 210 - len(name)))
    junk = draw(st.sampled_from(NAME_JUNK))
    if how == "insert":
        return name[:at] + junk + name[at:]
    if how == "drop":
        return name[:at] + name[at + 1 :]
    return name[:at] + junk + name[at + 1 :]


tag_names = st.one_of(
    st.text(),
    st.text(st.characters(exclude_categories=()), max_size=20),  # surrogates too
    st.text(TAG_ALPHABET, max_size=20),
    st.text(st.sampled_from("aZ9./-_"), max_size=12),
    st.text(TAG_ALPHABET, min_size=195, max_size=205),
    st.from_regex(TAG_NAME, fullmatch=True),
    near_miss_tag_names(),
    near_miss_tag_names(),
    st.sampled_from(
        ["main", "team/sales/main", "v1.4", "a..b", "a//b", "/main", ".main", "x\n", "a\ud800"]
    ),
    st.none(),
    st.integers(),
    st.binary(max_size=5),
)

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=6), children, max_size=3),
    ),
    max_leaves=10,
)
RESERVED_KEYS = {"deps", "cas_id", "partitions", "size", "media_type"}  # a stored value's fields
attributes = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k not in RESERVED_KEYS), json_values, max_size=3
)


node_ids = st.text(
    st.characters(categories=["L", "M", "N", "P", "S"], include_characters=" "),
    min_size=1,
    max_size=8,
)
"""Printable text, as ``commit_output`` takes a node id."""


@st.composite
def valid_dags(draw: st.DrawFn, ids_from: st.SearchStrategy[str] = node_ids) -> dict[str, Any]:
    """A random acyclic graph: each node depends only on nodes drawn before it (valid when
    ``ids_from`` draws node ids)."""
    ids = draw(st.lists(ids_from, unique=True, max_size=7))
    nodes: dict[str, Any] = {}
    for index, node_id in enumerate(ids):
        node = draw(attributes)
        earlier = ids[:index]
        deps = draw(st.lists(st.sampled_from(earlier), max_size=3)) if earlier else []
        if deps or draw(st.booleans()):  # "deps" may be left out when empty
            node["deps"] = deps
        nodes[node_id] = node
    order = draw(st.permutations(list(nodes)))
    document: dict[str, Any] = {"nodes": {node_id: nodes[node_id] for node_id in order}}
    document.update(draw(st.dictionaries(st.sampled_from(["meta", "x"]), json_values)))
    return document


weird_leaves = st.one_of(
    json_leaves,
    st.floats(),  # nan, inf, -inf
    st.binary(max_size=4),
    st.sets(st.integers(), max_size=2),
    st.frozensets(st.integers(), max_size=2),
    st.tuples(st.integers()),
    st.sampled_from(["\ud800", "ok\udfff", "", "\x00"]),
    st.builds(object),
)
weird_keys = st.one_of(st.text(max_size=5), st.integers(), st.none(), st.tuples(st.integers()))
weird_values = st.recursive(
    weird_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(weird_keys, children, max_size=3),
    ),
    max_leaves=8,
)


@st.composite
def random_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """A graph whose deps are arbitrary (unknown names, self-loops, cycles)."""
    ids = draw(st.lists(st.sampled_from("abcde"), unique=True, min_size=1, max_size=5))
    names = st.sampled_from([*ids, "ghost", ""] if draw(st.booleans()) else ids)
    return {
        "nodes": {
            node_id: {"deps": draw(st.lists(names, max_size=3)), **draw(attributes)}
            for node_id in ids
        }
    }


@st.composite
def cyclic_dags(draw: st.DrawFn) -> dict[str, Any]:
    """A valid DAG plus a cycle of 1-3 new nodes, possibly reached from the DAG."""
    document = draw(valid_dags())
    nodes = document["nodes"]
    cycle = [f"cycle{i}" for i in range(draw(st.integers(1, 3)))]
    for position, node_id in enumerate(cycle):
        nodes[node_id] = {"deps": [cycle[(position + 1) % len(cycle)]]}
    if nodes.keys() - set(cycle) and draw(st.booleans()):
        nodes[draw(st.sampled_from(sorted(nodes.keys() - set(cycle))))].setdefault(
            "deps", []
        ).append(cycle[0])
    return document


@st.composite
def corrupted_dags(draw: st.DrawFn) -> Any:
    """A valid DAG with one weird value put somewhere in it."""
    document = draw(valid_dags())
    bad = draw(weird_values)
    nodes = document["nodes"]
    where = draw(st.sampled_from(["top", "nodes", "node", "deps", "attribute", "replace"]))
    if where == "replace":
        return bad
    if where == "top":
        document[draw(weird_keys)] = bad
    elif where == "nodes" or not nodes:
        nodes[draw(weird_keys)] = bad
    else:
        node = nodes[draw(st.sampled_from(sorted(nodes)))]
        if where == "deps":
            node["deps"] = bad
        else:
            node[draw(weird_keys)] = bad
    return document


dag_candidates = st.one_of(
    valid_dags(),
    valid_dags(),
    valid_dags(st.text(min_size=1, max_size=8)),  # control characters, NUL, surrogates too
    random_graphs(),
    cyclic_dags(),
    corrupted_dags(),
    weird_values,
)

PATCH_BASE: dict[str, Any] = copy.deepcopy(DAG)  # no numbers or booleans: == is JSON equality
POINTERS = [
    "",
    "/nodes",
    "/nodes/raw",
    "/nodes/raw/deps",
    "/nodes/raw/deps/0",
    "/nodes/raw/deps/-",
    "/nodes/clean/deps/0",
    "/nodes/clean/deps/1",
    "/nodes/clean/deps/01",
    "/nodes/report",
    "/nodes/report/owner",
    "/nodes/report/deps/-",
    "/nodes/new",
    "/nodes/new/deps",
    "/nodes/a~1b",
    "/nodes/~0",
    "/missing/deep",
    "/extra",
]
pointers = st.one_of(  # well-formed JSON pointers only: malformed ones are a separate case
    st.sampled_from(POINTERS),
    st.builds(lambda s: "/nodes/" + s, st.text(max_size=4)),
)
patch_values = st.one_of(
    json_values,
    st.fixed_dictionaries({"deps": st.lists(st.sampled_from(["raw", "clean", "report", "new"]))}),
    st.lists(st.sampled_from(["raw", "clean", "report", "new", "ghost"]), max_size=3),
    st.sampled_from([math.nan, math.inf]),
)


@st.composite
def patch_operations(draw: st.DrawFn) -> Any:
    """An RFC 6902 operation, often well-formed, sometimes not."""
    op: dict[Any, Any] = {
        "op": draw(
            st.sampled_from(["add", "remove", "replace", "move", "copy", "test"])
            | st.sampled_from(["explode", "", "ADD"])
            | st.integers()
        ),
        "path": draw(pointers | st.one_of(st.none(), st.integers(), st.lists(st.text()))),
    }
    if draw(st.booleans()):
        op["value"] = draw(patch_values)
    if draw(st.booleans()):
        op["from"] = draw(pointers | st.sampled_from(["nodes/raw", "~", None]))
    for key in draw(st.lists(st.sampled_from(["op", "path"]), max_size=1)):
        del op[key]
    if draw(st.integers(0, 9)) == 0:
        op[draw(weird_keys)] = draw(json_leaves)
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(["add", None, 1, ["op"]]))
    return op


BASE_NODES = ["raw", "clean", "report"]
node_refs = st.sampled_from([*BASE_NODES, "new", "ghost"])


@st.composite
def likely_operations(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed operation aimed at the base document (it may still break the DAG)."""
    node = draw(st.sampled_from(BASE_NODES))
    fresh = "/nodes/" + draw(st.sampled_from(["new", "other", "a/b", "~"])).replace(
        "~", "~0"
    ).replace("/", "~1")
    return draw(
        st.sampled_from(
            [
                {
                    "op": "add",
                    "path": fresh,
                    "value": {"deps": draw(st.lists(node_refs, max_size=2))},
                },
                {"op": "add", "path": f"/nodes/{node}/deps/-", "value": draw(node_refs)},
                {"op": "add", "path": f"/nodes/{node}/note", "value": draw(json_values)},
                {"op": "remove", "path": f"/nodes/{node}"},
                {"op": "remove", "path": "/nodes/report/owner"},
                {"op": "replace", "path": "/nodes/report/owner", "value": draw(json_values)},
                {
                    "op": "replace",
                    "path": f"/nodes/{node}/deps",
                    "value": draw(st.lists(node_refs, max_size=2)),
                },
                {
                    "op": "test",
                    "path": f"/nodes/{node}/deps",
                    "value": draw(st.lists(node_refs, max_size=1)),
                },
                {"op": "copy", "from": f"/nodes/{node}", "path": fresh},
                {"op": "move", "from": f"/nodes/{node}", "path": fresh},
                {"op": "add", "path": "/meta", "value": draw(json_values)},
            ]
        )
    )


patches = st.one_of(
    st.lists(likely_operations(), min_size=1, max_size=3),
    st.lists(likely_operations(), min_size=1, max_size=2),
    st.lists(st.one_of(likely_operations(), patch_operations()), max_size=4),
    st.sampled_from([{"op": "add"}, "nope", None, 3]),
)


@st.composite
def near_miss_cas_ids(draw: st.DrawFn) -> str:
    """A well-formed id, or one with a single defect (case, length, prefix, junk)."""
    digest = hashlib.sha256(draw(st.binary(max_size=8)) + b"?").hexdigest()  # never stored
    at = draw(st.integers(0, 63))
    how = draw(st.sampled_from(["keep", "upper", "drop", "insert", "prefix", "suffix"]))
    if how == "upper":
        letters = [i for i, ch in enumerate(digest) if ch.isalpha()] or [0]
        at = letters[at % len(letters)]
        digest = digest[:at] + digest[at].upper().replace("0", "O") + digest[at + 1 :]
    elif how == "drop":
        digest = digest[:at] + digest[at + 1 :]
    elif how == "insert":
        digest = digest[:at] + draw(st.sampled_from("0aG/.:\x00\n ")) + digest[at:]
    prefix = "sha256:"
    if how == "prefix":
        prefix = draw(st.sampled_from(["", "SHA256:", "sha256", "sha-256:", "sha512:", ":"]))
    suffix = draw(st.sampled_from(["\n", "/", "\x00", "0"])) if how == "suffix" else ""
    return prefix + digest + suffix


cas_ids = st.one_of(
    st.text(),
    st.from_regex(CAS_ID, fullmatch=True),
    near_miss_cas_ids(),
    near_miss_cas_ids(),
    near_miss_cas_ids(),
    st.builds(lambda h: "sha256:" + h, st.text("0123456789abcdef./", min_size=64, max_size=64)),
    st.sampled_from(["sha256:", "sha1:" + "0" * 40, "sha256:../../../etc/passwd"]),
    st.none(),
    st.integers(),
    st.binary(max_size=8),
)
media_types = st.one_of(
    st.sampled_from(["application/octet-stream", "text/plain", "application/json"]),
    st.text(max_size=12),
)


# --- fixtures ---


@pytest.fixture
def target(catalog: core.Services) -> uuid.UUID:
    """A DAG version to point tags at."""
    return catalog.artifacts.create_dag_version(
        "props", catalog.cas.store_content(canonical_json(DAG))
    )


# --- tag names ---


@PROPERTY_SETTINGS
@given(name=tag_names)
def test_tag_names_round_trip_or_are_rejected(
    catalog: core.Services, target: uuid.UUID, name: object
) -> None:
    """Valid names round-trip through create/get/history; others are named and change nothing."""
    tags = catalog.tags
    event("valid name" if is_valid_tag_name(name) else "invalid name")
    if is_valid_tag_name(name):
        assert isinstance(name, str)
        if name in {t.name for t in tags.list_tags()}:
            tags.delete_tag(name)  # an earlier example created it: start from "absent"
        earlier = tags.get_history(name)
        created = tags.create_tag(name, target)
        assert (created.name, created.target_id, created.revision) == (
            name,
            target,
            len(earlier) + 1,
        )
        assert created.target_kind is core.ArtifactKind.DAG_VERSION
        assert tags.get_tag(name) == created
        assert name in {t.name for t in tags.list_tags()}
        history = tags.get_history(name)
        assert history[:-1] == earlier
        assert (history[-1].tag_name, history[-1].from_target_id) == (name, None)
        assert (history[-1].to_target_id, history[-1].revision) == (target, created.revision)
        before = snapshot(catalog)
        for broken in (f"{name}..x", f"{name}//x", f"/{name}", f"{name}\x00", name.ljust(201, "a")):
            for call in (tags.get_tag, tags.get_history):
                with pytest.raises(core.ValidationError) as raised:
                    call(broken)
                assert repr(broken) in str(raised.value)
        assert snapshot(catalog) == before
        return
    calls: list[Callable[[], object]] = [
        lambda: tags.create_tag(name, target),  # type: ignore[arg-type]
        lambda: tags.get_tag(name),  # type: ignore[arg-type]
        lambda: tags.get_history(name),  # type: ignore[arg-type]
        lambda: tags.move_tag(name, target),  # type: ignore[arg-type]
        lambda: tags.create_or_move_tag(name, target),  # type: ignore[arg-type]
        lambda: tags.delete_tag(name),  # type: ignore[arg-type]
        lambda: tags.compare_and_swap(name, None, target),  # type: ignore[arg-type]
        lambda: catalog.workflows.get_workflow_by_tag(name),  # type: ignore[arg-type]
    ]
    before = snapshot(catalog)
    for call in calls:
        with pytest.raises(core.ValidationError) as raised:
            call()
        assert repr(name) in str(raised.value)
    assert snapshot(catalog) == before


# --- DAG documents ---


@PROPERTY_SETTINGS
@given(dag=dag_candidates)
def test_dag_documents_round_trip_or_are_rejected(catalog: core.Services, dag: Any) -> None:
    """A valid DAG is stored and read back equal; anything else changes nothing."""
    tag = unique_tag("dag")
    before = snapshot(catalog)
    request = core.CreateWorkflowRequest("props", dag, tag=tag)
    event("valid DAG" if is_valid_dag(dag) else "invalid DAG")
    if not is_valid_dag(dag):
        with pytest.raises(core.ValidationError):
            catalog.workflows.create_workflow(request)
        assert snapshot(catalog) == before
        return
    response = catalog.workflows.create_workflow(request)
    assert (response.tag, response.revision, response.changed) == (tag, 1, True)
    assert strict(catalog.workflows.get_workflow_by_tag(tag)) == strict(dag)
    canonical = json.dumps(dag, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert response.cas_id == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert strict(json.loads(catalog.cas.get_content(response.cas_id))) == strict(dag)
    artifact = catalog.artifacts.get_by_id(response.artifact_id)
    assert (artifact.kind, artifact.cas_id, artifact.parent_id) == (
        core.ArtifactKind.DAG_VERSION,
        response.cas_id,
        None,
    )
    after = row_counts(catalog)
    assert after["tags"] == before[0]["tags"] + 1
    assert after["tag_moves"] == before[0]["tag_moves"] + 1
    assert after["artifacts"] - before[0]["artifacts"] in (0, 1)  # same document, same version


@PROPERTY_SETTINGS
@given(dag=valid_dags())
def test_generated_dags_are_valid(dag: dict[str, Any]) -> None:
    """The generator of valid DAGs agrees with the oracle (so the property above bites)."""
    assert is_valid_dag(dag)


@st.composite
def edited_dags(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid DAG and an edit of it that shares the nodes it leaves alone (the same
    objects): some nodes replaced by arbitrary ones (unknown deps, cycles, weird values
    included), some added, maybe some dropped."""
    base = draw(valid_dags())
    nodes = dict(base["nodes"])
    names = st.sampled_from([*nodes, "new0", "new1", "ghost"])
    node_values = st.one_of(
        st.builds(
            lambda deps, attrs: {"deps": deps, **attrs}, st.lists(names, max_size=3), attributes
        ),
        weird_values,
    )
    for node_id in draw(st.lists(st.sampled_from([*nodes, "new0", "new1"]), max_size=3)):
        nodes[node_id] = draw(node_values)
    for node_id in draw(st.lists(st.sampled_from(sorted(base["nodes"]) or ["new0"]), max_size=1)):
        nodes.pop(node_id, None)
    return base, {**base, "nodes": nodes}


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(edit=edited_dags())
def test_validating_an_edit_against_its_base_agrees_with_validating_it_whole(
    edit: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Only changed nodes are checked again, yet the verdict is the whole document's."""
    base, document = edit

    def verdict(**base_kw: Any) -> str:
        try:
            validate_dag(document, **base_kw)
        except core.ValidationError:
            return "rejected"
        return "accepted"

    whole = verdict()
    event(f"edit {whole}")
    assert verdict(base=base) == whole
    assert verdict(base=base, among=touched(base, document)) == whole
    if is_valid_dag(document):
        assert whole == "accepted"


def touched(base: dict[str, Any], document: dict[str, Any]) -> set[str]:
    """The nodes an edit replaced, added or dropped: the others are the same objects."""
    before, after = base["nodes"], document["nodes"]
    return {
        node
        for node in before.keys() | after.keys()
        if node not in before or node not in after or before[node] is not after[node]
    }


@settings(PROPERTY_SETTINGS, max_examples=200)
@given(edit=edited_dags())
def test_diffing_only_the_nodes_an_edit_touched_agrees_with_diffing_it_whole(
    edit: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """What a merge knows it changed (``among``) spares reading the other nodes, and
    changes nothing of the answers: the changed nodes, the patch, the new cas ids."""
    base, document = edit
    assume(is_valid_dag(document))  # what a merge diffs: a valid DAG
    among = touched(base, document)
    assert changed_nodes(base, document, among=among) == changed_nodes(base, document)
    assert added_cas_ids(base, document, among=among) == added_cas_ids(base, document)
    patch = make_patch(base, document, among=among)
    assert sorted(map(canonical_json, patch)) == sorted(
        map(canonical_json, make_patch(base, document))
    )
    result = jsonpatch.apply_patch(copy.deepcopy(base), copy.deepcopy(patch))
    assert strict(result) == strict(document)


stored_cas_ids = st.sampled_from(["sha256:" + c * 64 for c in "abcd"])
valued_nodes = st.fixed_dictionaries(
    {"deps": st.just([])},
    optional={
        "cas_id": stored_cas_ids,
        "partitions": st.dictionaries(
            st.sampled_from("xy"), st.builds(lambda c: {"cas_id": c}, stored_cas_ids)
        ),
    },
)


@settings(PROPERTY_SETTINGS, max_examples=200)
@given(
    before=st.dictionaries(st.sampled_from("pqr"), valued_nodes),
    changes=st.dictionaries(st.sampled_from("pqrs"), valued_nodes),
)
def test_added_cas_ids_cover_every_new_id_and_name_only_ids_of_the_new_document(
    before: dict[str, Any], changes: dict[str, Any]
) -> None:
    """What a patch set records for gc: every id new to the document, and only ids of the
    nodes that changed (the unchanged ones are not read)."""
    old, new = {"nodes": before}, {"nodes": {**before, **changes}}
    added = added_cas_ids(old, new)
    assert referenced_cas_ids(new) - referenced_cas_ids(old) <= added
    assert added <= referenced_cas_ids(changes)


# --- JSON patches ---

json_keys = st.text(alphabet="ab~/0", max_size=3)
patch_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([1.0, 0.0, -2.5]) | json_keys,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(json_keys, children, max_size=3)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(json_keys, patch_values, max_size=4)


@settings(PROPERTY_SETTINGS, max_examples=200)
@given(source=json_objects, target=json_objects, share=st.booleans())
def test_make_patch_turns_source_into_target(
    source: dict[str, Any], target: dict[str, Any], share: bool
) -> None:
    """``jsonpatch`` applying ``make_patch(a, b)`` to ``a`` gives ``b``, types kept."""
    if share:  # values shared by identity, as an update of one node leaves the others
        target = {**source, **target}
    patch = make_patch(source, target)
    result = jsonpatch.apply_patch(copy.deepcopy(source), copy.deepcopy(patch))
    assert strict(result) == strict(target)
    assert (patch == []) == (strict(source) == strict(target))


def expected_patch_result(patch: object) -> dict[str, Any] | None:
    """``jsonpatch``'s result on the base when it is a valid DAG, else ``None``."""
    if not isinstance(patch, list) or not is_plain_json(patch):
        return None
    try:
        result = jsonpatch.apply_patch(copy.deepcopy(PATCH_BASE), patch)
    except Exception:
        return None
    return result if is_valid_dag(result) else None


@settings(PROPERTY_SETTINGS, max_examples=80)
@given(patch=patches)
def test_json_patches_apply_like_jsonpatch_or_are_rejected(
    catalog: core.Services, patch: Any
) -> None:
    """The stored result is what ``jsonpatch`` gives, or a ValidationError changes nothing."""
    tag = unique_tag("patch")
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("props", PATCH_BASE, tag=tag))
    expected = expected_patch_result(patch)
    event("rejected patch" if expected is None else "applied patch")
    before = snapshot(catalog)
    if expected is None:
        with pytest.raises(core.ValidationError):
            catalog.workflows.patch_workflow(tag, patch)
        assert snapshot(catalog) == before
        assert strict(catalog.workflows.get_workflow_by_tag(tag)) == strict(PATCH_BASE)
        return
    response = catalog.workflows.patch_workflow(tag, patch)
    assert strict(catalog.workflows.get_workflow_by_tag(tag)) == strict(expected)
    assert response.changed == (expected != PATCH_BASE)
    assert response.revision == (2 if response.changed else 1)
    assert len(catalog.tags.get_history(tag)) == response.revision


# --- cas ids and content ---


@PROPERTY_SETTINGS
@given(cas_id=cas_ids)
def test_cas_ids_are_checked_before_any_path_is_built(
    catalog: core.Services, cas_id: object
) -> None:
    """Malformed ids never reach the filesystem; well-formed unknown ones are not found."""
    before_rows, before_paths = row_counts(catalog), blob_paths(catalog)
    cas = catalog.cas
    event("well-formed id" if isinstance(cas_id, str) and CAS_ID.fullmatch(cas_id) else "malformed")
    if isinstance(cas_id, str) and CAS_ID.fullmatch(cas_id):
        if cas_id in {f"sha256:{p.name}" for p in sha256_files(catalog)}:
            return  # a stored blob (vanishingly rare): nothing unknown to look up
        with pytest.raises(core.NotFoundError, match=cas_id):
            cas.get_content(cas_id)
        with pytest.raises(core.NotFoundError, match=cas_id):
            cas.get_blob(cas_id)
        assert cas.exists(cas_id) is False
    else:
        calls: list[Callable[[], object]] = [
            lambda: cas.get_content(cas_id),  # type: ignore[arg-type]
            lambda: cas.exists(cas_id),  # type: ignore[arg-type]
            lambda: cas.get_blob(cas_id),  # type: ignore[arg-type]
        ]
        refuse = AssertionError(f"a blob path was built for malformed id {cas_id!r}")
        with mock.patch.object(FolderBlobStore, "path", side_effect=refuse):
            for call in calls:
                with pytest.raises(core.ValidationError) as raised:
                    call()
                assert repr(cas_id) in str(raised.value)
    assert (row_counts(catalog), blob_paths(catalog)) == (before_rows, before_paths)


@PROPERTY_SETTINGS
@given(
    content=st.one_of(st.binary(max_size=2048), st.binary(max_size=64).map(bytearray)),
    media_type=media_types,
)
def test_stored_bytes_round_trip_once(
    catalog: core.Services, content: bytes | bytearray, media_type: str
) -> None:
    """Any bytes get their sha256 as id, read back equal, and are stored in one file."""
    cas_id = "sha256:" + hashlib.sha256(content).hexdigest()
    existed = cas_id in {f"sha256:{p.name}" for p in sha256_files(catalog)}
    before = snapshot(catalog)
    try:
        stored = catalog.cas.store_content(content, media_type)
    except core.ValidationError:
        assert media_type not in ("application/octet-stream", "text/plain", "application/json")
        assert snapshot(catalog) == before
        return
    assert stored == cas_id == catalog.cas.compute_hash(bytes(content))
    assert catalog.cas.store_content(content, media_type) == cas_id
    assert catalog.cas.get_content(cas_id) == content
    assert catalog.cas.exists(cas_id)
    assert catalog.cas.get_blob(cas_id).size == len(content)  # type: ignore[union-attr]
    files = sha256_files(catalog)
    digest = cas_id.removeprefix("sha256:")
    assert [p for p in files if p.name == digest] == [
        catalog.blob_root / "sha256" / digest[:2] / digest[2:4] / digest
    ]
    assert len(files) == len(before[1]) + (0 if existed else 1)
    assert row_counts(catalog)["cas_blobs"] == before[0]["cas_blobs"] + (0 if existed else 1)


@PROPERTY_SETTINGS
@given(content=st.one_of(st.text(max_size=5), st.integers(), st.none(), st.lists(st.integers())))
def test_only_bytes_can_be_stored(catalog: core.Services, content: object) -> None:
    """Anything but bytes is a ValidationError that stores nothing."""
    before = (row_counts(catalog), blob_paths(catalog))
    with pytest.raises(core.ValidationError):
        catalog.cas.store_content(content)  # type: ignore[arg-type]
    assert (row_counts(catalog), blob_paths(catalog)) == before


# --- the tag service against a model of refs ---

MACHINE_TAGS = ("main", "prod", "team/sales/main", "v1.4", "x-y_z")
Move = tuple[uuid.UUID | None, uuid.UUID | None, int]


class TagMachine(RuleBasedStateMachine):
    """Random tag operations on a fresh catalog, checked against an in-memory model."""

    postgres_url: ClassVar[str | None] = None
    """Set per test: ``None`` runs on a DuckDB file, else a Postgres server URL."""

    def __init__(self) -> None:
        super().__init__()
        self._cleanups: list[Callable[[], None]] = []
        try:
            workdir = Path(tempfile.mkdtemp(prefix="tag-machine-"))
            self._cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
            self.catalog = core.connect(self._fresh_database(workdir), workdir / "blobs")
            self._cleanups.insert(0, self.catalog.close)
            self.artifacts = [
                self.catalog.artifacts.create_dag_version(
                    "machine",
                    self.catalog.cas.store_content(
                        canonical_json({"nodes": {f"n{i}": {"deps": []}}})
                    ),
                )
                for i in range(4)
            ]
        except BaseException:
            self.teardown()
            raise
        self.live: dict[str, tuple[uuid.UUID, int]] = {}
        self.history: dict[str, list[Move]] = {name: [] for name in MACHINE_TAGS}

    def _fresh_database(self, workdir: Path) -> str:
        """A DuckDB file in ``workdir``, or a new Postgres schema dropped on teardown."""
        if self.postgres_url is None:
            return f"duckdb:///{workdir / 'catalog.duckdb'}"
        schema = f"test_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(self.postgres_url)
        self._cleanups.append(admin.dispose)
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

        def drop() -> None:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))

        self._cleanups.insert(0, drop)
        return (
            make_url(self.postgres_url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )

    def teardown(self) -> None:
        """Close the catalog, drop its schema (Postgres), remove its files."""
        while self._cleanups:
            self._cleanups.pop(0)()

    # the model's moves

    def _move(self, name: str, to: uuid.UUID | None) -> None:
        """Record a move in the model: one history row, revision + 1."""
        revision = len(self.history[name]) + 1
        current = self.live.get(name)
        self.history[name].append((current and current[0], to, revision))
        if to is None:
            del self.live[name]
        else:
            self.live[name] = (to, revision)

    def _check_tag(self, tag: core.Tag | None, name: str) -> None:
        assert tag is not None
        assert (tag.name, tag.target_id, tag.revision) == (name, *self.live[name])

    # rules

    @rule(name=st.sampled_from(MACHINE_TAGS), index=st.integers(0, 3))
    def create_tag(self, name: str, index: int) -> None:
        target = self.artifacts[index]
        if name in self.live:
            with pytest.raises(core.ConflictError):
                self.catalog.tags.create_tag(name, target)
            return
        tag = self.catalog.tags.create_tag(name, target, moved_by="machine")
        self._move(name, target)
        self._check_tag(tag, name)

    @rule(name=st.sampled_from(MACHINE_TAGS), index=st.integers(0, 3))
    def move_tag(self, name: str, index: int) -> None:
        target = self.artifacts[index]
        if name not in self.live:
            with pytest.raises(core.NotFoundError):
                self.catalog.tags.move_tag(name, target)
            return
        tag = self.catalog.tags.move_tag(name, target)
        if self.live[name][0] != target:
            self._move(name, target)
        self._check_tag(tag, name)

    @rule(name=st.sampled_from(MACHINE_TAGS), index=st.integers(0, 3))
    def create_or_move_tag(self, name: str, index: int) -> None:
        target = self.artifacts[index]
        tag = self.catalog.tags.create_or_move_tag(name, target)
        if name not in self.live or self.live[name][0] != target:
            self._move(name, target)
        self._check_tag(tag, name)

    @rule(name=st.sampled_from(MACHINE_TAGS))
    def delete_tag(self, name: str) -> None:
        if name not in self.live:
            with pytest.raises(core.NotFoundError):
                self.catalog.tags.delete_tag(name)
            return
        self.catalog.tags.delete_tag(name)
        self._move(name, None)

    @rule(
        name=st.sampled_from(MACHINE_TAGS),
        expected=st.one_of(st.none(), st.integers(0, 3), st.just("current")),
        new=st.one_of(st.none(), st.integers(0, 3)),
        expected_revision=st.one_of(st.none(), st.none(), st.just("current"), st.integers(0, 4)),
    )
    def compare_and_swap(
        self,
        name: str,
        expected: int | str | None,
        new: int | None,
        expected_revision: int | str | None,
    ) -> None:
        current = self.live.get(name)
        current_target = current and current[0]
        expected_id = (
            current_target
            if expected == "current"
            else (None if expected is None else self.artifacts[int(expected)])
        )
        new_id = None if new is None else self.artifacts[new]
        revision = len(self.history[name])
        wanted_revision = revision if expected_revision == "current" else expected_revision
        assert not isinstance(wanted_revision, str)
        wins = (
            (expected_id is not None or new_id is not None)
            and expected_id == current_target
            and wanted_revision in (None, revision)
        )
        if wins and expected_id == new_id:
            return  # a swap onto the target it already has: whether that records a move is open
        swapped = self.catalog.tags.compare_and_swap(
            name, expected_id, new_id, expected_revision=wanted_revision
        )
        assert swapped == wins
        if wins:
            self._move(name, new_id)

    # invariants

    @invariant()
    def matches_the_model(self) -> None:
        tags = self.catalog.tags
        listed = {t.name: (t.target_id, t.revision) for t in tags.list_tags()}
        assert listed == self.live
        for name in MACHINE_TAGS:
            history = tags.get_history(name)
            assert [(m.from_target_id, m.to_target_id, m.revision) for m in history] == (
                self.history[name]
            )
            assert [m.id for m in history] == sorted({m.id for m in history})
            assert [m.revision for m in history] == list(range(1, len(history) + 1))
            if name in self.live:
                tag = tags.get_tag(name)
                self._check_tag(tag, name)
                assert tag.revision == len(history)
            else:
                with pytest.raises(core.NotFoundError):
                    tags.get_tag(name)


@pytest.fixture(params=["duckdb", "postgres"])
def machine_postgres_url(request: pytest.FixtureRequest) -> str | None:
    """``None`` for DuckDB, else the Postgres server (skipped when not configured)."""
    return None if request.param == "duckdb" else request.getfixturevalue("postgres_url")


def test_tags_behave_like_the_model(
    machine_postgres_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tag service agrees with a model of refs over random operation sequences."""
    monkeypatch.setattr(TagMachine, "postgres_url", machine_postgres_url)
    run_state_machine_as_test(TagMachine, settings=MACHINE_SETTINGS)
