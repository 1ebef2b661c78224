"""Outputs committed from a stream: stored in bounded memory, then committed by cas id."""

import io

import pytest

import core
from tests.support.helpers import blob_files, row_counts

PARQUET = "application/vnd.apache.parquet"


class FailingStream(io.RawIOBase):
    """Gives some bytes, then fails, as a writer that breaks half way would."""

    def __init__(self) -> None:
        self.sent = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.sent:
            raise OSError("the writer broke")
        self.sent = True
        buffer[:4] = b"PAR1"
        return 4


def test_a_streamed_output_is_the_same_value_as_its_bytes(any_catalog: core.Services) -> None:
    content = b"PAR1" + bytes(range(256)) * 5000  # over a blob store's chunk size
    streamed = any_catalog.assets.commit_output_stream(
        "run-1", "main", "orders", io.BytesIO(content), media_type=PARQUET, deps=["raw"]
    )
    assert streamed.value == core.NodeValue(
        "orders", None, any_catalog.cas.compute_hash(content), PARQUET, len(content)
    )
    assert (streamed.changed, streamed.revision, streamed.from_version_hash) == (True, 1, None)
    node = any_catalog.workflows.get_workflow_by_tag("main")["nodes"]["orders"]
    assert (node["cas_id"], node["size"], node["deps"]) == (
        streamed.value.cas_id,
        len(content),
        ["raw"],
    )
    with any_catalog.assets.open(streamed.value) as handle:
        assert handle.read() == content

    again = any_catalog.assets.commit_output(
        "run-2", "main", "orders", content, media_type=PARQUET, deps=["raw"]
    )
    assert again.changed is False  # the same bytes, by stream or not, move nothing
    assert again.from_version_hash == streamed.version_hash
    changed = any_catalog.assets.commit_output_stream(
        "run-3", "main", "orders", io.BytesIO(content + b"!"), media_type=PARQUET
    )
    assert changed.changed and changed.from_version_hash == streamed.version_hash
    assert any_catalog.tags.get_tag("main").revision == 2


def test_a_streamed_op_output_is_kept_for_its_run(catalog: core.Services) -> None:
    value = catalog.assets.commit_step_output_stream(
        "run-1", "main", "emit.result", io.BytesIO(b"PAR1 data"), media_type=PARQUET
    )
    assert value == catalog.assets.locate_step_output("run-2", "main", "run-1", "emit.result")
    assert catalog.assets.read(value) == b"PAR1 data"
    assert catalog.tags.get_history("main") == []


@pytest.mark.parametrize("stream", ["not a stream", io.StringIO("text")])
def test_a_stream_that_is_not_binary_is_refused(catalog: core.Services, stream: object) -> None:
    with pytest.raises(core.ValidationError, match="binary file-like"):
        catalog.assets.commit_output_stream("run-1", "main", "orders", stream, media_type=PARQUET)  # type: ignore[arg-type]
    with pytest.raises(core.ValidationError, match="binary file-like"):
        catalog.assets.commit_step_output_stream(
            "run-1",
            "main",
            "emit.result",
            stream,  # type: ignore[arg-type]
            media_type=PARQUET,
        )
    assert catalog.tags.list_tags() == []


def test_bad_input_is_refused_before_the_stream_is_read(catalog: core.Services) -> None:
    stream = io.BytesIO(b"PAR1")
    with pytest.raises(core.ValidationError, match="node"):
        catalog.assets.commit_output_stream("run-1", "main", "", stream, media_type=PARQUET)
    assert stream.tell() == 0
    assert catalog.tags.list_tags() == []


def test_a_stream_that_fails_commits_nothing(catalog: core.Services) -> None:
    before = row_counts(catalog)
    with pytest.raises(OSError, match="the writer broke"):
        catalog.assets.commit_output_stream(
            "run-1",
            "main",
            "orders",
            FailingStream(),
            media_type=PARQUET,  # type: ignore[arg-type]
        )
    assert catalog.tags.list_tags() == []
    assert row_counts(catalog) == before
    assert blob_files(catalog) == []
