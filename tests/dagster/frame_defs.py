"""A job of DataFrame assets for multi-process runs (each step in its own process).

The catalog comes from ``ORCHESTRATOR_DATABASE_URL`` / ``ORCHESTRATOR_BLOB_ROOT``, which
the test sets before the step processes are spawned.
"""

import dagster as dg
import pandas as pd
import polars as pl

from orchestrator_dagster import OrchestratorResource, VersionedIOManager


@dg.asset
def orders_pandas() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(50_000),
            "region": pd.Categorical(["eu", "us", "asia", "eu"] * 12_500),
            "at": pd.date_range("2026-01-01", periods=50_000, freq="min", tz="UTC"),
            "items": [[i, i + 1] for i in range(50_000)],
        }
    )


@dg.asset
def orders_polars(orders_pandas: pl.DataFrame) -> pl.LazyFrame:
    return orders_pandas.lazy().filter(pl.col("region") == "eu")


@dg.asset
def eu_orders(orders_polars) -> int:  # type: ignore[no-untyped-def]  # unannotated: as written
    assert isinstance(orders_polars, pl.LazyFrame)
    return orders_polars.select(pl.len()).collect().item()


orchestrator = OrchestratorResource()
defs = dg.Definitions(
    assets=[orders_pandas, orders_polars, eu_orders],
    jobs=[dg.define_asset_job("frames", selection=dg.AssetSelection.all())],
    resources={
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator),
    },
)


def frames_job() -> dg.JobDefinition:
    return defs.resolve_job_def("frames")
