"""Tags: compare-and-swap, history, revisions across delete and re-create, refusals."""

import uuid

import pytest

import core
from tests.support.fakes import FakeCatalog


def versions(fake: FakeCatalog, count: int) -> list[uuid.UUID]:
    artifacts = fake.services.artifacts
    return [
        artifacts.add_dag_version("w", {"nodes": {f"n{i}": {"deps": []}}}) for i in range(count)
    ]


def test_a_swap_from_the_wrong_target_loses_and_records_nothing(fake: FakeCatalog) -> None:
    one, two, three = versions(fake, 3)
    tags = fake.services.tags
    tags.create_tag("t", one)
    assert not tags.compare_and_swap("t", two, three)
    assert tags.get_tag("t").target_id == one
    assert tags.compare_and_swap("t", one, two)
    assert [(m.from_target_id, m.to_target_id, m.revision) for m in tags.get_history("t")] == [
        (None, one, 1),
        (one, two, 2),
    ]


def test_a_move_to_where_the_tag_is_records_nothing(fake: FakeCatalog) -> None:
    (one,) = versions(fake, 1)
    tags = fake.services.tags
    tags.create_tag("t", one)
    assert tags.create_or_move_tag("t", one).revision == 1
    assert len(tags.get_history("t")) == 1


def test_revisions_count_on_across_delete_and_recreate(fake: FakeCatalog) -> None:
    one, two = versions(fake, 2)
    tags = fake.services.tags
    tags.create_tag("t", one)
    tags.move_tag("t", two)
    tags.delete_tag("t")
    with pytest.raises(core.NotFoundError):
        tags.get_tag("t")
    recreated = tags.create_tag("t", one)
    assert recreated.revision == 4
    assert [m.revision for m in tags.get_history("t")] == [1, 2, 3, 4]
    assert tags.get_history("t")[2].to_target_id is None  # the delete


def test_an_expected_revision_that_is_stale_is_a_conflict_and_changes_nothing(
    fake: FakeCatalog,
) -> None:
    one, two = versions(fake, 2)
    tags = fake.services.tags
    tags.create_tag("t", one)
    commits = len(fake.uow.commits)
    with pytest.raises(core.ConflictError, match="not at revision 7"):
        tags.move_to("t", two, expected_revision=7)
    assert len(fake.uow.commits) == commits
    assert tags.get_tag("t").target_id == one
    assert tags.move_to("t", two, expected_revision=1).tag.revision == 2  # type: ignore[union-attr]


def test_creating_an_existing_tag_is_a_conflict(fake: FakeCatalog) -> None:
    one, two = versions(fake, 2)
    fake.services.tags.create_tag("t", one)
    with pytest.raises(core.ConflictError, match="already exists"):
        fake.services.tags.create_tag("t", two)


def test_a_move_to_a_missing_artifact_changes_nothing(fake: FakeCatalog) -> None:
    (one,) = versions(fake, 1)
    tags = fake.services.tags
    tags.create_tag("t", one)
    state = fake.uow.state
    with pytest.raises(core.NotFoundError):
        tags.move_tag("t", uuid.uuid4())
    assert fake.uow.state is state  # nothing committed


@pytest.mark.parametrize("name", ["", "a b", "x" * 300, 3])
def test_bad_tag_names_are_refused_before_any_unit_of_work(fake: FakeCatalog, name: object) -> None:
    (one,) = versions(fake, 1)
    opened = len(fake.uow.opened)
    with pytest.raises(core.ValidationError):
        fake.services.tags.create_or_move_tag(name, one)  # type: ignore[arg-type]
    assert len(fake.uow.opened) == opened


def test_rollback_moves_back_to_the_previous_target(fake: FakeCatalog) -> None:
    one, two = versions(fake, 2)
    tags = fake.services.tags
    tags.create_tag("t", one)
    tags.move_tag("t", two)
    back = tags.rollback("t")
    assert back.target_id == one and back.revision == 3
    assert tags.get_history("t")[-1].reason == "rollback"


def test_an_unconditional_move_retries_a_lost_race(
    fake: FakeCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = versions(fake, 2)
    tags = fake.services.tags
    tags.create_tag("t", one)
    swap = tags.moves.swap
    answers: list[bool] = []

    def racing(uow: object, *args: object, **kwargs: object) -> bool:
        won = len(answers) >= 2 and swap(uow, *args, **kwargs)  # type: ignore[arg-type]
        answers.append(won)
        return won

    monkeypatch.setattr(tags.moves, "swap", racing)
    commits = len(fake.uow.commits)
    assert tags.move_tag("t", two).revision == 2
    assert answers == [False, False, True]
    assert len(fake.uow.commits) == commits + 1  # the lost attempts rolled back
