"""The 6-wide job of ``bench/dagster_overhead_defs.py`` for ``bench/object_store.py``, with
its values in an S3 bucket, through one of two IO managers chosen at import time from
``BENCH_S3_IO_MANAGER`` (the step processes are spawned and import this module again):

* ``versioned``: ``VersionedIOManager`` over an ``OrchestratorResource`` that reads
  ``ORCHESTRATOR_DATABASE_URL`` and ``ORCHESTRATOR_BLOB_ROOT`` (``s3://bucket/prefix``);
* ``s3pickle``: dagster-aws's ``S3PickleIOManager`` in ``BENCH_S3_BUCKET`` under
  ``BENCH_S3_PREFIX``, its client pointed at ``AWS_ENDPOINT_URL``.

Import it as ``bench.object_store_defs`` with the repository root on ``sys.path``.
"""

import os

import dagster as dg

from bench.dagster_overhead_defs import BRANCHES, WIDTH, total

JOB_NAME = "bench_parallel_s3"
IO_MANAGER_ENV = "BENCH_S3_IO_MANAGER"
BUCKET_ENV = "BENCH_S3_BUCKET"
PREFIX_ENV = "BENCH_S3_PREFIX"
__all__ = ["WIDTH", "parallel_job"]


def make_io_manager(kind: str) -> object:
    if kind == "versioned":  # imported here: an s3pickle step process does not load it
        from orchestrator_dagster import OrchestratorResource, VersionedIOManager

        return VersionedIOManager(orchestrator=OrchestratorResource())
    if kind == "s3pickle":
        from dagster_aws.s3 import S3PickleIOManager, S3Resource

        return S3PickleIOManager(
            s3_resource=S3Resource(endpoint_url=os.environ["AWS_ENDPOINT_URL"]),
            s3_bucket=os.environ[BUCKET_ENV],
            s3_prefix=os.environ.get(PREFIX_ENV, "dagster"),
        )
    raise RuntimeError(f"{IO_MANAGER_ENV} must be versioned or s3pickle, not {kind!r}")


IO_MANAGER_KIND = os.environ.get(IO_MANAGER_ENV, "versioned")
defs = dg.Definitions(
    assets=[*BRANCHES, total],
    jobs=[dg.define_asset_job(JOB_NAME, selection=dg.AssetSelection.all())],
    resources={"io_manager": make_io_manager(IO_MANAGER_KIND)},
)


def parallel_job() -> dg.JobDefinition:
    """The job, for ``dagster.reconstructable``."""
    return defs.resolve_job_def(JOB_NAME)
