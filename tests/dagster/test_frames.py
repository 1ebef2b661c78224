"""The Parquet codec: round trips, determinism, cross-library reads, the writer's pipe."""

import hashlib
import io
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator_dagster import codecs, frames
from orchestrator_dagster.piped import WriterError, WrittenStream

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")


def pandas_frame(rows: int = 3) -> Any:
    frame = pd.DataFrame(
        {
            "id": pd.array([1, None, 3], dtype="Int64"),
            "x": [1.5, None, 3.25],
            "name": ["a", None, "c"],
            "colour": pd.Categorical(["red", "blue", None]),
            "at": pd.to_datetime(["2024-03-31 01:30", None, "2024-10-27 02:30"]).tz_localize(
                "Europe/Paris", ambiguous=True
            ),
            "tags": [["x", "y"], None, []],
        }
    )
    return frame.head(rows)


def polars_frame(rows: int = 3) -> Any:
    frame = pl.DataFrame(
        {
            "id": [1, None, 3],
            "x": [1.5, None, 3.25],
            "name": ["a", None, "c"],
            "colour": pl.Series(["red", "blue", None], dtype=pl.Categorical),
            "at": pl.Series([1_711_845_000_000_000, None, 1_729_989_000_000_000]).cast(
                pl.Datetime("us", "Europe/Paris")
            ),
            "tags": [["x", "y"], None, []],
        }
    )
    return frame.head(rows)


def arrow_table(rows: int = 3) -> Any:
    return polars_frame(rows).to_arrow()


def encode(value: Any) -> bytes:
    sink = io.BytesIO()
    frames.write(frames.prepare(value), sink)
    return sink.getvalue()


def decode(data: bytes, annotation: Any = Any) -> Any:
    return frames.read(io.BytesIO(data), annotation)


@pytest.mark.parametrize("rows", [3, 0])
def test_pandas_round_trip(rows: int) -> None:
    frame = pandas_frame(rows)
    loaded = decode(encode(frame))
    # a frame of no rows keeps its categorical column, not the categories (Parquet has no
    # dictionary page without rows)
    pd.testing.assert_frame_equal(loaded, frame, check_categorical=rows > 0)
    assert isinstance(loaded["colour"].dtype, pd.CategoricalDtype)
    assert loaded["at"].dtype == pd.DatetimeTZDtype(frame["at"].dtype.unit, "Europe/Paris")


@pytest.mark.parametrize("rows", [3, 0])
def test_polars_round_trip(rows: int) -> None:
    frame = polars_frame(rows)
    loaded = decode(encode(frame))
    assert isinstance(loaded, pl.DataFrame)
    assert loaded.schema == frame.schema
    assert loaded.equals(frame)


def test_a_lazy_frame_is_collected_and_loads_lazy() -> None:
    lazy = polars_frame().lazy().with_columns(double=pl.col("x") * 2)
    loaded = decode(encode(lazy))
    assert isinstance(loaded, pl.LazyFrame)
    assert loaded.collect().equals(lazy.collect())
    assert encode(lazy) == encode(lazy.collect()).replace(b"polars.DataFrame", b"polars.LazyFrame")


@pytest.mark.parametrize("rows", [3, 0])
def test_arrow_round_trip(rows: int) -> None:
    table = arrow_table(rows)
    loaded = decode(encode(table))
    assert isinstance(loaded, pa.Table)
    assert loaded.equals(table)
    assert loaded.schema.metadata == table.schema.metadata  # the codec's own key is dropped


@pytest.mark.parametrize("make", [pandas_frame, polars_frame, arrow_table])
def test_the_same_data_gives_the_same_bytes_however_it_is_chunked(make: Callable[..., Any]) -> None:
    big = {
        pandas_frame: lambda: pd.concat([pandas_frame()] * 200_000, ignore_index=True),
        polars_frame: lambda: pl.concat([polars_frame()] * 200_000, rechunk=False),
        arrow_table: lambda: pa.concat_tables([arrow_table()] * 200_000),
    }[make]()
    whole = {
        pandas_frame: lambda: big.copy(),
        polars_frame: lambda: big.rechunk(),
        arrow_table: lambda: big.combine_chunks(),
    }[make]()
    assert encode(big) == encode(whole)


