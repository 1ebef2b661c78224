"""Blame and blob lineage on DuckDB and Postgres: what "since" means at the edges (values
that come back, partitions that share bytes, compactions, merges, values written by hand)
and that the lookups use the indexes on Postgres."""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

import core
from tests.support.helpers import row_counts

JSON = "application/json"


@pytest.fixture
def compacting(database_url: str, blob_root: Path) -> Iterator[core.Services]:
    """A catalog that writes a full version every third commit."""
    with core.connect(database_url, blob_root, compaction_bound=2) as services:
        yield services


def commit(catalog: core.Services, run_id: str, node: str, content: bytes, **kw: Any) -> uuid.UUID:
    return catalog.assets.commit_output(
        run_id, "main", node, content, media_type=JSON, **kw
    ).artifact_id


def since(catalog: core.Services, ref: str) -> dict[tuple[str, str | None], uuid.UUID]:
    return {(e.node, e.partition_key): e.since.id for e in catalog.lineage.blame(ref).entries}


def test_a_value_that_comes_back_is_blamed_on_its_return(compacting: core.Services) -> None:
    first = commit(compacting, "run-1", "orders", b"[1]")
    commit(compacting, "run-1", "stock", b"[9]")
    commit(compacting, "run-2", "orders", b"[2]")
    back = commit(compacting, "run-3", "orders", b"[1]")
    for n in range(7):  # other values move; full versions name every blob again
        commit(compacting, f"run-{4 + n}", "stock", f"[{n}]".encode())
    blame = compacting.lineage.blame("main")
    (orders,) = [e for e in blame.entries if e.node == "orders"]
    assert orders.since.id == back != first
    assert orders.produced_by is not None and orders.produced_by.run_id == "run-1"  # earliest
    assert compacting.artifacts.get_ancestry(blame.version.id)[-1].id == first
    kinds = {a.kind for a in compacting.artifacts.get_ancestry(blame.version.id)}
    assert core.ArtifactKind.DAG_VERSION in kinds and core.ArtifactKind.PATCH_SET in kinds


def test_partitions_that_share_bytes_are_blamed_one_by_one(compacting: core.Services) -> None:
    commit(compacting, "run-1", "daily", b"[]", partition_key="a")
    b = commit(compacting, "run-1", "daily", b"[]", partition_key="b")
    commit(compacting, "run-2", "daily", b"[1]", partition_key="a")
    a = commit(compacting, "run-3", "daily", b"[]", partition_key="a")  # b held [] meanwhile
    commit(compacting, "run-4", "daily", b"[5]", partition_key="c")
    found = since(compacting, "main")
    assert found == {("daily", "a"): a, ("daily", "b"): b, ("daily", "c"): found[("daily", "c")]}
    assert found[("daily", "c")] == compacting.tags.get_tag("main").target_id


def test_unchanged_values_are_blamed_on_the_first_version(compacting: core.Services) -> None:
    first = commit(compacting, "run-1", "static", b'"same"')
    for n in range(12):
        commit(compacting, f"run-{n + 2}", "moving", str(n).encode())
        commit(compacting, f"run-{n + 2}", "static", b'"same"')  # re-materialised, unchanged
    assert since(compacting, "main")[("static", None)] == first
    assert since(compacting, "main@{5}")[("static", None)] == first
    lineage = compacting.lineage.of_blob(compacting.runs.get_output("run-1", "static", None).cas_id)
    # oldest first, by time (run-10 sorts before run-2 by name)
    assert [use.run_id for use in lineage.produced_by][:3] == ["run-1", "run-2", "run-3"]
    assert len(lineage.produced_by) == 13
    assert len(compacting.lineage.of_blob(lineage.blob.cas_id, limit=3).produced_by) == 3


def test_a_merged_value_is_blamed_on_the_merge(catalog: core.Services) -> None:
    commit(catalog, "run-1", "orders", b"[1]")
    catalog.tags.create_tag("feature", catalog.tags.get_tag("main").target_id)
    catalog.assets.commit_output("run-f", "feature", "orders", b"[2]", media_type=JSON)
    commit(catalog, "run-2", "stock", b"[3]")  # main moves too: the merge is not a fast-forward
    merged = catalog.workflows.merge("feature", "main")
    assert not merged.fast_forward and merged.to_target_id is not None
    blame = catalog.lineage.blame("main")
    (orders,) = [e for e in blame.entries if e.node == "orders"]
    assert orders.since.id == merged.to_target_id
    assert orders.produced_by is not None and orders.produced_by.tag == "feature"


