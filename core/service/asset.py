"""Asset values: commit a pipeline's outputs to a tag and find the values its inputs read.

This is the decision layer behind the Dagster IO manager: the adapter only encodes and
decodes Python values. ``AssetService`` is the public face of three concerns: output
commits (``core.service.asset_outputs``), input location (``core.service.asset_inputs``)
and the runs' read lineage (``core.service.asset_lineage``).
"""

from core.service.asset_inputs import AssetInputs
from core.service.asset_lineage import RunLineage
from core.service.asset_outputs import LARGE_VALUE, AssetOutputs
from core.service.run import RunService

__all__ = ["LARGE_VALUE", "AssetService"]


class AssetService:
    """Each output becomes the node's value on the tag; each run reads a pinned snapshot
    (it answers ``core.step_catalog.StepCatalog`` for a step in this process).

    A run's reads are kept in this process and written with the next output it commits
    for the run, or by ``flush_reads`` (the IO manager flushes when a step process or an
    in-process run ends).
    """

    def __init__(
        self, outputs: AssetOutputs, inputs: AssetInputs, lineage: RunLineage, runs: RunService
    ) -> None:
        self.outputs = outputs
        self.inputs = inputs
        self.lineage = lineage
        self.commit_output = outputs.commit_output
        self.commit_output_stream = outputs.commit_output_stream
        self.commit_step_output = outputs.commit_step_output
        self.commit_step_output_stream = outputs.commit_step_output_stream
        self.locate_input = inputs.locate_input
        self.locate_step_output = inputs.locate_step_output
        self.read = inputs.read
        self.open = inputs.open
        self.flush_reads = lineage.flush_reads
        self.pin = runs.pin
