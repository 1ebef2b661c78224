"""DataFrames as Parquet: pandas, polars and pyarrow, imported only when a value needs them.

A frame is written with fixed options (compression, row groups, statistics; no timestamps),
so the same data gives the same bytes in any process with the same library versions, and
a re-materialised frame that did not change moves nothing. The file's key-value metadata
records which type wrote it (``orchestrator:frame``), so a value loads as that type when
its input has no frame annotation; an annotated input loads it as its own type, through
Arrow (a polars input reads what a pandas asset wrote).
"""

import base64
import enum
import importlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
FRAME_KEY = "orchestrator:frame"
"""The Parquet key-value metadata naming the type that wrote the file."""
ROW_GROUP_ROWS = 1024 * 1024
"""Rows per row group (pyarrow's default), fixed: the bytes must not depend on how the
frame is chunked."""
POLARS_COMPRESSION = ("zstd", 3)
"""polars' own default, named: its zstd is fast (and multi-threaded)."""
ARROW_COMPRESSION = ("snappy", None)
"""pyarrow's own default, named: its zstd costs pandas frames twice the time to write."""
_PANDAS_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


class FrameKind(enum.Enum):
    """A DataFrame type this codec writes and reads; the value names it."""

    PANDAS = "pandas.DataFrame"
    POLARS = "polars.DataFrame"
    POLARS_LAZY = "polars.LazyFrame"
    ARROW = "pyarrow.Table"

    @property
    def extra(self) -> str:
        """The package extra that installs what this kind needs."""
        return {"pandas": "pandas", "polars": "polars", "pyarrow": "arrow"}[self._module]

    @property
    def _module(self) -> str:
        return self.value.split(".", 1)[0]

    def matches(self, value_type: type) -> bool:
        """Whether ``value_type`` is (a subclass of) this kind's class; never imports."""
        module = sys.modules.get(self._module)
        cls = getattr(module, self.value.split(".", 1)[1], None) if module else None
        return isinstance(cls, type) and issubclass(value_type, cls)


def kind_of_type(annotation: Any) -> FrameKind | None:
    """The frame kind ``annotation`` names, or ``None`` (any other type or annotation)."""
    if not isinstance(annotation, type):
        return None
    return next((kind for kind in FrameKind if kind.matches(annotation)), None)


def is_frame(value: Any) -> bool:
    """Whether ``value`` is a frame this codec writes."""
    return kind_of_type(type(value)) is not None


@dataclass(frozen=True)
class Frame:
    """A frame ready to write: a ``LazyFrame`` collected once, with the kind that wrote it."""

    data: Any
    kind: FrameKind

    @property
    def arrow(self) -> Any:
        """The frame as a ``pyarrow.Table`` (zero-copy where the library allows)."""
        if self.kind is FrameKind.ARROW:
            return self.data
        if self.kind is FrameKind.PANDAS:
            return _pyarrow().Table.from_pandas(self.data)
        return self.data.to_arrow()


def prepare(value: Any) -> Frame:
    """``value`` as a ``Frame`` (a ``LazyFrame`` is collected here, once)."""
    kind = kind_of_type(type(value))
    if kind is None:
        raise TypeError(f"not a DataFrame: {type(value).__name__}")
    return Frame(value.collect() if kind is FrameKind.POLARS_LAZY else value, kind)


def write(frame: Frame, sink: BinaryIO) -> None:
    """Write ``frame`` to ``sink`` as Parquet, deterministically, as it goes (row group
    by row group, never the whole file in memory)."""
    if frame.kind in (FrameKind.POLARS, FrameKind.POLARS_LAZY):
        _polars_nested_in_one_chunk(frame.data).write_parquet(
            sink,
            compression=POLARS_COMPRESSION[0],
            compression_level=POLARS_COMPRESSION[1],
            statistics=True,
            row_group_size=ROW_GROUP_ROWS,
            metadata={FRAME_KEY: frame.kind.value},
        )
        return
    pq = _parquet()
    table = frame.arrow
    schema = table.schema.with_metadata(
        {**(table.schema.metadata or {}), FRAME_KEY.encode(): frame.kind.value.encode()}
    )
    with pq.ParquetWriter(
        sink,
        schema,
        compression=ARROW_COMPRESSION[0],
        compression_level=ARROW_COMPRESSION[1],
        version="2.6",
        write_statistics=True,
        store_schema=True,
    ) as writer:
        for start in range(0, max(table.num_rows, 1), ROW_GROUP_ROWS):  # 0 rows: 1 group
            part = table.slice(start, ROW_GROUP_ROWS)
            if any(column.num_chunks > 1 for column in part.columns):
                part = part.combine_chunks()  # pages must not depend on the input's chunks
            writer.write_table(part, row_group_size=ROW_GROUP_ROWS)