def test_values_written_by_hand_have_no_producing_run(catalog: core.Services) -> None:
    value = catalog.cas.store_content(b"[42]", JSON)
    node = {"deps": [], "cas_id": value, "media_type": JSON, "size": 4}
    created = catalog.workflows.create_workflow(
        core.CreateWorkflowRequest("sales", {"nodes": {"orders": node, "plan": {"deps": []}}})
    )
    (entry,) = catalog.lineage.blame("main").entries  # a node with no value has no entry
    assert (entry.node, entry.cas_id, entry.size) == ("orders", value, 4)
    assert entry.since.id == created.artifact_id and entry.produced_by is None
    lineage = catalog.lineage.of_blob(value)
    assert lineage.produced_by == () and lineage.read_by == ()
    assert lineage.blob.size == 4


def test_bad_and_unknown_input(catalog: core.Services) -> None:
    commit(catalog, "run-1", "orders", b"[1]")
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="'sha256:abc'"):
        catalog.lineage.of_blob("sha256:abc")
    with pytest.raises(core.ValidationError, match="limit"):
        catalog.lineage.of_blob("sha256:" + "a" * 64, limit=0)
    with pytest.raises(core.NotFoundError, match=r"sha256:a{64} not found"):
        catalog.lineage.of_blob("sha256:" + "a" * 64)
    with pytest.raises(core.NotFoundError, match="nope"):
        catalog.lineage.blame("nope")
    with pytest.raises(core.ValidationError, match="invalid ref"):
        catalog.lineage.blame("has space")
    assert row_counts(catalog) == before


ROWS = 20_000


def test_lookups_use_the_cas_id_index_on_postgres(postgres_schema_url: str, tmp_path: Path) -> None:
    """With many lineage rows and fresh statistics, the statements ``of_blob`` and
    ``blame`` send are planned as scans of ``ix_run_io_cas_id``, not of the table."""
    with core.connect(postgres_schema_url, tmp_path / "blobs") as catalog:
        target = catalog.assets.commit_output(
            "run-0", "main", "orders", b"[1]", media_type=JSON
        ).value.cas_id
        with catalog.database.transaction() as session:
            session.execute(
                sa.text(
                    "INSERT INTO cas_blobs SELECT 'sha256:' || lpad(to_hex(n), 64, '0'), 1, "
                    "'application/json', now() FROM generate_series(1, :rows) AS n"
                ),
                {"rows": ROWS},
            )
            session.execute(
                sa.text(
                    "INSERT INTO run_io SELECT 'run-0', 'input', 'node-' || n, '', "
                    "'sha256:' || lpad(to_hex(n), 64, '0'), 'application/json', 1, now() "
                    "FROM generate_series(1, :rows) AS n"
                ),
                {"rows": ROWS},
            )
            session.execute(sa.text("ANALYZE run_io"))
        sent: list[tuple[str, Any]] = []

        def remember(
            _c: object, _cursor: object, statement: str, parameters: Any, *_: object
        ) -> None:
            if "FROM run_io" in statement:
                sent.append((statement, parameters))

        event.listen(catalog.database.engine, "before_cursor_execute", remember)
        lineage = catalog.lineage.of_blob(target)
        blame = catalog.lineage.blame("main")
        event.remove(catalog.database.engine, "before_cursor_execute", remember)
        assert [use.run_id for use in lineage.produced_by] == ["run-0"]
        assert blame.entries[0].produced_by is not None
        assert len(sent) == 3  # of_blob: outputs, inputs; blame: the first output
        with catalog.database.engine.connect() as connection:
            for statement, parameters in sent:
                plan = "\n".join(
                    connection.exec_driver_sql("EXPLAIN " + statement, parameters).scalars()
                )
                assert "ix_run_io_cas_id" in plan, plan
                assert "Seq Scan on run_io" not in plan, plan
