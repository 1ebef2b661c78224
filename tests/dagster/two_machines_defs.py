"""Assets for the "two machines" test: one process materialises the upstream assets, another
(another working folder, no blob folder in common) materialises the downstream one.

Run as ``python -m tests.dagster.two_machines_defs upstream|downstream``; the catalog comes
from ``ORCHESTRATOR_DATABASE_URL`` (Postgres) and ``ORCHESTRATOR_BLOB_ROOT`` (s3://...).
Prints the run's success, process id and working folder as JSON.
"""

import json
import os
import sys

import dagster as dg

from orchestrator_dagster import OrchestratorResource, VersionedIOManager


@dg.asset
def orders() -> list[dict]:
    return [{"id": 1, "customer": "a", "amount": 12.5}, {"id": 2, "customer": "b", "amount": 7.5}]


@dg.asset
def customers() -> dict:
    return {"a": "Ada", "b": "Brian", "host": os.getpid()}


@dg.asset
def revenue_by_customer(orders: list[dict], customers: dict) -> dict:
    totals: dict[str, float] = {}
    for order in orders:
        name = customers[order["customer"]]
        totals[name] = totals.get(name, 0.0) + order["amount"]
    return {"totals": totals, "upstream_pid": customers["host"]}


orchestrator = OrchestratorResource()
RESOURCES = {
    "orchestrator": orchestrator,
    "io_manager": VersionedIOManager(orchestrator=orchestrator),
}


def main(role: str) -> None:
    selection = [orders.key, customers.key] if role == "upstream" else [revenue_by_customer.key]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [orders, customers, revenue_by_customer],
            selection=selection,
            resources=RESOURCES,
            instance=instance,
            raise_on_error=False,
        )
    print(json.dumps({"success": result.success, "pid": os.getpid(), "cwd": os.getcwd()}))


if __name__ == "__main__":
    main(sys.argv[1])
