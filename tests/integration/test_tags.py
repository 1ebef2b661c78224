"""Tags: every operation, compare-and-swap, history and name validation."""

import uuid

import pytest

import core
from core.dag import canonical_json
from tests.support.helpers import DAG, row_counts


@pytest.fixture
def versions(catalog: core.Services) -> list[uuid.UUID]:
    """Three DAG versions to point tags at."""
    ids: list[uuid.UUID] = []
    for i in range(3):
        document = {"nodes": {**DAG["nodes"], f"v{i}": {"deps": []}}}
        cas_id = catalog.cas.store_content(canonical_json(document))
        ids.append(catalog.artifacts.create_dag_version("etl", cas_id))
    return ids


def moves(catalog: core.Services, name: str) -> list[tuple[object, object, int]]:
    return [(m.from_target_id, m.to_target_id, m.revision) for m in catalog.tags.get_history(name)]


def test_create_move_and_read(catalog: core.Services, versions: list[uuid.UUID]) -> None:
    a, b, _ = versions
    created = catalog.tags.create_tag("main", a, moved_by="alice", reason="init", run_id="r1")
    assert (created.name, created.target_id, created.revision) == ("main", a, 1)
    assert created.target_kind is core.ArtifactKind.DAG_VERSION
    assert created.updated_by == "alice"
    moved = catalog.tags.move_tag("main", b, moved_by="bob")
    assert (moved.target_id, moved.revision, moved.updated_by) == (b, 2, "bob")
    assert catalog.tags.get_tag("main") == moved
    assert [t.name for t in catalog.tags.list_tags()] == ["main"]
    history = catalog.tags.get_history("main")
    assert moves(catalog, "main") == [(None, a, 1), (a, b, 2)]
    assert (history[0].moved_by, history[0].reason, history[0].run_id) == ("alice", "init", "r1")
    assert history[0].id < history[1].id


def test_create_existing_tag_is_a_conflict(
    catalog: core.Services, versions: list[uuid.UUID]
) -> None:
    catalog.tags.create_tag("main", versions[0])
    before = row_counts(catalog)
    with pytest.raises(core.ConflictError, match="'main' already exists"):
        catalog.tags.create_tag("main", versions[1])
    assert row_counts(catalog) == before


def test_create_without_a_target_is_a_validation_error(catalog: core.Services) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="artifact id None"):
        catalog.tags.create_tag("main", None)  # type: ignore[arg-type]
    assert row_counts(catalog) == before


def test_create_or_move_to_the_current_target_records_nothing(
    catalog: core.Services, versions: list[uuid.UUID]
) -> None:
    a, b, _ = versions
    catalog.tags.create_or_move_tag("main", a)
    catalog.tags.create_or_move_tag("main", a)
    assert catalog.tags.get_tag("main").revision == 1
    catalog.tags.create_or_move_tag("main", b)
    assert moves(catalog, "main") == [(None, a, 1), (a, b, 2)]


def test_compare_and_swap(catalog: core.Services, versions: list[uuid.UUID]) -> None:
    a, b, c = versions
    assert catalog.tags.compare_and_swap("main", None, a)
    assert not catalog.tags.compare_and_swap("main", None, b)
    assert not catalog.tags.compare_and_swap("main", b, c)
    assert catalog.tags.compare_and_swap("main", a, b)
    assert not catalog.tags.compare_and_swap("main", b, c, expected_revision=1)
    assert catalog.tags.compare_and_swap("main", b, c, expected_revision=2)
    assert catalog.tags.get_tag("main").target_id == c
    assert moves(catalog, "main") == [(None, a, 1), (a, b, 2), (b, c, 3)]


def test_compare_and_swap_to_none_deletes(
    catalog: core.Services, versions: list[uuid.UUID]
) -> None:
    catalog.tags.create_tag("main", versions[0])
    assert not catalog.tags.compare_and_swap("main", versions[1], None)
    assert catalog.tags.compare_and_swap("main", versions[0], None)
    with pytest.raises(core.NotFoundError):
        catalog.tags.get_tag("main")
    assert not catalog.tags.compare_and_swap("never", None, None)


def test_history_survives_delete_and_revision_keeps_counting(
    catalog: core.Services, versions: list[uuid.UUID]
) -> None:
    a, b, c = versions
    catalog.tags.create_tag("main", a)
    catalog.tags.move_tag("main", b)
    catalog.tags.delete_tag("main", moved_by="carol", reason="cleanup")
    with pytest.raises(core.NotFoundError, match="'main'"):
        catalog.tags.get_tag("main")
    assert catalog.tags.list_tags() == []
    assert moves(catalog, "main") == [(None, a, 1), (a, b, 2), (b, None, 3)]
    recreated = catalog.tags.create_tag("main", c)
    assert recreated.revision == 4
    assert moves(catalog, "main")[-1] == (None, c, 4)
    assert len(catalog.tags.get_history("main")) == recreated.revision


