"""The orchestrator command line, driven through click's runner on both backends."""

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

import core
from core.cli import cli

DAG = {"nodes": {"orders": {"deps": []}, "revenue": {"deps": ["orders"]}}}


@pytest.fixture
def run(database_url: str, blob_root: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli, ["--database-url", database_url, "--blob-root", str(blob_root), *args]
        )

    return invoke


@pytest.fixture
def populated(catalog: core.Services) -> core.Services:
    """main with three moves (a value, a second value, a second node), prod at the first."""
    commit = catalog.assets.commit_output
    first = commit("run-1", "main", "orders", b'[{"id": 1}]', media_type="application/json")
    commit("run-2", "main", "orders", b'[{"id": 1}, {"id": 2}]', media_type="application/json")
    commit(
        "run-2",
        "main",
        "revenue",
        b"42",
        media_type="application/json",
        deps=["orders"],
        partition_key="2026-01-01",
    )
    catalog.tags.create_tag("prod", first.artifact_id)
    return catalog


def as_json(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_tags_and_history(run, populated: core.Services) -> None:  # type: ignore[no-untyped-def]
    tags = as_json(run("tags", "--json"))
    assert [t["name"] for t in tags] == ["main", "prod"]
    assert tags[0]["revision"] == 3
    history = as_json(run("history", "main", "--json"))
    assert [h["position"] for h in history] == [0, 1, 2]
    assert history[0]["from_version"] == history[1]["to_version"]
    assert history[-1]["from_version"] is None
    assert history[0]["run_id"] == "run-2"
    assert history[0]["reason"] == "materialize revenue [2026-01-01]"
    human = run("history", "main")
    assert human.exit_code == 0 and "main@{2}" in human.output


def test_refs_everywhere(run, populated: core.Services) -> None:  # type: ignore[no-untyped-def]
    history = populated.tags.get_history("main")
    second = populated.artifacts.get_by_id(history[1].to_target_id)
    for ref in [
        "main@{1}",
        second.version_hash,
        second.version_hash[7:15],
        "sha256:" + second.version_hash[7:17],
        second.version_hash[7:39],  # 32 hex digits: a prefix, though UUID() would take it
        str(second.id),
        str(second.id).upper(),
    ]:
        shown = as_json(run("show", ref, "--json"))
        assert shown["artifact"]["id"] == str(second.id), ref
    for malformed in ("sha256:1234", "sha256:zzzzzzzz", "main@{x}", "main@{-1}"):
        result = run("show", malformed)  # "sha256:1234" is too short to be a prefix
        assert result.exit_code == 2 and f"invalid ref {malformed!r}" in result.output, malformed
    missing = run("show", "nope")
    assert missing.exit_code == 3 and "unknown ref 'nope'" in missing.output
    assert run("show", "main@{9}").exit_code == 3
    assert run("show", "main@{99999999999999999999}").exit_code == 3


def test_ambiguous_prefix_is_an_error(run, catalog: core.Services) -> None:  # type: ignore[no-untyped-def]
    cas_id = catalog.cas.store_content(json.dumps(DAG).encode())
    with catalog.database.transaction() as session:  # two versions sharing 8 hex digits
        for tail in ("0" * 56, "1" * 56):
            session.execute(
                sa.text(
                    "INSERT INTO artifacts (id, kind, version_hash, cas_id, parent_id, name,"
                    " created_at, created_by, metadata, generation, skip_id) VALUES (:id,"
                    " 'dag_version', :hash, :cas_id, NULL, 'x', CURRENT_TIMESTAMP, NULL, '{}',"
                    " 0, :id)"
                ),
                {"id": uuid.uuid4(), "hash": f"sha256:deadbeef{tail}", "cas_id": cas_id},
            )
    result = run("show", "deadbeef")
    assert result.exit_code == 2 and "ambiguous ref 'deadbeef'" in result.output
    assert as_json(run("show", "deadbeef0", "--json"))["artifact"]["version_hash"].endswith("0")


def test_log_show_cat_diff(run, populated: core.Services) -> None:  # type: ignore[no-untyped-def]
    log = as_json(run("log", "main", "--json"))
    assert [entry["kind"] for entry in log] == ["patch_set", "patch_set", "dag_version"]
    assert log[0]["parent_id"] == log[1]["id"]
    shown = as_json(run("show", "main", "--json"))
    assert set(shown["nodes"]) == {"orders", "revenue"}
    assert "2026-01-01" in shown["nodes"]["revenue"]["partitions"]
    assert run("show", "main").exit_code == 0

    raw = run("cat", "orders")
    assert raw.exit_code == 0 and json.loads(raw.output) == [{"id": 1}, {"id": 2}]
    old = run("cat", "orders", "--ref", "prod", "--decode")
    assert json.loads(old.output) == [{"id": 1}]
    partition = run("cat", "revenue", "--partition", "2026-01-01")
    assert partition.output == "42"
    assert run("cat", "revenue").exit_code == 3  # partitioned: needs --partition
    assert run("cat", "ghost").exit_code == 3

    diff = as_json(run("diff", "prod", "main", "--json"))
    assert {n: c["change"] for n, c in diff["nodes"].items()} == {
        "orders": "changed",
        "revenue": "added",
    }
    assert diff["nodes"]["orders"]["after_cas_id"] == populated.cas.compute_hash(
        b'[{"id": 1}, {"id": 2}]'
    )
    revenue = populated.cas.compute_hash(b"42")
    assert diff["nodes"]["revenue"]["values"] == [
        {"partition_key": "2026-01-01", "before_cas_id": None, "after_cas_id": revenue}
    ]
    human = run("diff", "prod", "main").output.splitlines()
    assert f"+ revenue [2026-01-01]  - -> {revenue[:19]}" in human, human
    assert any(line.startswith("~ orders  ") for line in human), human


def test_runs(run, populated: core.Services) -> None:  # type: ignore[no-untyped-def]
    populated.assets.locate_input("run-2", "main", "orders")
    populated.assets.flush_reads("run-2")
    listed = as_json(run("runs", "--json"))
    assert {r["run_id"] for r in listed} == {"run-1", "run-2"}
    shown = as_json(run("runs", "show", "run-2", "--json"))
    assert shown["run"]["status"] == "started"
    assert {o["node"] for o in shown["outputs"]} == {"orders", "revenue"}
    assert [i["node"] for i in shown["inputs"]] == ["orders"]
    assert shown["base_version"] is not None
    assert run("runs", "show", "ghost").exit_code == 3
    populated.runs.create_run("6f1c2a9e-0000-4000-8000-000000000001", "main")
    assert as_json(run("runs", "show", "6f1c2a9e", "--json"))["run"]["run_id"].endswith("0001")
    assert "outputs:" in run("runs", "show", "run-2").output


def test_tag_writes_and_compare_and_swap(run, populated: core.Services) -> None:  # type: ignore[no-untyped-def]
    assert as_json(run("tag", "create", "v1", "prod"))["revision"] == 1
    assert run("tag", "create", "v1", "main").exit_code == 4
    moved = as_json(run("tag", "move", "v1", "main", "--expect", "prod", "--by", "ci"))
    assert moved["revision"] == 2
    lost = run("tag", "move", "v1", "prod", "--expect", "prod")
    assert lost.exit_code == 4 and "no longer points" in lost.output
    assert populated.tags.get_tag("v1").revision == 2
    assert populated.tags.get_history("v1")[-1].moved_by == "ci"
    assert run("tag", "delete", "v1", "--expect", "prod").exit_code == 4
    assert as_json(run("tag", "delete", "v1"))["deleted"] is True
    assert run("tag", "delete", "v1").exit_code == 3
    assert run("tag", "create", "a//b", "main").exit_code == 2
    assert run("tag", "move", "ghost", "main").exit_code == 3
    for expecting in (["move", "ghost", "main"], ["delete", "ghost"]):
        missing = run("tag", *expecting, "--expect", "main")
        assert missing.exit_code == 3 and "'ghost' not found" in missing.output


def test_rollback(run, populated: core.Services) -> None:  # type: ignore[no-untyped-def]
    before = populated.tags.get_history("main")
    rolled = as_json(run("rollback", "main"))
    assert rolled["revision"] == 4
    assert populated.tags.get_tag("main").target_id == before[-1].from_target_id
    last = populated.tags.get_history("main")[-1]
    assert (last.reason, last.from_target_id) == ("rollback", before[-1].to_target_id)
    as_json(run("rollback", "main", "--to", "prod"))
    assert populated.tags.get_tag("main").target_id == populated.tags.get_tag("prod").target_id
    populated.tags.create_tag("fresh", populated.tags.get_tag("prod").target_id)
    assert run("rollback", "fresh").exit_code == 3  # nothing before its creation: no fresh@{1}


def test_workflow_commands(run, tmp_path: Path, catalog: core.Services) -> None:  # type: ignore[no-untyped-def]
    dag = tmp_path / "dag.json"
    dag.write_text(json.dumps(DAG))
    created = as_json(run("workflow", "create", str(dag), "--name", "sales", "--tag", "team/main"))
    assert created["revision"] == 1
    assert as_json(run("workflow", "get", "team/main")) == DAG
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps([{"op": "add", "path": "/nodes/x", "value": {"deps": []}}]))
    patched = as_json(run("workflow", "patch", "team/main", str(patch), "--expect-revision", "1"))
    assert patched["revision"] == 2
    assert (
        run("workflow", "patch", "team/main", str(patch), "--expect-revision", "1").exit_code == 4
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run("workflow", "create", str(bad), "--name", "x")
    assert result.exit_code == 2 and "bad.json" in result.output
    cyclic = tmp_path / "cyclic.json"
    cyclic.write_text(json.dumps({"nodes": {"a": {"deps": ["a"]}}}))
    assert run("workflow", "create", str(cyclic), "--name", "x").exit_code == 2
    assert run("workflow", "get", "ghost").exit_code == 3


def test_workflow_input_from_a_pipe_and_a_never_ending_device(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A pipe is read (as ``<(...)`` gives one); a device that never ends (``/dev/zero``)
    is refused once it passes the input bound, with one line, instead of filling memory."""
    pipe = tmp_path / "dag.pipe"
    os.mkfifo(pipe)
    with ThreadPoolExecutor(1) as writer:
        writer.submit(pipe.write_text, json.dumps(DAG))
        created = as_json(run("workflow", "create", str(pipe), "--name", "sales"))
    assert created["revision"] == 1
    endless = run("workflow", "patch", "main", "/dev/zero")
    assert endless.exit_code == 2, endless.output
    assert "/dev/zero" in endless.output and "longer than" in endless.output


def test_every_command_has_help_with_an_example(run) -> None:  # type: ignore[no-untyped-def]
    commands = [
        [],
        ["tags"],
        ["history"],
        ["log"],
        ["show"],
        ["cat"],
        ["diff"],
        ["runs"],
        ["runs", "show"],
        ["tag"],
        ["tag", "create"],
        ["tag", "move"],
        ["tag", "delete"],
        ["rollback"],
        ["workflow"],
        ["workflow", "create"],
        ["workflow", "get"],
        ["workflow", "patch"],
        ["gc"],
        ["verify"],
        ["merge"],
        ["publish"],
        ["blame"],
        ["lineage"],
    ]
    for command in commands:
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, command
        assert "Example:" in result.output and "orchestrator " in result.output, command


def test_cat_decodes_a_json_string_to_its_text(run, catalog: core.Services) -> None:  # type: ignore[no-untyped-def]
    report = "# Sales\n\n| region | revenue |"
    catalog.assets.commit_output(
        "run-1", "main", "report", json.dumps(report).encode(), media_type="application/json"
    )
    assert run("cat", "report", "--decode").output == report + "\n"


def test_cat_says_which_partition_to_ask_for(run, catalog: core.Services) -> None:  # type: ignore[no-untyped-def]
    for region in ("emea", "amer"):
        catalog.assets.commit_output(
            "run-1", "main", "orders", b"[]", media_type="application/json", partition_key=region
        )
    result = run("cat", "orders")
    assert result.exit_code == 3
    assert "node 'orders' is partitioned: pass --partition (one of amer, emea)" in result.output
    result = run("cat", "nope")
    assert result.exit_code == 3 and "no node 'nope' at 'main'" in result.output
    assert run("cat", "orders", "--partition", "amer").output == "[]"


def test_values_that_cannot_be_decoded_are_named(run, catalog: core.Services) -> None:  # type: ignore[no-untyped-def]
    commit = catalog.assets.commit_output
    commit("run-1", "main", "notes", b"caf\xe9", media_type="text/plain")  # not UTF-8
    commit("run-1", "main", "broken", b"{not json", media_type="application/json")
    for node in ("notes", "broken"):
        result = run("cat", node, "--decode")
        assert result.exit_code == 2, result.output
        assert f"cannot decode node {node!r}" in result.output
        assert "Traceback" not in result.output
        assert run("cat", node).exit_code == 0  # the raw bytes are still there


def test_a_postgres_url_without_the_driver_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    url = "postgresql+psycopg://someone@127.0.0.1:1/catalog"
    result = CliRunner().invoke(cli, ["--database-url", url, "tags"])
    assert result.exit_code == 5, result.output
    assert "pip install 'orchestrator-catalog[postgres]'" in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_database_exits_5() -> None:
    url = "postgresql+psycopg://someone@127.0.0.1:1/catalog"
    result = CliRunner().invoke(cli, ["--database-url", url, "tags"])
    assert result.exit_code == 5
    assert "error: cannot reach the catalog database" in result.output
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(run) -> None:  # type: ignore[no-untyped-def]
    assert run("history").exit_code == 2
    assert run("nonsense").exit_code == 2
    for limit in ("0", "-1"):
        assert run("runs", "--limit", limit).exit_code == 2
        assert run("log", "main", "--limit", limit).exit_code == 2
    for grace in ("soon", "inf", "1e20s", "nan", "999999d"):
        result = run("gc", "--grace", grace)
        assert result.exit_code == 2, grace
        assert "Traceback" not in result.output and repr(grace)[1:-1] in result.output, grace


def test_gc_removes_only_unreferenced_old_blobs(run, populated: core.Services) -> None:  # type: ignore[no-untyped-def]
    stray = populated.cas.store_content(b"nobody references me")
    referenced = populated.cas.compute_hash(b"42")
    dry = as_json(run("gc", "--grace", "0s", "--dry-run", "--json"))
    assert dry["removed"] == [stray] and dry["dry_run"] is True
    assert populated.cas.exists(stray)
    kept = as_json(run("gc", "--grace", "1h", "--json"))
    assert kept["removed"] == [] and kept["kept_recent"] == 1
    done = as_json(run("gc", "--grace", "0s", "--json"))
    assert done["removed"] == [stray]
    assert done["removed_bytes"] == len(b"nobody references me")
    assert not populated.cas.exists(stray)
    assert populated.cas.get_content(referenced) == b"42"
    assert "removed 0 blobs" in run("gc", "--grace", "0s").output
    assert as_json(run("verify", "--json"))["problems"] == []


def test_verify_reports_missing_and_corrupt_blobs(run, populated: core.Services) -> None:  # type: ignore[no-untyped-def]
    ok = run("verify")
    assert ok.exit_code == 0 and "0 problems" in ok.output
    revenue = populated.cas.compute_hash(b"42")
    (populated.blob_root / "sha256" / revenue[7:9] / revenue[9:11] / revenue[7:]).write_bytes(b"43")
    corrupt = run("cat", "revenue", "--partition", "2026-01-01")  # verified before writing
    assert (corrupt.exit_code, corrupt.stdout) == (1, "")
    assert "corrupt" in corrupt.stderr and "store the same bytes again" in corrupt.stderr
    populated.cas.store_content(b"42")
    latest = populated.cas.compute_hash(b'[{"id": 1}, {"id": 2}]')
    first = populated.cas.compute_hash(b'[{"id": 1}]')
    root = populated.blob_root / "sha256"
    (root / latest[7:9] / latest[9:11] / latest[7:]).write_bytes(b"tampered")
    (root / first[7:9] / first[9:11] / first[7:]).unlink()
    result = run("verify", "--json")
    assert result.exit_code == 1
    problems = {p["cas_id"]: p for p in json.loads(result.output)["problems"]}
    assert problems[latest]["problem"] == "corrupt"
    assert problems[first]["problem"] == "missing"
    assert problems[latest]["tags"] == ["main"]
    assert problems[first]["tags"] == ["prod"]  # main's document no longer holds it
    assert problems[first]["artifact_ids"]
    assert (populated.blob_root / "tmp" / f"{latest[7:]}.corrupt").read_bytes() == b"tampered"
    unreadable = run("cat", "orders")  # verify set the corrupt file aside
    assert (unreadable.exit_code, unreadable.stdout) == (1, "")
    assert "missing" in unreadable.stderr and "store the same bytes again" in unreadable.stderr
    assert run("verify").exit_code == 1


def test_unknown_catalog_url_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--database-url", "sqlite:///x", "tags"])
    assert result.exit_code == 2 and "unsupported database url" in result.output


def test_unusable_catalog_locations_and_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a DuckDB file")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    catalog = ["--database-url", f"duckdb:///{tmp_path / 'c.duckdb'}"]
    blobs = ["--blob-root", str(tmp_path / "blobs")]
    core.connect(f"duckdb:///{tmp_path / 'c.duckdb'}", tmp_path / "blobs").close()
    cases = [
        (["--database-url", "not a url", "tags"], 2, "invalid database url 'not a url'"),
        (["--database-url", f"duckdb:///{tmp_path / 'notes.txt'}", *blobs, "tags"], 5, "notes.txt"),
        ([*catalog, "--blob-root", str(tmp_path / "notes.txt"), "tags"], 5, "blob folder"),
        ([*catalog, *blobs, "workflow", "create", str(deep), "--name", "x"], 2, "deep.json"),
    ]
    for args, status, named in cases:
        result = CliRunner().invoke(cli, args)
        assert (result.exit_code, result.exception.__class__) == (status, SystemExit), args
        assert named in result.output and "Traceback" not in result.output, result.output


def test_commands_that_need_a_catalog_do_not_create_one(
    run, populated: core.Services, blob_root: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A mistyped location is an error, never a new empty catalog: ``gc`` over one would
    find every blob of the real catalog unreferenced."""
    stored = sorted(p for p in blob_root.rglob("*") if p.is_file() and p.parent.name != "tmp")
    missing = tmp_path / "typo" / "catalog.duckdb"
    version = populated.tags.get_tag("main").target_id
    commands = [
        ["tags"],
        ["history", "main"],
        ["log", "main"],
        ["show", "main"],
        ["cat", "orders"],
        ["diff", "main", "prod"],
        ["runs"],
        ["runs", "show", "run-1"],
        ["workflow", "get", "main"],
        ["workflow", "patch", "main", str(tmp_path / "patch.json")],
        ["tag", "create", "qa", str(version)],
        ["tag", "move", "prod", str(version)],
        ["tag", "delete", "prod"],
        ["rollback", "main"],
        ["verify"],
        ["gc", "--grace", "0s"],
        ["merge", "prod", "main"],
        ["merge", "prod", "main", "--dry-run"],
        ["publish", "run-1"],
        ["blame", "main"],
        ["lineage", "sha256:" + "0" * 64],
    ]
    (tmp_path / "patch.json").write_text("[]")
    for args in commands:
        result = CliRunner().invoke(
            cli, ["--database-url", f"duckdb:///{missing}", "--blob-root", str(blob_root), *args]
        )
        assert result.exit_code == 3, (args, result.output)
        assert f"no catalog at '{missing}'" in result.output, args
    assert not missing.parent.exists()
    assert sorted(p for p in blob_root.rglob("*") if p.is_file() and p.parent.name != "tmp") == (
        stored
    )
    assert stored and as_json(run("tags", "--json"))  # the real catalog is untouched


def test_a_reader_that_goes_away_ends_cat_quietly(database_url: str, blob_root: Path) -> None:
    with core.connect(database_url, blob_root) as catalog:
        big = os.urandom(8 << 20)  # more than a pipe holds
        catalog.assets.commit_output("r", "main", "big", big, media_type="application/x-big")
    command = [str(Path(sys.executable).with_name("orchestrator")), "--database-url", database_url]
    cat = subprocess.Popen(
        [*command, "--blob-root", str(blob_root), "cat", "big"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert cat.stdout is not None and cat.stderr is not None
    assert cat.stdout.read(10) == big[:10]
    cat.stdout.close()  # like `| head -c 10`
    assert cat.wait(timeout=60) == 141
    assert cat.stderr.read() == b""