def test_a_file_says_which_type_wrote_it() -> None:
    import pyarrow.parquet as pq

    for value, kind in [
        (pandas_frame(), "pandas.DataFrame"),
        (polars_frame(), "polars.DataFrame"),
        (polars_frame().lazy(), "polars.LazyFrame"),
        (arrow_table(), "pyarrow.Table"),
    ]:
        metadata = pq.read_metadata(io.BytesIO(encode(value))).metadata
        assert metadata[frames.FRAME_KEY.encode()] == kind.encode()


def test_a_polars_input_reads_what_pandas_wrote_and_back() -> None:
    from_pandas = decode(encode(pandas_frame()), pl.DataFrame)
    assert isinstance(from_pandas, pl.DataFrame)
    assert from_pandas.columns == ["id", "x", "name", "colour", "at", "tags"]  # no index column
    assert from_pandas["colour"].dtype == pl.Categorical
    unit = pandas_frame()["at"].dtype.unit
    assert from_pandas["at"].dtype == pl.Datetime(unit, "Europe/Paris")
    assert from_pandas["tags"].to_list() == [["x", "y"], None, []]

    from_polars = decode(encode(polars_frame()), pd.DataFrame)
    assert isinstance(from_polars, pd.DataFrame)
    assert from_polars["id"].tolist()[::2] == [1, 3] and from_polars["id"].isna().tolist()[1]
    assert isinstance(from_polars["colour"].dtype, pd.CategoricalDtype)
    assert str(from_polars["at"].dtype) == "datetime64[us, Europe/Paris]"

    table = decode(encode(pandas_frame()), pa.Table)
    assert isinstance(table, pa.Table) and table.num_rows == 3
    lazy = decode(encode(arrow_table()), pl.LazyFrame)
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect().equals(polars_frame())


def test_a_pandas_index_survives_its_round_trip_and_polars_drops_it() -> None:
    frame = pd.DataFrame({"v": [1, 2]}, index=pd.Index(["a", "b"]))
    pd.testing.assert_frame_equal(decode(encode(frame)), frame)
    assert decode(encode(frame), pl.DataFrame).columns == ["v"]


def test_a_frame_an_older_codec_pickled_loads_as_annotated() -> None:
    frame = pandas_frame()
    registry = codecs.CodecRegistry()
    decoded = registry.decode(pickle.dumps(frame), codecs.PICKLE_MEDIA_TYPE, what="x")
    pd.testing.assert_frame_equal(frames.as_annotated(decoded, Any), frame)
    as_polars = frames.as_annotated(decoded, pl.DataFrame)
    assert isinstance(as_polars, pl.DataFrame) and as_polars.height == 3


def test_partitions_concatenate_as_the_annotated_type() -> None:
    parts = [pandas_frame(), pandas_frame(2)]
    joined = frames.concat(parts, pd.DataFrame)
    assert joined.index.tolist() == [0, 1, 2, 3, 4]
    assert frames.concat(parts, pl.DataFrame).height == 5
    assert frames.concat([arrow_table(), arrow_table(1)], pa.Table).num_rows == 4
    assert frames.concat([polars_frame().lazy()], pl.LazyFrame).collect().height == 3


def test_frames_choose_the_parquet_codec_and_others_do_not() -> None:
    registry = codecs.CodecRegistry()
    for value in [pandas_frame(), polars_frame(), polars_frame().lazy(), arrow_table()]:
        assert registry.codec_for(value) is codecs.PARQUET
    assert registry.codec_for(pd.Series([1])) is codecs.PICKLE
    assert registry.codec_of(frames.PARQUET_MEDIA_TYPE, what="x") is codecs.PARQUET
    with pytest.raises(codecs.CodecError, match="as a stream"):
        registry.encode(pandas_frame(), what="x")


def test_a_frame_parquet_cannot_hold_is_a_codec_error_naming_it() -> None:
    frame = pd.DataFrame({"mixed": [1, "two", object()]})
    with (
        pytest.raises(codecs.CodecError, match="cannot encode the output 'odd' as application/"),
        codecs.written(codecs.PARQUET, frames.prepare(frame), what="the output 'odd'") as stream,
    ):
        stream.read()


