"""Example pipeline on the versioned DAG catalog (the embedded DuckDB default).

Regional orders are ingested per partition, cleaned, aggregated and summarised; every
output is stored in CAS and moves the ``main`` tag. When ``sales_report`` changes on
``main``, a sensor starts the ``publish_report`` job. The ``fx_pipeline`` job runs
write-audit-publish (``publish="run"``): its outputs stage on the run's own head and land
on ``main`` in one move once the run and its asset check pass; its ``fx_table`` is a pandas
DataFrame, stored as Parquet (``pip install -e '.[pandas]'``).

Open it in the UI with ``dagster dev -w workspace.yaml``; run it end to end from a
terminal with ``python definitions.py``.
"""

import hashlib
import os
import random
from pathlib import Path

import dagster as dg
import pandas as pd

import core
from orchestrator_dagster import (
    OrchestratorResource,
    VersionedIOManager,
    publish_run,
    run_snapshot_sensor,
    tag_move_sensor,
)

REGIONS = dg.StaticPartitionsDefinition(["amer", "apac", "emea"])


@dg.asset(partitions_def=REGIONS, group_name="sales", kinds={"python"})
def raw_orders(context: dg.AssetExecutionContext) -> list[dict]:
    """Orders as the regional shop exports them (some malformed)."""
    region = context.partition_key
    rng = random.Random(int(hashlib.sha256(region.encode()).hexdigest(), 16))
    return [
        {
            "order_id": f"{region}-{i}",
            "customer": f"c{rng.randrange(40)}",
            "amount": round(rng.uniform(-5, 120), 2),
            "region": region,
        }
        for i in range(200)
    ]


@dg.asset(group_name="sales", code_version="2")
def clean_orders(raw_orders: dict[str, list[dict]]) -> list[dict]:
    """All regions' orders with refunds and malformed amounts dropped."""
    orders = [order for region in sorted(raw_orders) for order in raw_orders[region]]
    return [order for order in orders if order["amount"] > 0]


@dg.asset(group_name="sales", code_version="1")
def revenue_by_region(clean_orders: list[dict]) -> dict[str, float]:
    """Total revenue per region."""
    revenue: dict[str, float] = {}
    for order in clean_orders:
        revenue[order["region"]] = round(revenue.get(order["region"], 0.0) + order["amount"], 2)
    return dict(sorted(revenue.items()))


@dg.asset(group_name="sales")
def top_customers(clean_orders: list[dict]) -> list[dict]:
    """The ten customers who spent the most."""
    spent: dict[str, float] = {}
    for order in clean_orders:
        spent[order["customer"]] = spent.get(order["customer"], 0.0) + order["amount"]
    ranked = sorted(spent.items(), key=lambda item: (-item[1], item[0]))[:10]
    return [{"customer": customer, "spent": round(total, 2)} for customer, total in ranked]


@dg.asset(group_name="sales")
def sales_report(revenue_by_region: dict[str, float], top_customers: list[dict]) -> str:
    """A short Markdown report."""
    lines = ["# Sales", "", "| region | revenue |", "|---|---|"]
    lines += [f"| {region} | {total:.2f} |" for region, total in revenue_by_region.items()]
    lines += ["", f"Top customer: {top_customers[0]['customer']}"]
    return "\n".join(lines)


@dg.asset(group_name="publishing")
def published_report(sales_report: str) -> dict:
    """The report as it was published, with its checksum."""
    return {"body": sales_report, "sha256": hashlib.sha256(sales_report.encode()).hexdigest()}


@dg.asset(group_name="fx")
def fx_rates() -> dict[str, float]:
    """Exchange rates to USD, as the treasury publishes them."""
    return {"EUR": 1.08, "GBP": 1.27, "JPY": 0.0067}


@dg.asset(group_name="fx", kinds={"pandas"})
def fx_table(fx_rates: dict[str, float]) -> pd.DataFrame:
    """The rates as a table, with their inverse: stored as Parquet, its row count, columns
    and first rows shown on the materialisation."""
    codes = sorted(fx_rates)
    return pd.DataFrame(
        {
            "currency": pd.Categorical(codes),
            "usd": [fx_rates[code] for code in codes],
            "per_usd": [round(1 / fx_rates[code], 4) for code in codes],
        }
    )


