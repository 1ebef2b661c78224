"""DataFrame assets in real Dagster runs: Parquet values, the metadata the UI shows, loads
as annotated, partitions, values an older codec pickled, re-runs in other processes."""

import pickle
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

import core
from orchestrator_dagster import frames

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")


def materialisations(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


@dg.asset
def sales() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": pd.Categorical(["eu", "us", None]),
            "amount": [12.5, None, 3.0],
            "at": pd.to_datetime(["2026-01-01 10:00", "2026-01-02 11:00", None]).tz_localize("UTC"),
        }
    )


@dg.asset
def sales_polars(sales: pl.DataFrame) -> pl.DataFrame:
    assert isinstance(sales, pl.DataFrame)  # what pandas wrote, read by polars
    return sales.with_columns(double=pl.col("amount") * 2)


@dg.asset
def sales_arrow(sales_polars: pa.Table) -> pa.Table:
    assert isinstance(sales_polars, pa.Table)
    return sales_polars


@dg.asset
def sales_back(sales_arrow) -> int:  # type: ignore[no-untyped-def]
    assert isinstance(sales_arrow, pa.Table)  # unannotated: the type that wrote it
    return sales_arrow.num_rows


def test_frames_are_parquet_with_the_metadata_the_ui_shows(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    assets = [sales, sales_polars, sales_arrow, sales_back]
    result = dg.materialize(assets, resources=resources, instance=instance)
    assert result.success
    assert result.output_for_node("sales_back") == 3
    nodes = catalog.workflows.get_workflow_by_tag("main")["nodes"]
    assert nodes["sales"]["media_type"] == frames.PARQUET_MEDIA_TYPE
    assert catalog.cas.get_content(nodes["sales"]["cas_id"])[:4] == b"PAR1"

    metadata = materialisations(result)
    shown = metadata["sales"]
    assert shown["dagster/row_count"] == dg.MetadataValue.int(3)
    assert shown["dagster/column_schema"] == dg.MetadataValue.table_schema(
        dg.TableSchema(
            columns=[
                dg.TableColumn("region", "category"),
                dg.TableColumn("amount", "float64"),
                dg.TableColumn("at", str(sales().dtypes["at"])),
            ]
        )
    )
    assert shown["orchestrator/frame"].value == "pandas.DataFrame"
    assert shown["orchestrator/media_type"].value == frames.PARQUET_MEDIA_TYPE
    preview = shown["orchestrator/preview"].value
    assert preview.splitlines()[:3] == [
        "| region | amount | at |",
        "|---|---|---|",
        "| eu | 12.5 | 2026-01-01 10:00:00+00:00 |",
    ]
    assert preview.splitlines()[-1] == "| null | 3.0 | null |"
    polars_schema = metadata["sales_polars"]["dagster/column_schema"].value
    assert [(c.name, c.type) for c in polars_schema.columns][-1] == ("double", "Float64")
    assert metadata["sales_arrow"]["dagster/row_count"].value == 3
    assert metadata["sales_arrow"]["orchestrator/frame"].value == "pyarrow.Table"

    again = dg.materialize(assets, resources=resources, instance=instance)
    assert all(m["orchestrator/unchanged"].value for m in materialisations(again).values())


@dg.asset
def sales_as_pickle() -> pd.DataFrame:  # stands for a value stored before Parquet
    raise AssertionError("never materialised: the test stores its value by hand")


@dg.asset
def from_pickle(sales_as_pickle: pl.DataFrame) -> int:
    assert isinstance(sales_as_pickle, pl.DataFrame)
    return sales_as_pickle.height


@dg.asset
def from_pickle_as_written(sales_as_pickle) -> str:  # type: ignore[no-untyped-def]
    return type(sales_as_pickle).__name__


def test_a_frame_an_older_codec_pickled_still_loads(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    old = pickle.dumps(sales.op.compute_fn.decorated_fn(), protocol=5)  # type: ignore[union-attr]
    catalog.assets.commit_output(
        "older-run", "main", "sales_as_pickle", old, media_type="application/x-python-pickle"
    )
    result = dg.materialize(
        [sales_as_pickle, from_pickle, from_pickle_as_written],
        selection=[from_pickle, from_pickle_as_written],
        resources=resources,
        instance=instance,
    )
    assert result.output_for_node("from_pickle") == 3
    assert result.output_for_node("from_pickle_as_written") == "DataFrame"


DAYS = dg.StaticPartitionsDefinition(["2026-01-01", "2026-01-02"])


@dg.asset(partitions_def=DAYS)
def daily_sales(context: dg.AssetExecutionContext) -> pl.DataFrame:
    return pl.DataFrame({"day": [context.partition_key] * 2, "amount": [1.0, 2.0]})


@dg.asset
def all_days(daily_sales: pd.DataFrame) -> list[str]:
    assert isinstance(daily_sales, pd.DataFrame)
    return daily_sales["day"].tolist()


@dg.asset
def by_day(daily_sales: dict[str, pa.Table]) -> dict[str, int]:
    assert all(isinstance(table, pa.Table) for table in daily_sales.values())
    return {day: table.num_rows for day, table in daily_sales.items()}


@dg.asset
def by_day_as_written(daily_sales: dict) -> list[str]:
    return sorted({type(frame).__name__ for frame in daily_sales.values()})


def test_partitions_load_concatenated_or_as_a_dict(
    resources: dict, instance: dg.DagsterInstance
) -> None:
    for key in DAYS.get_partition_keys():
        dg.materialize([daily_sales], partition_key=key, resources=resources, instance=instance)
    result = dg.materialize(
        [daily_sales, all_days, by_day, by_day_as_written],
        selection=[all_days, by_day, by_day_as_written],
        resources=resources,
        instance=instance,
    )
    assert result.output_for_node("all_days") == ["2026-01-01"] * 2 + ["2026-01-02"] * 2
    assert result.output_for_node("by_day") == {"2026-01-01": 2, "2026-01-02": 2}
    assert result.output_for_node("by_day_as_written") == ["DataFrame"]


@dg.op
def emit_frame() -> pl.DataFrame:
    return pl.DataFrame({"x": [1, 2, 3]})


@dg.op
def count_rows(frame: pd.DataFrame) -> int:
    assert isinstance(frame, pd.DataFrame)
    return len(frame)


@dg.job
def frame_ops() -> None:
    count_rows(emit_frame())


def test_op_outputs_that_are_frames_stream_too(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    result = frame_ops.execute_in_process(resources=resources, instance=instance)
    assert result.output_for_node("count_rows") == 3
    outputs = [
        io for io in catalog.runs.get_run_io(result.run_id) if io.node == "emit_frame.result"
    ]
    assert {io.media_type for io in outputs} == {frames.PARQUET_MEDIA_TYPE}


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["duckdb"], indirect=True)
def test_an_unchanged_frame_rematerialised_in_other_processes_moves_nothing(
    database_url: str, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two multiprocess runs (each step a fresh process) encode the same frame to the same
    bytes. One catalog backend: what is tested is the encoding (20 s a backend)."""
    from tests.dagster import frame_defs

    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
    monkeypatch.setenv("ORCHESTRATOR_BLOB_ROOT", str(blob_root))
    with dg.instance_for_test() as instance:
        first = dg.execute_job(dg.reconstructable(frame_defs.frames_job), instance)
        second = dg.execute_job(dg.reconstructable(frame_defs.frames_job), instance)
    assert first.success and second.success
    pids = [
        {e.pid for e in run.all_events if e.event_type_value == "STEP_START"}
        for run in (first, second)
    ]
    assert len(pids[0] | pids[1]) == 6  # every step of both runs in a process of its own
    with core.connect(database_url, blob_root) as catalog:
        history = catalog.tags.get_history("main")
        assert [move.run_id for move in history] == [first.run_id] * 3  # the second: no move
        eu = catalog.assets.locate_input(None, "main", "eu_orders")
        assert catalog.assets.read(eu) == b"25000"


@dg.asset
def mixed_types() -> pd.DataFrame:
    return pd.DataFrame({"mixed": [1, "two"]})  # Parquet cannot hold it


def test_a_frame_parquet_cannot_hold_fails_its_step_naming_the_asset(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    result = dg.materialize(
        [mixed_types], resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.step_failure_data.error)
    assert "CodecError: cannot encode the output of asset 'mixed_types' as application/" in message
    assert catalog.tags.list_tags() == []