def test_a_corrupt_file_is_a_codec_error_naming_it() -> None:
    with pytest.raises(codecs.CodecError, match="cannot decode asset 'x'"):
        codecs.read(codecs.PARQUET, io.BytesIO(b"not parquet"), Any, what="asset 'x'")


def test_a_writer_that_fails_fails_the_read_not_shortens_it() -> None:
    def write(sink: Any) -> None:
        sink.write(b"x" * 3_000_000)
        raise ValueError("boom")

    with WrittenStream(write) as stream, pytest.raises(WriterError, match="boom"):
        while stream.read(1 << 20):
            pass


def test_a_reader_that_stops_stops_the_writer() -> None:
    written: list[int] = []

    def write(sink: Any) -> None:
        for _ in range(1000):  # far more than the pipe holds
            written.append(sink.write(b"y" * (1 << 20)))

    stream = WrittenStream(write)
    assert stream.read(10) == b"y" * 10
    stream.close()  # returns: the writer got a broken pipe instead of blocking forever
    assert len(written) < 1000


DETERMINISM_SCRIPT = """
import hashlib, io, sys
import numpy as np, pandas as pd, polars as pl
from orchestrator_dagster import frames
if sys.argv[1] == "other":  # a process that did other work first
    pl.Series(["blue", "zz", "red"], dtype=pl.Categorical)
    pd.Series(["q"] * 3, dtype="category")
n = 300_000
rng = np.random.default_rng(7)
colour = rng.choice(["red", "green", "blue"], n)
values = {"id": np.arange(n), "x": rng.random(n), "colour": colour}
for value in (pd.DataFrame(values).astype({"colour": "category"}),
              pl.DataFrame(values).with_columns(pl.col("colour").cast(pl.Categorical))):
    sink = io.BytesIO()
    frames.write(frames.prepare(value), sink)
    print(hashlib.sha256(sink.getvalue()).hexdigest())
"""


def test_the_same_frame_gives_the_same_bytes_in_another_process() -> None:
    def hashes(mode: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT, mode],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.split()

    first, second = hashes("plain"), hashes("other")
    assert len(first) == 2
    assert first == second
    assert hashlib.sha256(b"").hexdigest() not in first


WITHOUT_FRAME_LIBRARIES = """
import sys
for name in ("pandas", "polars", "pyarrow", "numpy"):
    sys.modules[name] = None  # import fails, as where they are not installed
import io
import dagster as dg
import core
from orchestrator_dagster import OrchestratorResource, VersionedIOManager, codecs, frames

@dg.asset
def plain() -> dict:
    return {"a": 1}

@dg.asset
def stored_frame() -> dict:
    raise AssertionError("its value is stored by hand")

@dg.asset
def reads_frame(stored_frame) -> int:
    return 0

url, blobs = sys.argv[1], sys.argv[2]
orchestrator = OrchestratorResource(database_url=url, blob_root=blobs)
resources = {"io_manager": VersionedIOManager(orchestrator=orchestrator)}
with dg.instance_for_test() as instance:
    assert dg.materialize([plain], resources=resources, instance=instance).success
    with core.connect(url, blobs) as catalog:
        catalog.assets.commit_output(
            "by-hand", "main", "stored_frame", b"PAR1", media_type=frames.PARQUET_MEDIA_TYPE
        )
    result = dg.materialize(
        [stored_frame, reads_frame], selection=[reads_frame], resources=resources,
        instance=instance, raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    print(failure.step_failure_data.error.to_string())
assert not any(sys.modules.get(name) for name in ("pandas", "polars", "pyarrow"))
"""


def test_the_package_works_without_any_frame_library(tmp_path: Any) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_FRAME_LIBRARIES,
            f"duckdb:///{tmp_path / 'catalog.duckdb'}",
            str(tmp_path / "blobs"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pip install 'orchestrator-catalog[arrow]'" in done.stdout
    assert "cannot decode asset 'stored_frame'" in done.stdout