def _polars_nested_in_one_chunk(data: Any) -> Any:
    """``data`` with its nested columns (lists, arrays, structs) in one chunk each: polars
    writes those differently when they come in several (the other types it writes the same
    whatever their chunks), so only they are copied, and only when chunked."""
    chunked = [
        series.rechunk()
        for series in data.iter_columns()
        if series.dtype.is_nested() and series.n_chunks() > 1
    ]
    return data.with_columns(chunked) if chunked else data


def read(source: BinaryIO, as_type: Any = None) -> Any:
    """The Parquet file ``source`` as ``as_type``'s kind, else as the kind that wrote it
    (a file from elsewhere: pandas if it carries pandas' metadata, else a ``pyarrow.Table``)."""
    pq = _parquet()
    file_metadata = pq.read_metadata(source).metadata or {}
    kind = kind_of_type(as_type) or written_kind(file_metadata)
    source.seek(0)
    if kind in (FrameKind.POLARS, FrameKind.POLARS_LAZY):
        frame = _module(kind).read_parquet(source)
        index = [name for name in frame.columns if _PANDAS_INDEX_COLUMN.fullmatch(name)]
        frame = frame.drop(index) if index else frame
        return frame.lazy() if kind is FrameKind.POLARS_LAZY else frame
    table = pq.read_table(source)
    if kind is FrameKind.ARROW:
        table = _as_written(table, file_metadata.get(b"ARROW:schema"))
    return from_arrow(table, kind)


def _as_written(table: Any, stored: bytes | None) -> Any:
    """``table`` cast to the Arrow schema its writer stored, where Parquet's reader chose
    other types (a dictionary of ``large_string`` comes back as one of ``string``)."""
    pa = _pyarrow()
    if stored is None:
        return table
    written = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(stored)))
    if table.schema.equals(written):
        return table
    try:
        return table.cast(written.with_metadata(table.schema.metadata))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return table  # as read: still the same values


def written_kind(metadata: dict[bytes, bytes]) -> FrameKind:
    """The kind a Parquet file's schema metadata says wrote it."""
    written = metadata.get(FRAME_KEY.encode())
    if written is not None:
        try:
            return FrameKind(written.decode())
        except ValueError:
            pass  # written by a newer codec: read it as what it most looks like
    return FrameKind.PANDAS if b"pandas" in metadata else FrameKind.ARROW


def from_arrow(table: Any, kind: FrameKind) -> Any:
    """``table`` (a ``pyarrow.Table``) as a frame of ``kind``."""
    if kind is FrameKind.ARROW:
        metadata = dict(table.schema.metadata or {})
        metadata.pop(FRAME_KEY.encode(), None)
        return table.replace_schema_metadata(metadata or None)
    if kind is FrameKind.PANDAS:
        _module(kind)
        return table.to_pandas()
    frame = _module(kind).from_arrow(table)
    return frame.lazy() if kind is FrameKind.POLARS_LAZY else frame


def as_annotated(value: Any, annotation: Any) -> Any:
    """``value`` as the frame type ``annotation`` names, converted through Arrow if it is a
    frame of another kind (a value an older codec pickled); any other value unchanged."""
    wanted = kind_of_type(annotation)
    have = kind_of_type(type(value))
    if wanted is None or have is None or wanted is have:
        return value
    if {wanted, have} == {FrameKind.POLARS, FrameKind.POLARS_LAZY}:
        return value.lazy() if wanted is FrameKind.POLARS_LAZY else value.collect()
    return from_arrow(prepare(value).arrow, wanted)


def concat(frames: Sequence[Any], annotation: Any) -> Any:
    """Frames of several partitions as one frame of ``annotation``'s kind, in order."""
    kind = kind_of_type(annotation)
    assert kind is not None, "concat is for frame annotations"
    parts = [as_annotated(frame, annotation) for frame in frames]
    if kind is FrameKind.ARROW:
        return _pyarrow().concat_tables(parts)
    if kind is FrameKind.PANDAS:
        pandas = _module(kind)
        ranges = all(isinstance(part.index, pandas.RangeIndex) for part in parts)
        return pandas.concat(parts, ignore_index=ranges)
    return _module(kind).concat(parts)


def _module(kind: FrameKind) -> Any:
    """The library of ``kind``, imported now; a clear error names the extra if it is missing."""
    try:
        return importlib.import_module(kind._module)
    except ImportError as exc:
        raise ImportError(
            f"{kind.value} values need {kind._module}: "
            f"pip install 'orchestrator-catalog[{kind.extra}]'"
        ) from exc


def _pyarrow() -> Any:
    return _module(FrameKind.ARROW)


def _parquet() -> Any:
    try:
        return importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise ImportError(
            "Parquet values need pyarrow: pip install 'orchestrator-catalog[arrow]' "
            "(or the pandas or polars extra, which include it)"
        ) from exc
