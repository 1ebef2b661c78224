"""`orchestrator merge`, `orchestrator publish`, `runs show` of a publish="run" run and
`run:<id>` refs, on DuckDB and Postgres."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import core
from core.cli import cli
from tests.support.helpers import run_orchestrator

JSON = "application/json"
RUN = "6f1c2a9e-1111-4000-8000-000000000001"
"""A publish="run" run, with an id the Dagster UI would shorten to ``6f1c2a9e``."""

Invoke = Callable[..., Result]


@pytest.fixture
def run(database_url: str, blob_root: Path) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli, ["--database-url", database_url, "--blob-root", str(blob_root), *args]
        )

    return invoke


def as_json(result: Result, status: int = 0) -> Any:
    assert result.exit_code == status, result.output
    return json.loads(result.stdout)


def commit(
    catalog: core.Services, run_id: str, tag: str, node: str, value: int, key: str | None = None
) -> core.OutputCommit:
    return catalog.assets.commit_output(
        run_id, tag, node, json.dumps(value).encode(), media_type=JSON, partition_key=key
    )


def value(catalog: core.Services, ref: str, node: str, key: str | None = None) -> int:
    """The JSON value of ``node`` (``key``) in the version ``ref`` names."""
    document = catalog.artifacts.resolve(catalog.refs.resolve(ref).id)
    entry = document["nodes"][node]
    if key is not None:
        entry = entry["partitions"][key]
    return int(json.loads(catalog.cas.get_content(entry["cas_id"])))


@pytest.fixture
def branched(catalog: core.Services) -> core.Services:
    """main holds orders=1 and sales[p1]=1, sales[p2]=1; feat starts there."""
    commit(catalog, "seed", "main", "orders", 1)
    commit(catalog, "seed", "main", "sales", 1, "p1")
    commit(catalog, "seed", "main", "sales", 1, "p2")
    catalog.tags.create_tag("feat", catalog.tags.get_tag("main").target_id)
    return catalog


def test_merge_fast_forwards(run: Invoke, branched: core.Services) -> None:
    before = branched.tags.get_tag("main")
    staged = commit(branched, "f1", "feat", "orders", 2)
    merged = as_json(run("merge", "feat", "main", "--json", "--reason", "land feat"))
    assert merged["fast_forward"] is True and merged["changed"] is True
    assert merged["to_target_id"] == str(staged.artifact_id) and merged["changed_nodes"] == [
        "orders"
    ]
    assert merged["from_target_id"] == str(before.target_id)
    assert merged["revision"] == before.revision + 1 and merged["dry_run"] is False
    tag = branched.tags.get_tag("main")
    assert tag.target_id == staged.artifact_id and tag.revision == before.revision + 1
    assert branched.tags.get_history("main")[-1].reason == "land feat"
    again = run("merge", "feat", "main")
    assert again.exit_code == 0 and "nothing to merge" in again.output
    assert branched.tags.get_tag("main").revision == tag.revision


def test_merge_writes_a_merge_version_value_by_value(run: Invoke, branched: core.Services) -> None:
    feat = commit(branched, "f1", "feat", "sales", 2, "p1")
    main = commit(branched, "m1", "main", "sales", 3, "p2")
    human = run("merge", "feat", "main")
    assert human.exit_code == 0, human.output
    assert "merge version" in human.output and "changed  sales" in human.output
    tag = branched.tags.get_tag("main")
    assert tag.target_id not in (feat.artifact_id, main.artifact_id)
    assert tag.revision == main.revision + 1
    assert (value(branched, "main", "sales", "p1"), value(branched, "main", "sales", "p2")) == (
        2,
        3,
    )
    merge_version = branched.artifacts.get_by_id(tag.target_id)
    assert merge_version.parent_id == main.artifact_id
    assert merge_version.merged_id == feat.artifact_id
    commit(branched, "f2", "feat", "orders", 5)  # a second merge starts from the first
    second = as_json(run("merge", "feat", "main", "--json"))
    assert second["fast_forward"] is False and second["changed_nodes"] == ["orders"]
    assert value(branched, "main", "orders") == 5


def test_a_conflict_exits_4_naming_node_and_partition(run: Invoke, branched: core.Services) -> None:
    commit(branched, "f1", "feat", "sales", 2, "p1")
    commit(branched, "f1", "feat", "orders", 2)
    commit(branched, "m1", "main", "sales", 3, "p1")
    commit(branched, "m1", "main", "orders", 3)
    before = branched.tags.get_tag("main")
    human = run("merge", "feat", "main")
    assert human.exit_code == 4
    assert "conflicts on orders, sales[p1]" in human.stderr
    rows = [line.split() for line in human.stdout.splitlines()]
    assert ["orders", "-"] in rows and ["sales", "p1"] in rows
    shown = as_json(run("merge", "feat", "main", "--json"), 4)
    assert shown["conflicts"] == [
        {"node": "orders", "partition_key": None},
        {"node": "sales", "partition_key": "p1"},
    ]
    assert shown["changed"] is False
    assert branched.tags.get_tag("main") == before


def test_dry_run_moves_nothing(run: Invoke, branched: core.Services) -> None:
    commit(branched, "f1", "feat", "sales", 2, "p1")
    commit(branched, "m1", "main", "orders", 3)
    before = branched.tags.get_tag("main")
    preview = as_json(run("merge", "feat", "main", "--dry-run", "--json"))
    assert preview["dry_run"] is True and preview["changed"] is True
    assert preview["fast_forward"] is False and preview["changed_nodes"] == ["sales"]
    assert preview["to_target_id"] is None and preview["revision"] is None
    assert preview["from_target_id"] == str(before.target_id)
    human = run("merge", "feat", "main", "--dry-run")
    assert human.exit_code == 0 and "dry run: nothing moved" in human.output
    assert branched.tags.get_tag("main") == before
    assert len(branched.tags.get_history("main")) == before.revision
    commit(branched, "m2", "main", "sales", 4, "p1")
    conflicting = run("merge", "feat", "main", "--dry-run")
    assert conflicting.exit_code == 4 and "would conflict on sales[p1]" in conflicting.stderr
    assert branched.tags.get_tag("main").revision == before.revision + 1


def test_expect_mismatch_exits_4(run: Invoke, branched: core.Services) -> None:
    commit(branched, "f1", "feat", "orders", 2)
    commit(branched, "m1", "main", "sales", 2, "p1")
    before = branched.tags.get_tag("main")
    for extra in ([], ["--dry-run"]):
        lost = run("merge", "feat", "main", "--expect", "main@{1}", *extra)
        assert lost.exit_code == 4 and "not the expected" in lost.stderr, extra
    assert branched.tags.get_tag("main") == before
    assert run("merge", "feat", "main", "--expect", "nope").exit_code == 3
    merged = as_json(run("merge", "feat", "main", "--expect", "main", "--json"))
    assert merged["changed"] is True and merged["revision"] == before.revision + 1


def test_publish_fast_forwards_by_a_run_id_prefix(run: Invoke, branched: core.Services) -> None:
    branched.runs.create_run(RUN, "main", publish="run")
    staged = commit(branched, RUN, "main", "orders", 2)
    before = branched.tags.get_tag("main")
    assert value(branched, "main", "orders") == 1  # staged: main does not see it
    published = as_json(run("publish", RUN[:8], "--json", "--reason", "checked"))
    assert published["run_id"] == RUN and published["fast_forward"] is True
    assert published["changed"] is True and published["to_target_id"] == str(staged.artifact_id)
    assert published["from_version"] == branched.artifacts.get_by_id(before.target_id).version_hash
    last = branched.tags.get_history("main")[-1]
    assert (last.run_id, last.reason, last.to_target_id) == (RUN, "checked", staged.artifact_id)
    assert value(branched, "main", "orders") == 2


def test_publish_after_another_run_moved_the_tag(run: Invoke, branched: core.Services) -> None:
    branched.runs.create_run(RUN, "main", publish="run")
    staged = commit(branched, RUN, "main", "orders", 2)
    other = commit(branched, "other", "main", "sales", 5, "p1")
    human = run("publish", RUN)
    assert human.exit_code == 0, human.output
    assert "merge version" in human.output and f"revision {other.revision + 1}" in human.output
    tag = branched.tags.get_tag("main")
    assert tag.target_id not in (staged.artifact_id, other.artifact_id)
    assert (value(branched, "main", "orders"), value(branched, "main", "sales", "p1")) == (2, 5)


def test_publish_twice_moves_once(run: Invoke, branched: core.Services) -> None:
    branched.runs.create_run(RUN, "main", publish="run")
    commit(branched, RUN, "main", "orders", 2)
    first = as_json(run("publish", RUN, "--json"))
    second = as_json(run("publish", RUN, "--json"))
    assert first["changed"] is True and second["changed"] is False
    assert second["to_target_id"] == first["to_target_id"]
    assert second["revision"] == first["revision"]
    history = branched.tags.get_history("main")
    assert [m.run_id for m in history].count(RUN) == 1
    assert "nothing moved" in run("publish", RUN).output


def test_publish_refusals(run: Invoke, branched: core.Services) -> None:
    output_mode = run("publish", "seed")
    assert output_mode.exit_code == 2 and "publish='output'" in output_mode.stderr
    assert run("publish", "ghost-run").exit_code == 3
    branched.runs.create_run(RUN, "main", publish="run")
    commit(branched, RUN, "main", "sales", 2, "p2")
    commit(branched, "other", "main", "sales", 3, "p2")
    before = branched.tags.get_tag("main")
    conflict = run("publish", RUN, "--json")
    assert conflict.exit_code == 4 and "sales[p2]" in conflict.stderr
    assert json.loads(conflict.stdout)["conflicts"] == [{"node": "sales", "partition_key": "p2"}]
    assert branched.tags.get_tag("main") == before


def test_runs_show_prints_mode_head_and_outcome(run: Invoke, branched: core.Services) -> None:
    branched.runs.create_run(RUN, "main", publish="run")
    fresh = as_json(run("runs", "show", RUN, "--json"))
    assert fresh["run"]["publish"] == "run" and fresh["run"]["outcome"] is None
    assert fresh["head_version"] is None
    assert "nothing staged" in run("runs", "show", RUN).output
    staged = commit(branched, RUN, "main", "orders", 2)
    assert run("publish", RUN).exit_code == 0
    shown = as_json(run("runs", "show", RUN[:8], "--json"))
    assert shown["head_version"] == staged.version_hash
    assert shown["run"]["head_id"] == str(staged.artifact_id)
    outcome = shown["run"]["outcome"]
    revision = branched.tags.get_tag("main").revision
    assert outcome["state"] == "published" and outcome["revision"] == revision
    assert outcome["to_target_id"] == str(staged.artifact_id)
    human = run("runs", "show", RUN).output
    assert f"head     {staged.version_hash}" in human
    assert f"outcome  published (revision {revision}, {staged.version_hash})" in human
    listed = as_json(run("runs", "--json"))
    assert {r["run_id"]: r["publish"] for r in listed}[RUN] == "run"
    assert "head" not in [
        line.split()[0] for line in run("runs", "show", "seed").output.split("\n") if line
    ]


def test_runs_show_names_a_conflict(run: Invoke, branched: core.Services) -> None:
    branched.runs.create_run(RUN, "main", publish="run")
    commit(branched, RUN, "main", "sales", 2, "p1")
    commit(branched, "other", "main", "sales", 3, "p1")
    assert run("publish", RUN).exit_code == 4
    outcome = as_json(run("runs", "show", RUN, "--json"))["run"]["outcome"]
    assert outcome["state"] == "conflict"
    assert outcome["conflicts"] == [{"node": "sales", "partition_key": "p1"}]
    assert "outcome  conflict: sales[p1]" in run("runs", "show", RUN).output


def test_run_refs_name_the_staged_head(run: Invoke, branched: core.Services) -> None:
    base = branched.tags.get_tag("main").target_id
    branched.runs.create_run(RUN, "main", publish="run")
    assert as_json(run("show", f"run:{RUN}", "--json"))["artifact"]["id"] == str(base)
    staged = commit(branched, RUN, "main", "sales", 7, "p1")
    shown = as_json(run("show", f"run:{RUN}", "--json"))
    assert shown["artifact"]["id"] == str(staged.artifact_id)
    assert shown["nodes"]["sales"]["partitions"]["p1"]["cas_id"] == staged.value.cas_id
    diff = as_json(run("diff", "main", f"run:{RUN}", "--json"))
    assert list(diff["nodes"]) == ["sales"]
    assert diff["nodes"]["sales"]["values"] == [
        {
            "partition_key": "p1",
            "before_cas_id": branched.artifacts.resolve(base)["nodes"]["sales"]["partitions"]["p1"][
                "cas_id"
            ],
            "after_cas_id": staged.value.cas_id,
        }
    ]
    human = run("diff", "main", f"run:{RUN}")
    assert human.exit_code == 0 and "~ sales [p1]" in human.output
    assert run("show", "run:ghost").exit_code == 3
    merged = as_json(run("merge", f"run:{RUN}", "main", "--json"))
    assert merged["fast_forward"] is True and merged["to_target_id"] == str(staged.artifact_id)


def test_commands_in_a_process_of_their_own(database_url: str, blob_root: Path) -> None:
    """The installed ``orchestrator`` exits 4 on a conflict and 0 on a publish."""
    with core.connect(database_url, blob_root) as catalog:
        commit(catalog, "seed", "main", "orders", 1)
        catalog.tags.create_tag("feat", catalog.tags.get_tag("main").target_id)
        commit(catalog, "f1", "feat", "orders", 2)
        commit(catalog, "m1", "main", "orders", 3)
        catalog.runs.create_run(RUN, "feat", publish="run")
        commit(catalog, RUN, "feat", "sales", 1, "p1")
    conflict = run_orchestrator(database_url, blob_root, "merge", "feat", "main")
    assert conflict.returncode == 4 and "conflicts on orders" in conflict.stderr
    published = run_orchestrator(database_url, blob_root, "publish", RUN[:8], "--json")
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["fast_forward"] is True
    with core.connect(database_url, blob_root) as catalog:
        assert value(catalog, "feat", "sales", "p1") == 1
        assert value(catalog, "main", "orders") == 3
