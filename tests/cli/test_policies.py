"""`orchestrator policy set|show|list|delete|history`, and exit 6 with nothing changed for
every move a tag policy refuses, on DuckDB and Postgres."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import core
from core.cli import cli
from tests.support.helpers import row_counts, run_orchestrator

JSON = "application/json"
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


def commit(catalog: core.Services, run_id: str, tag: str, node: str, value: int) -> None:
    catalog.assets.commit_output(run_id, tag, node, json.dumps(value).encode(), media_type=JSON)


def state(catalog: core.Services) -> tuple[Any, ...]:
    tags = catalog.tags.list_tags()
    return tags, {t.name: catalog.tags.get_history(t.name) for t in tags}, row_counts(catalog)


@pytest.fixture
def seeded(catalog: core.Services, tmp_path: Path) -> core.Services:
    """main at two versions, ``feat`` one value on, a staged run on each of v1.4 and main."""
    commit(catalog, "seed", "main", "orders", 1)
    commit(catalog, "seed", "main", "sales", 1)
    catalog.tags.create_tag("feat", catalog.tags.get_tag("main").target_id)
    commit(catalog, "f1", "feat", "orders", 2)
    catalog.runs.create_run("staged-main", "main", publish="run")
    commit(catalog, "staged-main", "main", "sales", 5)
    catalog.runs.create_run("staged-v", "v1.4", publish="run")
    commit(catalog, "staged-v", "v1.4", "sales", 7)
    (tmp_path / "dag.json").write_text(json.dumps({"nodes": {"x": {"deps": []}}}))
    (tmp_path / "patch.json").write_text(
        json.dumps([{"op": "add", "path": "/nodes/y", "value": {"deps": []}}])
    )
    return catalog


def test_policies_are_set_shown_listed_deleted_and_their_history_shown(run: Invoke) -> None:
    set_ = as_json(run("policy", "set", "release/*", "--protected", "--by", "ann"))
    assert set_["pattern"] == "release/*" and set_["protected"] is True
    assert set_["immutable"] is False and set_["updated_by"] == "ann"
    as_json(run("policy", "set", "v*", "--immutable"))
    assert as_json(run("policy", "show", "release/2.0"))["pattern"] == "release/*"
    assert as_json(run("policy", "show", "main")) is None
    listed = as_json(run("policy", "list", "--json"))
    assert [p["pattern"] for p in listed] == ["release/*", "v*"]
    human = run("policy", "list")
    assert human.exit_code == 0
    rows = [line.split() for line in human.stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["release/*", "protected"], ["v*", "immutable"]]
    assert as_json(run("policy", "delete", "release/*", "--by", "bob")) == {
        "pattern": "release/*",
        "deleted": True,
    }
    history = as_json(run("policy", "history", "release/*", "--json"))
    assert [(h["old_protected"], h["new_protected"], h["changed_by"]) for h in history] == [
        (None, True, "ann"),
        (True, None, "bob"),
    ]
    table = run("policy", "history")
    assert table.exit_code == 0
    assert [line.split()[1:4] for line in table.stdout.splitlines()[1:]] == [
        ["release/*", "none", "protected"],
        ["v*", "none", "immutable"],
        ["release/*", "protected", "none"],
    ]
    missing = run("policy", "delete", "release/*")
    assert missing.exit_code == 3 and "'release/*'" in missing.stderr
    bad = run("policy", "set", "v[1")
    assert bad.exit_code == 2 and "invalid tag pattern 'v[1'" in bad.stderr


def test_an_immutable_tag_refuses_every_move_with_exit_6(
    run: Invoke, seeded: core.Services, tmp_path: Path
) -> None:
    as_json(run("policy", "set", "v*", "--immutable", "--by", "release-manager"))
    created = as_json(run("tag", "create", "v1.4", "main"))  # created once: allowed
    assert created["revision"] == 1
    dag, patch = str(tmp_path / "dag.json"), str(tmp_path / "patch.json")
    for args in (
        ("tag", "create", "v1.4", "feat"),
        ("tag", "move", "v1.4", "feat"),
        ("tag", "move", "v1.4", "feat", "--expect", "main"),
        ("tag", "delete", "v1.4"),
        ("tag", "delete", "v1.4", "--expect", "main"),
        ("rollback", "v1.4", "--to", "feat"),
        ("workflow", "create", dag, "--name", "sales", "--tag", "v1.4"),
        ("workflow", "patch", "v1.4", patch),
        ("merge", "feat", "v1.4"),
        ("publish", "staged-v"),
    ):
        before = state(seeded)
        result = run(*args)
        assert result.exit_code == 6, (args, result.output)
        assert "tag 'v1.4' is immutable (policy 'v*')" in result.stderr, args
        assert state(seeded) == before, args


def test_a_protected_tag_refuses_direct_moves_with_exit_6_and_takes_publish_and_merge(
    run: Invoke, seeded: core.Services, tmp_path: Path
) -> None:
    as_json(run("policy", "set", "main", "--protected"))
    dag, patch = str(tmp_path / "dag.json"), str(tmp_path / "patch.json")
    for args in (
        ("tag", "move", "main", "feat"),
        ("tag", "move", "main", "feat", "--expect", "main"),
        ("tag", "delete", "main"),
        ("tag", "delete", "main", "--expect", "main"),
        ("rollback", "main"),
        ("workflow", "create", dag, "--name", "sales"),
        ("workflow", "patch", "main", patch),
    ):
        before = state(seeded)
        result = run(*args)
        assert result.exit_code == 6, (args, result.output)
        assert "tag 'main' is protected (policy 'main')" in result.stderr, args
        assert state(seeded) == before, args
    assert as_json(run("publish", "staged-main", "--json"))["changed"] is True
    assert run("merge", "feat", "main").exit_code == 0
    assert [m.reason for m in seeded.tags.get_history("main")][-2:] == [
        "publish run staged-main",
        "merge feat",
    ]


def test_the_installed_command_exits_6(
    database_url: str, blob_root: Path, catalog: core.Services
) -> None:
    commit(catalog, "seed", "main", "orders", 1)
    catalog.tags.set_policy("main", protected=True)
    catalog.close()
    refused = run_orchestrator(database_url, blob_root, "tag", "delete", "main")
    assert refused.returncode == 6 and "protected (policy 'main')" in refused.stderr
