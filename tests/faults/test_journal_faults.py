"""A journal that does not fit its catalog is refused by name, and nothing of it applied.

The journals are real: a writer commits outputs of a pinned run and dies holding the file
(``os._exit``: no fold, no close), as a killed one would. The tests then tamper with the
journal, rewriting it with the journal module's own encoder (so every checksum is valid),
or place it beside another catalog.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import core
import core.storage.duckdb.fold
from core.storage.duckdb.journal import Journal
from tests.support.helpers import row_counts, run_orchestrator

pytestmark = pytest.mark.faults

OUTPUTS = 6
"""Outputs the dead writer commits: the first pins the run, the other five are journaled."""


def die_holding_the_file(folder: Path, run_id: str = "run-1") -> None:
    """A catalog in ``folder`` whose writer journaled outputs and died holding the file."""
    database_url, blob_root = url(folder), str(folder / "blobs")
    writer = textwrap.dedent(
        f"""
        import os, core
        catalog = core.connect({database_url!r}, {blob_root!r})
        for i in range({OUTPUTS}):
            catalog.assets.commit_output({run_id!r}, "main", f"n{{i}}", b"%d" % i, media_type="x/y")
        os._exit(0)  # no fold, no close: as if killed
        """
    )
    subprocess.run([sys.executable, "-c", writer], check=True, timeout=120)


@pytest.fixture(scope="module")
def dead_writer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dead-writer")
    die_holding_the_file(folder)
    assert len(Journal(folder / "catalog.duckdb.journal").records()) == OUTPUTS - 1
    return folder


@pytest.fixture
def folder(dead_writer: Path, tmp_path: Path) -> Path:
    """A copy of the dead writer's catalog, journal and blobs."""
    copy = tmp_path / "catalog"
    shutil.copytree(dead_writer, copy)
    return copy


def url(folder: Path) -> str:
    return f"duckdb:///{folder / 'catalog.duckdb'}"


def journal_of(folder: Path) -> Path:
    return folder / "catalog.duckdb.journal"


def counts_without_journal(folder: Path) -> dict[str, int]:
    """The catalog's rows with its journal set aside (and put back)."""
    journal, aside = journal_of(folder), folder / "journal.aside"
    journal.rename(aside)
    try:
        with core.connect(url(folder), folder / "blobs", create=False) as catalog:
            return row_counts(catalog)
    finally:
        aside.rename(journal)


def rewrite(journal: Path, lines: list[Any]) -> None:
    """Write ``lines`` as the journal, each with its valid checksum."""
    journal.unlink()
    written = Journal(journal)
    for line in lines:
        written.append(line)


def removed(lines: list[Any]) -> None:
    del lines[1]


def removed_last_but_one(lines: list[Any]) -> None:
    del lines[-2]


def duplicated(lines: list[Any]) -> None:
    lines.insert(3, lines[2])


def duplicated_at_the_end(lines: list[Any]) -> None:
    lines.append(lines[1])


def reordered(lines: list[Any]) -> None:
    lines[1], lines[2] = lines[2], lines[1]


def another_format(lines: list[Any]) -> None:
    lines[-1]["format"] = 2


def an_earlier_releases_line(lines: list[Any]) -> None:
    lines.append([["swap", {"name": "main"}, 6]])


def unknown_field(lines: list[Any]) -> None:
    lines[-1]["record"]["renamed"] = {"tag": "main"}


def missing_field(lines: list[Any]) -> None:
    del lines[0]["record"]["version"]["version_hash"]


def wrong_type(lines: list[Any]) -> None:
    lines[2]["record"]["swap"]["expected_revision"] = "2"


def a_bool_for_a_number(lines: list[Any]) -> None:
    lines[2]["record"]["blobs"][0]["size"] = True


def bad_uuid(lines: list[Any]) -> None:
    lines[1]["record"]["version"]["parent_id"] = "not-a-uuid"


def a_time_with_an_offset(lines: list[Any]) -> None:
    lines[1]["record"]["at"] += "+02:00"


def not_an_object(lines: list[Any]) -> None:
    lines.insert(2, ["insert", "cas_blobs"])


def foreign_blob(lines: list[Any]) -> None:
    lines[3]["record"]["run_values"][0]["cas_id"] = "sha256:" + "0" * 64


TAMPERINGS: dict[str, Callable[[list[Any]], None]] = {
    f.__name__: f
    for f in (
        removed,
        removed_last_but_one,
        duplicated,
        duplicated_at_the_end,
        reordered,
        another_format,
        an_earlier_releases_line,
        unknown_field,
        missing_field,
        wrong_type,
        a_bool_for_a_number,
        bad_uuid,
        a_time_with_an_offset,
        not_an_object,
        foreign_blob,
    )
}


