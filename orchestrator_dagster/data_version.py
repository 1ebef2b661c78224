"""Make a materialisation's data version its content hash, where Dagster allows it.

Dagster has no public API for an IO manager to set the data version (dagster-io/dagster
#15584); the step context's ``set_data_version`` works in 1.13. On a Dagster without it,
or outside a real run, the content hash is still in the metadata and nothing fails.
"""

import logging

import dagster as dg

log = logging.getLogger(__name__)


def set_content_data_version(context: dg.OutputContext, cas_id: str) -> bool:
    """Set the output's data version to the hex digest of ``cas_id``; ``False`` if unsupported."""
    if not context.has_asset_key:
        return False
    try:
        step_context = context.step_context
        setter = step_context.set_data_version
    except Exception:  # build_output_context(...) has no step context
        return False
    try:
        setter(context.asset_key, dg.DataVersion(cas_id.removeprefix("sha256:")))
    except Exception as exc:  # a private API: degrade to metadata only, never fail the step
        log.warning("could not set the data version of %s: %s", context.asset_key, exc)
        return False
    return True
