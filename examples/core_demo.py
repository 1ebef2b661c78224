"""The core without Dagster: create a workflow, patch it, move a tag, read the history.

Run it with ``.venv/bin/python examples/core_demo.py``; it uses the embedded default
catalog (``.orchestrator/catalog.duckdb`` and ``.orchestrator/blobs``) unless
``ORCHESTRATOR_DATABASE_URL`` / ``ORCHESTRATOR_BLOB_ROOT`` say otherwise.
"""

import core

DAG = {
    "nodes": {
        "raw_orders": {"deps": []},
        "clean_orders": {"deps": ["raw_orders"]},
        "daily_revenue": {"deps": ["clean_orders"]},
    }
}


def main() -> None:
    with core.connect() as catalog:
        created = catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("sales", DAG, tag="demo/main", created_by="demo")
        )
        patched = catalog.workflows.patch_workflow(
            "demo/main",
            [{"op": "add", "path": "/nodes/weekly_revenue", "value": {"deps": ["clean_orders"]}}],
            created_by="demo",
        )
        catalog.tags.create_or_move_tag("demo/prod", created.artifact_id, reason="promote")
        print(
            "demo/main resolves to nodes:",
            sorted(catalog.workflows.get_workflow_by_tag("demo/main")["nodes"]),
        )
        print(f"demo/main is at {patched.version_hash[:19]} (revision {patched.revision})")
        for move in catalog.tags.get_history("demo/main"):
            print(
                f"  #{move.revision} {move.moved_at:%H:%M:%S} {move.reason}: "
                f"{move.from_target_id} -> {move.to_target_id}"
            )


if __name__ == "__main__":
    main()
