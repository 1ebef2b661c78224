"""What the Dagster UI shows of a DataFrame: its row count, its columns and a preview."""

from typing import Any

import dagster as dg

from orchestrator_dagster.frames import Frame, FrameKind

PREVIEW_ROWS = 10
"""Rows shown in a frame's preview."""
PREVIEW_MAX_COLUMNS = 50
"""Frames with more columns than this get no preview (a table too wide to read)."""
PREVIEW_CELL_CHARS = 60
"""Characters a preview cell shows before it is cut short."""


def frame_metadata(frame: Frame) -> dict[str, Any]:
    """Dagster's own ``dagster/row_count`` and ``dagster/column_schema`` (which the UI shows
    on the asset's page), the type that wrote it and, for frames of at most
    ``PREVIEW_MAX_COLUMNS`` columns, a Markdown preview of the first ``PREVIEW_ROWS`` rows."""
    columns = _columns(frame)
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(_row_count(frame)),
        "dagster/column_schema": dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])
        ),
        "orchestrator/frame": frame.kind.value,
    }
    if len(columns) <= PREVIEW_MAX_COLUMNS:
        metadata["orchestrator/preview"] = dg.MetadataValue.md(_preview(frame, columns))
    return metadata


def _row_count(frame: Frame) -> int:
    if frame.kind is FrameKind.ARROW:
        return int(frame.data.num_rows)
    return len(frame.data)


def _columns(frame: Frame) -> list[tuple[str, str]]:
    """Each column's name and type, as the frame's own library names it."""
    if frame.kind is FrameKind.ARROW:
        return [(field.name, str(field.type)) for field in frame.data.schema]
    if frame.kind is FrameKind.PANDAS:
        return [(str(name), str(dtype)) for name, dtype in frame.data.dtypes.items()]
    return [(name, str(dtype)) for name, dtype in frame.data.schema.items()]


def _preview(frame: Frame, columns: list[tuple[str, str]]) -> str:
    """The first rows as a Markdown table (nulls shown as ``null``)."""
    if frame.kind is FrameKind.ARROW:
        rows = frame.data.slice(0, PREVIEW_ROWS).to_pylist()
    elif frame.kind is FrameKind.PANDAS:  # through Arrow: NaN, NaT and NA become null
        rows = Frame(frame.data.head(PREVIEW_ROWS), frame.kind).arrow.to_pylist()
    else:
        rows = frame.data.head(PREVIEW_ROWS).to_dicts()
    names = [name for name, _ in columns]
    lines = [
        "| " + " | ".join(_cell(name) for name in names) + " |",
        "|" + "---|" * len(names),
        *("| " + " | ".join(_cell(row.get(name)) for name in names) + " |" for row in rows),
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "null" if value is None else str(value)
    if len(text) > PREVIEW_CELL_CHARS:
        text = text[: PREVIEW_CELL_CHARS - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
