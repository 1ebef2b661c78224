"""Workflows: commit DAG documents and patches as versions and move their tag.

``WorkflowService`` is the public face of three concerns: commits
(``core.service.workflow_commits``), the sensors' read model
(``core.service.workflow_moves``) and merges (``core.service.merges``).
"""

from core.service.merges import Merges
from core.service.workflow_commits import DEFAULT_COMPACTION_BOUND, WorkflowCommits
from core.service.workflow_moves import WorkflowMoves

__all__ = ["DEFAULT_COMPACTION_BOUND", "WorkflowService"]


class WorkflowService:
    """Composes CAS, artifacts and tags: store, version and move in one transaction."""

    def __init__(self, commits: WorkflowCommits, moves: WorkflowMoves, merges: Merges) -> None:
        self.commits = commits
        self.moves = moves
        self.merges = merges
        self.merge = merges.merge
        self.preview_merge = merges.preview
        self.create_workflow = commits.create_workflow
        self.patch_workflow = commits.patch_workflow
        self.update_workflow = commits.update_workflow
        self.get_workflow_by_tag = moves.get_workflow_by_tag
        self.diff = moves.diff
        self.get_moves = moves.get_moves