@dg.asset_check(asset=fx_rates, description="Every rate is positive (else nothing publishes).")
def fx_rates_are_positive(fx_rates: dict[str, float]) -> dg.AssetCheckResult:
    bad = sorted(code for code, rate in fx_rates.items() if rate <= 0)
    return dg.AssetCheckResult(
        passed=not bad, severity=dg.AssetCheckSeverity.ERROR, metadata={"bad": ", ".join(bad)}
    )


ingest_orders = dg.define_asset_job("ingest_orders", selection=[raw_orders])
fx_pipeline = dg.define_asset_job(
    "fx_pipeline",
    selection=dg.AssetSelection.groups("fx"),
    tags={"orchestrator/publish": "run"},  # write, audit, publish: main moves once, if passed
)
sales_pipeline = dg.define_asset_job(
    "sales_pipeline",
    selection=dg.AssetSelection.assets(clean_orders).downstream()
    - dg.AssetSelection.assets(published_report),
)
publish_report = dg.define_asset_job("publish_report", selection=[published_report])

orchestrator = OrchestratorResource()

defs = dg.Definitions(
    assets=[
        raw_orders,
        clean_orders,
        revenue_by_region,
        top_customers,
        sales_report,
        published_report,
        fx_rates,
        fx_table,
    ],
    asset_checks=[fx_rates_are_positive],
    jobs=[ingest_orders, sales_pipeline, publish_report, fx_pipeline],
    sensors=[
        tag_move_sensor(
            "main",
            publish_report,
            asset_keys=["sales_report"],
            minimum_interval_seconds=5,
            default_status=dg.DefaultSensorStatus.RUNNING,
        ),
        run_snapshot_sensor,
    ],
    resources={
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator, tag="main"),
    },
)


QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _job(name: str) -> dg.JobDefinition:
    return defs.resolve_job_def(name)


def ingest_orders_job() -> dg.JobDefinition:
    return _job("ingest_orders")


def sales_pipeline_job() -> dg.JobDefinition:
    return _job("sales_pipeline")


def publish_report_job() -> dg.JobDefinition:
    return _job("publish_report")


def fx_pipeline_job() -> dg.JobDefinition:
    return _job("fx_pipeline")


def main() -> None:
    """Materialise the pipeline with the multiprocess executor, then print main's history."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".orchestrator/dagster").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").touch()  # Dagster's defaults, without its warning about no file
    with dg.DagsterInstance.get() as instance:
        runs = [
            (f"ingest_orders [{region}]", ingest_orders_job, {"dagster/partition": region})
            for region in REGIONS.get_partition_keys()
        ]
        runs += [
            ("sales_pipeline", sales_pipeline_job, {}),
            ("publish_report", publish_report_job, {}),
            ("fx_pipeline (publish='run')", fx_pipeline_job, {}),
        ]
        for label, job, tags in runs:
            result = dg.execute_job(
                dg.reconstructable(job), instance, tags=tags, run_config=QUIET_LOGS
            )
            print(f"{label}: {'success' if result.success else 'FAILED'} (run {result.run_id})")
            if not result.success:
                raise SystemExit(1)
        # The audit, as run_snapshot_sensor does it when the run ends: publish if it passed.
        recorded = publish_run(result.run_id, instance=instance, orchestrator=orchestrator)
        outcome = recorded and recorded.outcome
        print(f"fx_pipeline: {outcome.state.value if outcome else 'not recorded'} on main")
        # What the daemon does every 30 s in `dagster dev`: record the runs' final status.
        with dg.build_sensor_context(
            instance=instance, resources={"orchestrator": orchestrator}
        ) as context:
            run_snapshot_sensor(context)
    with core.connect() as catalog:
        print("\nmain's history (oldest first):")
        for move in catalog.tags.get_history("main"):
            status = catalog.runs.get_run(move.run_id).status if move.run_id else "-"
            reason = move.reason or "-"
            print(f"  r{move.revision:<3} {move.moved_at:%H:%M:%S}  {reason:<40} run {status}")
        nodes = catalog.workflows.get_workflow_by_tag("main")["nodes"]
        print(f"\nmain holds {len(nodes)} nodes: {', '.join(sorted(nodes))}")


if __name__ == "__main__":
    main()
