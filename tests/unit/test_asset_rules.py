"""Output commits, run pins and input location over the fake unit of work."""

import pytest

import core
import core.service.asset_lineage
from tests.support.fakes import FakeCatalog

JSON = "application/json"


def test_an_output_commit_asks_for_one_deferred_unit_of_work(fake: FakeCatalog) -> None:
    """The service asks for a deferred unit of work; whether the storage can defer it is
    the storage's business (on DuckDB, tests/integration/test_journal.py)."""
    opened = len(fake.uow.opened)
    result = fake.services.assets.commit_output("r", "main", "x", b"1", media_type=JSON)
    assert result.changed and result.revision == 1
    work = fake.uow.opened[opened:]
    assert [(w.deferred, w.committed) for w in work] == [(True, True)]


def test_an_unchanged_value_is_a_no_op(fake: FakeCatalog) -> None:
    assets = fake.services.assets
    first = assets.commit_output("r", "main", "x", b"1", media_type=JSON)
    again = assets.commit_output("r2", "main", "x", b"1", media_type=JSON)
    assert not again.changed
    assert again.artifact_id == first.artifact_id and again.revision == first.revision
    assert len(fake.services.tags.get_history("main")) == 1


def test_a_run_is_pinned_once(fake: FakeCatalog) -> None:
    runs = fake.services.runs
    first = runs.create_run("r", "main")
    commits = len(fake.uow.commits)
    assert runs.create_run("r", "main") == first
    assert runs.pin("r", "main") == (first.snapshot_id, first.base_id)
    assert len(fake.uow.commits) == commits + 1  # the second create; the pin is remembered
    assert len(fake.uow.state.runs) == 1


def test_a_run_pinned_to_one_tag_cannot_use_another(fake: FakeCatalog) -> None:
    fake.services.runs.create_run("r", "main")
    state = fake.uow.state
    with pytest.raises(core.ConflictError, match="pinned to tag 'main'"):
        fake.services.assets.commit_output("r", "other", "x", b"1", media_type=JSON)
    assert fake.uow.state is state


def test_a_refused_output_leaves_no_pin(fake: FakeCatalog) -> None:
    """The cycle is found after the pin, in the same unit of work, which rolls back."""
    with pytest.raises(core.ValidationError):
        fake.services.assets.commit_output("r", "main", "x", b"1", media_type=JSON, deps=["x"])
    assert fake.uow.opened and fake.uow.state.runs == {} and fake.uow.commits == []


def test_a_run_reads_its_pinned_snapshot_not_later_commits(fake: FakeCatalog) -> None:
    assets = fake.services.assets
    before = assets.commit_output("setup", "main", "x", b"1", media_type=JSON).value
    fake.services.runs.create_run("reader", "main")
    assets.commit_output("later", "main", "x", b"2", media_type=JSON)
    assert assets.locate_input("reader", "main", "x") == before
    assert assets.read(before) == b"1"
    assert assets.flush_reads("reader") == 1
    inputs = fake.services.runs.get_run_io("reader")
    assert [(io.direction, io.cas_id) for io in inputs] == [(core.Direction.INPUT, before.cas_id)]


def test_an_error_in_a_step_commits_nothing(
    fake: FakeCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("lineage failed")

    # fails after the pin and the commit's record were written in the unit of work
    monkeypatch.setattr(core.service.asset_lineage.RunLineage, "written_in", broken)
    with pytest.raises(RuntimeError):
        fake.services.assets.commit_output("r", "main", "x", b"1", media_type=JSON)
    assert fake.uow.commits == [] and fake.uow.state.tags == {}
    with pytest.raises(core.NotFoundError):
        fake.services.runs.get_run("r")
