"""The unit of work commits only when told to, and ``run`` retries in one place."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import core
from core.repository.unit_of_work import UnitOfWork
from core.storage.uow import UnitOfWorkFactory

BLOB = ("sha256:" + "a" * 64, 1, "text/plain")


class Lost(Exception):
    pass


def factory(catalog: core.Services) -> UnitOfWorkFactory[UnitOfWork]:
    return UnitOfWorkFactory(catalog.database, UnitOfWork)


def stored(catalog: core.Services) -> bool:
    return catalog.cas.get_blob(BLOB[0], missing_ok=True) is not None


def test_a_unit_of_work_that_is_not_committed_rolls_back(catalog: core.Services) -> None:
    called: list[str] = []
    with factory(catalog)() as work:
        work.blobs.add([BLOB])
        work.after_commit(lambda: called.append("committed"))
    assert not stored(catalog) and called == []


def test_commit_commits_once_and_ends_the_unit_of_work(catalog: core.Services) -> None:
    called: list[str] = []
    with factory(catalog)() as work:
        work.blobs.add([BLOB])
        work.after_commit(lambda: called.append("committed"))
        work.commit()
        assert called == ["committed"]  # at the commit, not at the end of the block
        with pytest.raises(RuntimeError, match="has ended"):
            work.commit()
    assert stored(catalog) and called == ["committed"]


def test_run_retries_a_lost_step_in_a_new_unit_of_work(catalog: core.Services) -> None:
    attempts: list[int] = []

    def step(work: UnitOfWork) -> str:
        work.blobs.add([BLOB])
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise Lost
        return "won"

    assert factory(catalog).run(step, lost=Lost, attempts=5) == "won"
    assert attempts == [0, 1, 2] and stored(catalog)


def test_run_tries_once_inside_a_callers_transaction(catalog: core.Services) -> None:
    attempts: list[int] = []

    def step(work: UnitOfWork) -> None:
        attempts.append(1)
        raise Lost

    with pytest.raises(Lost), catalog.database.transaction():
        factory(catalog).run(step, lost=Lost, attempts=5)
    assert attempts == [1]


def test_inside_a_callers_transaction_the_caller_commits(catalog: core.Services) -> None:
    with pytest.raises(RuntimeError), catalog.database.transaction():
        with factory(catalog)() as work:
            work.blobs.add([BLOB])
            work.commit()
        raise RuntimeError("the caller rolls back")
    assert not stored(catalog)


def test_a_tag_move_inside_a_callers_transaction_retries_a_lost_swap(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    """Another writer moves the tag between our read and our swap, inside a transaction
    the caller opened (as benchmarks group moves): the move re-reads the tag and wins
    there, as it does on its own (Postgres reads what others committed at each statement)."""
    with (
        core.connect(postgres_schema_url, tmp_path / "a") as ours,
        core.connect(postgres_schema_url, tmp_path / "b") as other,
    ):
        versions = [
            ours.workflows.create_workflow(
                core.CreateWorkflowRequest("w", {"nodes": {f"n{i}": {"deps": []}}}, tag=f"v{i}")
            ).artifact_id
            for i in range(3)
        ]
        ours.tags.create_tag("t", versions[0])
        swap = ours.tags.moves.swap
        raced: list[str] = []

        def racing_swap(*args: Any, **kwargs: Any) -> bool:
            if not raced:  # the first swap: another writer commits a move just before it
                raced.append("racer")
                with ThreadPoolExecutor(1) as racer:
                    racer.submit(other.tags.move_tag, "t", versions[1], reason="racer").result()
            return swap(*args, **kwargs)

        ours.tags.moves.swap = racing_swap  # type: ignore[method-assign]
        with ours.database.transaction():
            moved = ours.tags.move_tag("t", versions[2], reason="mine")
        assert moved.target_id == versions[2] and raced == ["racer"]
        assert [move.reason for move in ours.tags.get_history("t")] == [None, "racer", "mine"]
