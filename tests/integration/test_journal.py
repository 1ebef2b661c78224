"""DuckDB output commits are journaled, and the journal is folded into the file whole."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import core
import core.storage.db
import core.storage.duckdb.journal
from tests.support.helpers import statements_sent

JSON = "application/json"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'catalog.duckdb'}"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "catalog.duckdb.journal"


def commit(
    catalog: core.Services, node: str, content: bytes, run_id: str = "run-1"
) -> core.OutputCommit:
    return catalog.assets.commit_output(run_id, "main", node, content, media_type=JSON)


def lines(journal: Path) -> int:
    return journal.read_bytes().count(b"\n") if journal.exists() else 0


def test_an_output_commit_of_a_pinned_run_is_one_journal_record(
    url: str, tmp_path: Path, journal: Path
) -> None:
    with core.connect(url, tmp_path / "blobs") as catalog:
        commit(catalog, "a", b"1")  # the run's first touch pins it: an ordinary transaction
        sent = statements_sent(catalog)
        commit(catalog, "b", b"2")  # reads the tag and looks for the version in the file
        assert [s.split()[0] for s in sent] == ["SELECT", "SELECT"] and lines(journal) == 1
        sent.clear()
        third = commit(catalog, "c", b"3")  # on a version still in the journal: nothing to read
        assert sent == [] and lines(journal) == 2
        assert catalog.tags.get_tag("main").revision == third.revision == 3  # folds first
        assert [s.split()[2] for s in sent if s.startswith("INSERT")] == [
            "cas_blobs",
            "artifacts",
            "blob_refs",
            "tag_moves",
            "run_io",
            "journal_marks",
        ]
        assert lines(journal) == 0
        assert catalog.maintenance.verify().problems == []


def test_another_process_sees_every_journaled_commit(
    url: str, tmp_path: Path, journal: Path
) -> None:
    with core.connect(url, tmp_path / "blobs") as catalog:
        commits = [commit(catalog, f"n{i}", str(i).encode()) for i in range(5)]
        assert lines(journal) == 4
        seen = _in_another_process(url, tmp_path / "blobs")  # it queues; we fold, then yield
    assert seen == {"revision": 5, "moves": 5, "problems": 0}
    assert commits[-1].revision == 5 and lines(journal) == 0


def test_a_writer_killed_holding_the_file_loses_no_journaled_commit(
    url: str, tmp_path: Path, journal: Path
) -> None:
    writer = textwrap.dedent(
        f"""
        import os, core
        catalog = core.connect({url!r}, {str(tmp_path / "blobs")!r})
        for i in range(6):
            catalog.assets.commit_output("run-1", "main", f"n{{i}}", b"%d" % i, media_type="x/y")
        os._exit(0)  # no fold, no close: as if killed
        """
    )
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=Path.cwd())
    assert lines(journal) == 5
    with journal.open("ab") as tail:
        tail.write(b'0badc0de [["insert", "cas_')  # a record cut short by the kill
    with core.connect(url, tmp_path / "blobs") as catalog:
        assert catalog.tags.get_tag("main").revision == 6
        assert [m.revision for m in catalog.tags.get_history("main")] == list(range(1, 7))
        assert len(catalog.runs.get_run_io("run-1")) == 6
        assert catalog.maintenance.verify().problems == []
    assert lines(journal) == 0


def test_a_writer_killed_holding_the_file_loses_no_staged_commit(
    url: str, tmp_path: Path, journal: Path
) -> None:
    """A ``publish="run"`` run's outputs are journaled too (its staged head's moves), and
    recovered whole: the run publishes everything it reported staged."""
    writer = textwrap.dedent(
        f"""
        import os, core
        catalog = core.connect({url!r}, {str(tmp_path / "blobs")!r})
        catalog.assets.commit_output("seed", "main", "base", b"0", media_type="x/y")
        catalog.runs.create_run("wap", "main", publish="run")
        for i in range(5):
            catalog.assets.commit_output("wap", "main", f"n{{i}}", b"%d" % i, media_type="x/y")
        os._exit(0)  # no fold, no close: as if killed
        """
    )
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=Path.cwd())
    assert lines(journal) == 5  # create_run pinned it: every staged output is a line
    with core.connect(url, tmp_path / "blobs") as catalog:
        assert catalog.tags.get_tag("main").revision == 1  # staged: main did not move
        published = catalog.runs.publish("wap")
        assert published.fast_forward and catalog.tags.get_tag("main").revision == 2
        nodes = catalog.workflows.get_workflow_by_tag("main")["nodes"]
        assert sorted(nodes) == ["base", "n0", "n1", "n2", "n3", "n4"]
        assert catalog.maintenance.verify().problems == []
    assert lines(journal) == 0


def test_a_journal_folded_already_is_not_applied_twice(
    url: str, tmp_path: Path, journal: Path
) -> None:
    with core.connect(url, tmp_path / "blobs") as catalog:
        for i in range(4):
            commit(catalog, f"n{i}", str(i).encode())
        kept = journal.read_bytes()
        catalog.tags.get_tag("main")  # folds and empties the journal
        journal.write_bytes(kept)  # as if the process died between the two
    with core.connect(url, tmp_path / "blobs") as catalog:
        assert len(catalog.tags.get_history("main")) == 4
        assert catalog.tags.get_tag("main").revision == 4
        assert catalog.maintenance.verify().problems == []
    assert lines(journal) == 0


def test_a_corrupt_record_before_the_last_is_refused_by_name(
    url: str, tmp_path: Path, journal: Path
) -> None:
    with core.connect(url, tmp_path / "blobs") as catalog:
        commit(catalog, "a", b"1")
    journal.write_bytes(b"00000000 [] \n00000000 []\n")
    with pytest.raises(core.StorageUnavailableError, match=r"journal .* is corrupt at line 1"):
        core.connect(url, tmp_path / "blobs")


def test_a_version_on_a_folded_parent_that_exists_is_reused(url: str, tmp_path: Path) -> None:
    with core.connect(url, tmp_path / "blobs") as catalog:
        first = commit(catalog, "a", b"1")
        second = commit(catalog, "a", b"2")
        catalog.tags.move_tag("main", first.artifact_id)  # back: the same patch again next
        again = commit(catalog, "a", b"2")
        assert (again.artifact_id, again.version_hash) == (second.artifact_id, second.version_hash)
        assert [m.to_target_id for m in catalog.tags.get_history("main")][-1] == second.artifact_id
        assert catalog.maintenance.verify().problems == []


def test_a_long_journal_is_folded_without_waiting_for_a_reader(
    url: str, tmp_path: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core.storage.db, "FOLD_AT", 3)
    with core.connect(url, tmp_path / "blobs") as catalog:
        counts = [lines(journal) for i in range(8) if commit(catalog, f"n{i}", b"%d" % i)]
    assert counts == [0, 1, 2, 3, 1, 2, 3, 1]


def _in_another_process(url: str, blob_root: Path) -> dict[str, int]:
    reader = textwrap.dedent(
        f"""
        import json, core
        with core.connect({url!r}, {str(blob_root)!r}) as catalog:
            print(json.dumps({{
                "revision": catalog.tags.get_tag("main").revision,
                "moves": len(catalog.tags.get_history("main")),
                "problems": len(catalog.maintenance.verify().problems),
            }}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", reader], capture_output=True, text=True, check=True, timeout=120
    )
    seen: dict[str, int] = json.loads(result.stdout)
    return seen


def test_a_journal_that_cannot_be_emptied_after_a_fold_loses_nothing(
    url: str, tmp_path: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_clear = core.storage.duckdb.journal.Journal.clear
    failures = iter([OSError(24, "Too many open files")])

    def clear_once_failing(self: core.storage.duckdb.journal.Journal) -> None:
        if (failure := next(failures, None)) is not None:
            raise core.StorageUnavailableError(str(failure))
        real_clear(self)

    monkeypatch.setattr(core.storage.duckdb.journal.Journal, "clear", clear_once_failing)
    with core.connect(url, tmp_path / "blobs") as catalog:
        commit(catalog, "a", b"1")
        commit(catalog, "b", b"2")
        with pytest.raises(core.StorageUnavailableError, match="Too many open files"):
            catalog.tags.get_tag("main")  # folded, but the journal still holds record 1
        assert lines(journal) == 1
        later = [commit(catalog, node, b"3") for node in ("c", "d")]  # journaled behind it
        assert later[-1].revision == 4
        kept = journal.read_bytes()
    journal.write_bytes(kept)  # as if the process had died before folding again
    with core.connect(url, tmp_path / "blobs") as catalog:
        assert [m.revision for m in catalog.tags.get_history("main")] == [1, 2, 3, 4]
        assert sorted(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == list("abcd")
        assert catalog.maintenance.verify().problems == []


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_a_failed_append_leaves_no_trace_in_the_journal(
    url: str, tmp_path: Path, journal: Path, failing: str
) -> None:
    writer = textwrap.dedent(
        f"""
        import errno, os, core, core.storage.duckdb.journal
        catalog = core.connect({url!r}, {str(tmp_path / "blobs")!r})
        run = lambda node, value: catalog.assets.commit_output(
            "run-1", "main", node, value, media_type="x/y")
        run("a", b"1"); run("b", b"2")
        real_write, real_fsync = os.write, os.fsync
        journal_writes = []
        def journal(fd):
            return os.readlink(f"/proc/self/fd/{{fd}}").endswith(".journal")
        def write(fd, data):  # half the line reaches the file, then the disk is full
            if not journal(fd):
                return real_write(fd, data)
            journal_writes.append(fd)
            if len(journal_writes) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, bytes(data)[: len(data) // 2])
        def fsync(fd):
            if journal(fd):
                raise OSError(errno.EIO, "Input/output error")
            return real_fsync(fd)
        if {failing!r} == "write":
            os.write = write
        else:
            os.fsync = fsync
        try:
            run("c", b"3")
        except core.StorageUnavailableError as exc:
            print("failed:", exc)
        os.write, os.fsync = real_write, real_fsync
        print("revision", run("d", b"4").revision)
        os._exit(0)  # no fold: as if killed
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", writer], capture_output=True, text=True, check=True, timeout=120
    )
    assert "failed: cannot write the journal" in result.stdout
    assert "revision 3" in result.stdout
    with core.connect(url, tmp_path / "blobs") as catalog:
        assert catalog.tags.get_tag("main").revision == 3
        assert sorted(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == ["a", "b", "d"]
        outputs = sorted(io.node for io in catalog.runs.get_run_io("run-1"))
        assert outputs == ["a", "b", "d"]
        assert catalog.maintenance.verify().problems == []


def test_a_journal_left_beside_another_catalog_is_refused_by_name(
    url: str, tmp_path: Path, journal: Path
) -> None:
    with core.connect(url, tmp_path / "blobs") as catalog:
        commit(catalog, "a", b"1")
        commit(catalog, "b", b"2")
        kept = journal.read_bytes()
    (tmp_path / "catalog.duckdb").unlink()
    journal.write_bytes(kept)
    with pytest.raises(
        core.StorageUnavailableError, match=r"catalog.duckdb.journal.*move it aside"
    ):
        core.connect(url, tmp_path / "blobs")


def test_an_append_interrupted_after_its_line_is_synced_loses_no_later_commit(
    url: str, tmp_path: Path, journal: Path
) -> None:
    """Ctrl-C (or EIO from close) after a line is synced: the caller saw an error, the line
    may count, and the commits acknowledged after it must survive the writer's death."""
    writer = textwrap.dedent(
        f"""
        import os, core, core.storage.duckdb.journal as journal_module
        catalog = core.connect({url!r}, {str(tmp_path / "blobs")!r})
        commit = lambda i: catalog.assets.commit_output(
            "run-1", "main", f"n{{i}}", b"%d" % i, media_type="x/y")
        commit(0)
        commit(1)
        real_close, calls = journal_module.os.close, []
        def interrupted_close(fd):
            real_close(fd)
            if not calls:
                calls.append(fd)
                raise KeyboardInterrupt
        journal_module.os.close = interrupted_close
        try:
            commit(2)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        journal_module.os.close = real_close
        for i in range(3, 6):
            print(commit(i).revision, flush=True)
        os._exit(0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", writer], check=True, cwd=Path.cwd(), capture_output=True, text=True
    )
    reported = done.stdout.split()
    assert reported[0] == "interrupted" and len(reported) == 4
    with core.connect(url, tmp_path / "blobs") as catalog:
        nodes = set(catalog.workflows.get_workflow_by_tag("main")["nodes"])
        assert {"n0", "n1", "n3", "n4", "n5"} <= nodes  # every acknowledged commit
        history = catalog.tags.get_history("main")
        assert [move.revision for move in history] == list(range(1, len(history) + 1))
        assert catalog.maintenance.verify().problems == []


def test_a_journal_of_run_values_alone_beside_another_catalog_is_refused(
    url: str, tmp_path: Path, journal: Path
) -> None:
    """An unchanged commit journals only its run's values; beside a catalog that holds
    the same small blob but not the run, it must still be refused, not applied."""
    other = tmp_path / "other"
    other.mkdir()
    writer = textwrap.dedent(
        f"""
        import os, core
        catalog = core.connect({url!r}, {str(tmp_path / "blobs")!r})
        catalog.assets.commit_output("run-a", "main", "a", b"1", media_type="x/y")
        catalog.assets.commit_output("run-a", "main", "a", b"1", media_type="x/y")
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=Path.cwd())
    assert lines(journal) == 1  # the unchanged commit: run values only
    other_url = f"duckdb:///{other / 'catalog.duckdb'}"
    with core.connect(other_url, other / "blobs") as catalog:
        catalog.assets.commit_output("run-b", "main", "x", b"1", media_type="x/y")
    (other / "catalog.duckdb.journal").write_bytes(journal.read_bytes())
    with pytest.raises(core.StorageUnavailableError, match="run 'run-a'"):
        core.connect(other_url, other / "blobs")