def assert_refused(folder: Path, before: dict[str, int], kept: bytes) -> None:
    """The catalog refuses to open by name (in process and from the command line, exit 5,
    one line), nothing of the journal is applied, and the journal stays as it was."""
    journal = journal_of(folder)
    with pytest.raises(core.StorageUnavailableError, match="move it aside") as refused:
        core.connect(url(folder), folder / "blobs")
    assert str(journal) in str(refused.value) and "\n" not in str(refused.value)
    result = run_orchestrator(url(folder), folder / "blobs", "tags")
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(journal) in lines[0] and "move it aside" in lines[0], lines
    assert journal.read_bytes() == kept
    assert counts_without_journal(folder) == before


def test_the_dead_writers_journal_itself_is_recovered(folder: Path) -> None:
    before = counts_without_journal(folder)
    result = run_orchestrator(url(folder), folder / "blobs", "tags")
    assert result.returncode == 0, result.stderr
    with core.connect(url(folder), folder / "blobs") as catalog:
        assert catalog.tags.get_tag("main").revision == OUTPUTS
        assert row_counts(catalog)["tag_moves"] == before["tag_moves"] + OUTPUTS - 1
    assert journal_of(folder).read_bytes() == b""


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_a_tampered_journal_is_refused_and_nothing_applied(folder: Path, tampering: str) -> None:
    before = counts_without_journal(folder)
    records = Journal(journal_of(folder)).records()
    TAMPERINGS[tampering](records)
    rewrite(journal_of(folder), records)
    assert_refused(folder, before, journal_of(folder).read_bytes())


def test_a_line_nested_deeper_than_any_record_is_refused(folder: Path) -> None:
    """A line with a valid checksum whose JSON nests 2,000 deep (deeper than the decoder
    recurses): refused as a corrupt line, not a ``RecursionError`` traceback."""
    before = counts_without_journal(folder)
    text = b"[" * 2000 + b"]" * 2000
    with journal_of(folder).open("ab") as journal:
        journal.write(b"%08x %s\n" % (zlib.crc32(text), text))
    assert_refused(folder, before, journal_of(folder).read_bytes())


def test_a_dead_writers_journal_beside_another_catalog_is_refused(
    dead_writer: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    die_holding_the_file(other, run_id="run-other")
    with core.connect(url(other), other / "blobs"):
        pass  # its own journal folded: a catalog in use, with its own history of main
    before = counts_without_journal(other)
    kept = journal_of(dead_writer).read_bytes()
    journal_of(other).write_bytes(kept)
    assert_refused(other, before, kept)


def test_a_folded_journal_with_a_record_duplicated_is_refused(folder: Path) -> None:
    records = Journal(journal_of(folder)).records()
    with core.connect(url(folder), folder / "blobs"):
        pass  # folds it
    before = counts_without_journal(folder)
    duplicated(records)
    rewrite(journal_of(folder), records)
    assert_refused(folder, before, journal_of(folder).read_bytes())


def test_a_journal_path_that_is_a_folder_is_refused(folder: Path) -> None:
    before = counts_without_journal(folder)
    journal = journal_of(folder)
    journal.unlink()
    journal.mkdir()
    (journal / "note").write_text("not a journal")
    result = run_orchestrator(url(folder), folder / "blobs", "tags")
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(journal) in lines[0] and "a folder" in lines[0], lines
    journal.joinpath("note").unlink()
    journal.rmdir()
    with core.connect(url(folder), folder / "blobs") as catalog:
        assert row_counts(catalog) == before


def test_a_fold_that_fails_midway_applies_nothing(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after some of the journal's statements ran rolls every one of them back
    (the last statement of a fold fails here), and the journal recovers whole later."""
    before = counts_without_journal(folder)
    kept = journal_of(folder).read_bytes()
    insert = core.storage.duckdb.fold._insert

    def failing_last(connection: Any, table: Any, rows: Any, on_conflict: str = "") -> None:
        if table.name == "journal_marks":
            raise sa.exc.OperationalError(
                "INSERT INTO journal_marks", {}, OSError("disk I/O error")
            )
        insert(connection, table, rows, on_conflict)

    monkeypatch.setattr(core.storage.duckdb.fold, "_insert", failing_last)
    with pytest.raises(core.StorageUnavailableError, match="nothing of it was applied"):
        core.connect(url(folder), folder / "blobs")
    monkeypatch.undo()
    assert journal_of(folder).read_bytes() == kept
    assert counts_without_journal(folder) == before
    with core.connect(url(folder), folder / "blobs") as catalog:
        assert catalog.tags.get_tag("main").revision == OUTPUTS
    assert os.path.getsize(journal_of(folder)) == 0
