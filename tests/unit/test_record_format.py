"""Journal lines: a commit record read back equals the one written, and any other line is
refused with the part that is wrong named."""

import json
import uuid
from datetime import datetime
from typing import Any

import pytest

from core.domain import ArtifactKind, Direction
from core.storage.commit_record import BlobEntry, CommitRecord, NewVersion, RunValue, TagSwap
from core.storage.duckdb.record_format import FORMAT, RecordError, decode, encode

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def full_record() -> CommitRecord:
    """A record with every field set, at values that lose something when mishandled
    (microseconds, a size beyond 32 bits, text outside ASCII, a partition key)."""
    parent, version = uuid.uuid4(), uuid.uuid4()
    return CommitRecord(
        at=datetime(2026, 12, 4, 23, 59, 59, 999_999),
        blobs=(BlobEntry(A, 0, "application/json"), BlobEntry(B, 2**40, "x/y; charset=utf-8")),
        version=NewVersion(
            version, ArtifactKind.PATCH_SET, B, A, parent, "naïve ✓", None, '{"m": "é"}', (B,)
        ),
        swap=TagSwap("main", parent, 41, version, ArtifactKind.PATCH_SET, "me", "why\nnot", "r-1"),
        run_id="r-1",
        run_values=(
            RunValue(Direction.OUTPUT, "orders", "2026-12-04", B, "x/y", 2**40),
            RunValue(Direction.INPUT, "raw", None, A, "application/json", 0),
        ),
    )


def through_a_line(record: CommitRecord) -> tuple[uuid.UUID, CommitRecord]:
    record_id = uuid.uuid4()
    line = json.loads(json.dumps(encode(record_id, record)))
    decoded = decode(line)
    assert decoded[0] == record_id
    return decoded


@pytest.mark.parametrize(
    "record",
    [
        full_record(),
        CommitRecord(datetime(2026, 1, 1)),
        CommitRecord(datetime(2026, 1, 1, 0, 0, 0, 1), run_id="r", run_values=()),
    ],
    ids=["every field", "nothing", "a run with no values"],
)
def test_a_record_reads_back_equal_and_of_the_same_types(record: CommitRecord) -> None:
    _, back = through_a_line(record)
    assert back == record
    assert type(back.at) is datetime and back.at.tzinfo is None
    if record.version is not None:
        assert back.version is not None and type(back.version.id) is uuid.UUID
        assert back.version.kind is record.version.kind
    for value in back.run_values:
        assert type(value.direction) is Direction and type(value.size) is int


def line() -> dict[str, Any]:
    return json.loads(json.dumps(encode(uuid.uuid4(), full_record())))


def spoiled(change: str) -> dict[str, Any]:
    spoilt = line()
    record = spoilt["record"]
    if change == "format":
        spoilt["format"] = FORMAT + 1
    elif change == "bool":
        record["blobs"][1]["size"] = True
    elif change == "float":
        record["swap"]["expected_revision"] = 41.0
    elif change == "offset":
        record["at"] += "+00:00"
    elif change == "kind":
        record["version"]["kind"] = "branch"
    elif change == "hash":
        record["version"]["version_hash"] = "md5:0"
    elif change == "extra":
        record["swap"]["force"] = True
    elif change == "missing":
        del record["run_values"][0]["node"]
    elif change == "orphan values":
        record["run_id"] = None
    return spoilt


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("format", "format 2"),
        ("bool", "record.blobs[1].size is True, not int"),
        ("float", "record.swap.expected_revision is 41.0, not int"),
        ("offset", "record.at is"),
        ("kind", "record.version.kind is 'branch', not one of"),
        ("hash", "record.version.version_hash is 'md5:0', not a sha256: content id"),
        ("extra", "record.swap has the fields"),
        ("missing", "record.run_values[0] has the fields"),
        ("orphan values", "a record with run values names their run"),
    ],
)
def test_a_line_of_another_form_is_refused_by_its_part(change: str, named: str) -> None:
    with pytest.raises(RecordError) as refused:
        decode(spoiled(change))
    assert named in str(refused.value)


def test_a_line_of_an_earlier_release_says_what_to_do() -> None:
    with pytest.raises(RecordError, match="fold it with the release that wrote it"):
        decode({"format": 0, "id": str(uuid.uuid4()), "record": {}})


def test_a_line_as_releases_before_the_format_wrote_it_says_what_to_do() -> None:
    with pytest.raises(RecordError, match="fold it with the release that wrote it"):
        decode([["swap", {"name": "main"}, 3]])