def test_operations_on_missing_tags(catalog: core.Services, versions: list[uuid.UUID]) -> None:
    before = row_counts(catalog)
    for call in (
        lambda: catalog.tags.get_tag("ghost"),
        lambda: catalog.tags.move_tag("ghost", versions[0]),
        lambda: catalog.tags.delete_tag("ghost"),
    ):
        with pytest.raises(core.NotFoundError, match="'ghost'"):
            call()
    assert catalog.tags.get_history("ghost") == []
    assert row_counts(catalog) == before


def test_unknown_targets_are_not_found(catalog: core.Services, versions: list[uuid.UUID]) -> None:
    catalog.tags.create_tag("main", versions[0])
    unknown = uuid.uuid4()
    before = row_counts(catalog)
    for call in (
        lambda: catalog.tags.create_tag("other", unknown),
        lambda: catalog.tags.move_tag("main", unknown),
        lambda: catalog.tags.create_or_move_tag("main", unknown),
        lambda: catalog.tags.compare_and_swap("main", versions[0], unknown),
    ):
        with pytest.raises(core.NotFoundError, match=str(unknown)):
            call()
    assert row_counts(catalog) == before


def test_names_with_slashes_and_listing_order(
    catalog: core.Services, versions: list[uuid.UUID]
) -> None:
    for name in ["team/sales/main", "prod", "v1.4", "a-b_c"]:
        catalog.tags.create_tag(name, versions[0])
    assert [t.name for t in catalog.tags.list_tags()] == sorted(
        ["team/sales/main", "prod", "v1.4", "a-b_c"]
    )


BAD_NAMES = [
    "",
    "..",
    "a..b",
    "a//b",
    "x" * 201,
    "nul\x00",
    "-leading",
    "/root",
    ".hidden",
    "sp ace",
    "ünï",
    None,
    7,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_invalid_tag_names_change_nothing(
    catalog: core.Services, versions: list[uuid.UUID], name: object
) -> None:
    catalog.tags.create_tag("main", versions[0])
    before = row_counts(catalog)
    for call in (
        lambda: catalog.tags.create_tag(name, versions[1]),  # type: ignore[arg-type]
        lambda: catalog.tags.move_tag(name, versions[1]),  # type: ignore[arg-type]
        lambda: catalog.tags.create_or_move_tag(name, versions[1]),  # type: ignore[arg-type]
        lambda: catalog.tags.compare_and_swap(name, None, versions[1]),  # type: ignore[arg-type]
        lambda: catalog.tags.delete_tag(name),  # type: ignore[arg-type]
        lambda: catalog.tags.get_tag(name),  # type: ignore[arg-type]
        lambda: catalog.tags.get_history(name),  # type: ignore[arg-type]
    ):
        with pytest.raises(
            core.ValidationError, match="invalid tag name " + repr(repr(name))[1:-1]
        ):
            call()
    assert row_counts(catalog) == before


def test_longest_valid_name(catalog: core.Services, versions: list[uuid.UUID]) -> None:
    name = "x" * 200
    assert catalog.tags.create_tag(name, versions[0]).name == name


@pytest.mark.parametrize(
    ("field", "value"),
    [("moved_by", "x" * 256), ("reason", 42), ("run_id", ""), ("run_id", "r\x00")],
)
def test_invalid_move_fields_change_nothing(
    catalog: core.Services, versions: list[uuid.UUID], field: str, value: object
) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match=field.replace("_", ".")):
        catalog.tags.create_tag("main", versions[0], **{field: value})  # type: ignore[arg-type]
    assert row_counts(catalog) == before


def test_malformed_target_ids(catalog: core.Services) -> None:
    with pytest.raises(core.ValidationError, match="'not-a-uuid'"):
        catalog.tags.create_tag("main", "not-a-uuid")  # type: ignore[arg-type]
    with pytest.raises(core.ValidationError, match="expected revision -1"):
        catalog.tags.compare_and_swap("main", None, uuid.uuid4(), expected_revision=-1)


def test_moves_after_is_a_cursor(catalog: core.Services, versions: list[uuid.UUID]) -> None:
    a, b, c = versions
    catalog.tags.create_tag("main", a)
    catalog.tags.create_tag("other", a)
    catalog.tags.move_tag("main", b)
    catalog.tags.move_tag("main", c)
    first = catalog.tags.get_moves_after("main", 0, limit=2)
    assert [m.to_target_id for m in first] == [a, b]
    rest = catalog.tags.get_moves_after("main", first[-1].id)
    assert [m.to_target_id for m in rest] == [c]
    assert catalog.tags.get_moves_after("main", rest[-1].id) == []
