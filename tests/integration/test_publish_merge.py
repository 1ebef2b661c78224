"""Write, audit, publish: staged runs, publishing, and three-way merges of versions, on
DuckDB and Postgres."""

import hashlib

import pytest

import core

JSON = "application/json"


def commit(
    catalog: core.Services,
    run_id: str,
    node: str,
    content: bytes,
    *,
    tag: str = "main",
    partition_key: str | None = None,
    deps: tuple[str, ...] = (),
) -> core.OutputCommit:
    return catalog.assets.commit_output(
        run_id, tag, node, content, media_type=JSON, partition_key=partition_key, deps=deps
    )


def staged_run(catalog: core.Services, run_id: str, tag: str = "main") -> core.Run:
    return catalog.runs.create_run(run_id, tag, publish="run")


def values(catalog: core.Services, ref: str = "main") -> dict[str, object]:
    """Each node's value (or its partitions' values) in the version ``ref`` names."""
    document = catalog.artifacts.resolve(catalog.refs.resolve(ref).id)
    return {
        node: body.get("cas_id") or {k: v["cas_id"] for k, v in body.get("partitions", {}).items()}
        for node, body in document["nodes"].items()
    }


def _sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def test_staged_values_are_invisible_to_the_tag_and_other_runs(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    staged_run(catalog, "wap")
    staged = commit(catalog, "wap", "a", b"2")
    assert staged.changed and catalog.tags.get_tag("main").revision == 1
    assert values(catalog) == {"a": _sha(b"1")}
    assert values(catalog, "run:wap") == {"a": _sha(b"2")}
    # the run reads its own staged value; another run, pinned now, reads the tag's
    own = catalog.assets.locate_input("wap", "main", "a")
    other = catalog.assets.locate_input("reader", "main", "a")
    assert (own.cas_id, other.cas_id) == (_sha(b"2"), _sha(b"1"))
    assert [move.run_id for move in catalog.tags.get_history("main")] == ["seed"]


def test_a_publish_fast_forwards_an_unmoved_tag_in_one_move(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    staged_run(catalog, "wap")
    for node in "abc":
        commit(catalog, "wap", node, b"2" + node.encode())
    head = catalog.refs.resolve("run:wap").id
    published = catalog.runs.publish("wap")
    assert published.fast_forward and published.changed
    assert published.to_target_id == head == catalog.tags.get_tag("main").target_id
    history = catalog.tags.get_history("main")
    assert len(history) == 2 and history[-1].run_id == "wap"
    run = catalog.runs.get_run("wap")
    assert run.outcome == core.RunOutcome(
        core.OutcomeState.PUBLISHED, revision=2, to_target_id=head
    )


def test_publishing_twice_moves_once(catalog: core.Services) -> None:
    staged_run(catalog, "wap")
    commit(catalog, "wap", "a", b"1")
    first = catalog.runs.publish("wap")
    again = catalog.runs.publish("wap")
    assert first.changed and not again.changed
    assert again.to_target_id == first.to_target_id
    assert len(catalog.tags.get_history("main")) == 1


def test_a_run_that_staged_nothing_moves_nothing(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    staged_run(catalog, "idle")
    published = catalog.runs.publish("idle")
    assert not published.changed and catalog.tags.get_tag("main").revision == 1
    assert catalog.runs.get_run("idle").outcome == core.RunOutcome(core.OutcomeState.UNCHANGED)


def test_a_run_that_staged_only_what_the_tag_holds_moves_nothing(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    staged_run(catalog, "wap")
    commit(catalog, "wap", "a", b"2")
    commit(catalog, "other", "a", b"2")  # the same change reached the tag first
    published = catalog.runs.publish("wap")
    assert not published.changed and catalog.tags.get_tag("main").revision == 2


def test_a_publish_after_another_run_moved_the_tag_merges(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    commit(catalog, "seed", "b", b"1")
    staged_run(catalog, "wap")
    commit(catalog, "wap", "a", b"2")
    commit(catalog, "other", "b", b"3")
    tip = catalog.tags.get_tag("main").target_id
    published = catalog.runs.publish("wap")
    assert published.changed and not published.fast_forward
    assert values(catalog) == {"a": _sha(b"2"), "b": _sha(b"3")}
    merge = catalog.artifacts.get_by_id(published.to_target_id)
    assert merge.parent_id == tip and merge.merged_id == catalog.refs.resolve("run:wap").id
    assert catalog.tags.get_history("main")[-1].run_id == "wap"


def test_a_conflict_on_a_node_moves_nothing_and_is_recorded(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    staged_run(catalog, "wap")
    commit(catalog, "wap", "a", b"2")
    commit(catalog, "other", "a", b"3")
    before = catalog.tags.get_tag("main")
    with pytest.raises(core.MergeConflictError) as conflict:
        catalog.runs.publish("wap")
    assert conflict.value.conflicts == [("a", None)]
    assert isinstance(conflict.value, core.ConflictError)
    assert catalog.tags.get_tag("main") == before
    assert catalog.runs.get_run("wap").outcome == core.RunOutcome(
        core.OutcomeState.CONFLICT, conflicts=(("a", None),)
    )


def test_partitions_merge_value_by_value(catalog: core.Services) -> None:
    commit(catalog, "seed", "daily", b"1", partition_key="2026-12-01")
    staged_run(catalog, "wap")
    commit(catalog, "wap", "daily", b"2", partition_key="2026-12-02")
    commit(catalog, "other", "daily", b"3", partition_key="2026-12-03")
    catalog.runs.publish("wap")
    assert values(catalog)["daily"] == {
        "2026-12-01": _sha(b"1"),
        "2026-12-02": _sha(b"2"),
        "2026-12-03": _sha(b"3"),
    }


def test_a_conflict_on_a_partition_names_it(catalog: core.Services) -> None:
    commit(catalog, "seed", "daily", b"1", partition_key="2026-12-01")
    staged_run(catalog, "wap")
    commit(catalog, "wap", "daily", b"2", partition_key="2026-12-01")
    commit(catalog, "wap", "daily", b"5", partition_key="2026-12-05")
    commit(catalog, "other", "daily", b"3", partition_key="2026-12-01")
    with pytest.raises(core.MergeConflictError) as conflict:
        catalog.runs.publish("wap")
    assert conflict.value.conflicts == [("daily", "2026-12-01")]


def test_identical_changes_on_both_sides_merge(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    commit(catalog, "seed", "b", b"1")
    staged_run(catalog, "wap")
    commit(catalog, "wap", "a", b"2")
    commit(catalog, "wap", "b", b"4")
    commit(catalog, "other", "a", b"2")
    catalog.runs.publish("wap")
    assert values(catalog) == {"a": _sha(b"2"), "b": _sha(b"4")}


def test_an_output_mode_run_has_nothing_to_publish(catalog: core.Services) -> None:
    commit(catalog, "plain", "a", b"1")
    with pytest.raises(core.ValidationError, match="publish='output'"):
        catalog.runs.publish("plain")
    with pytest.raises(core.NotFoundError):
        catalog.runs.publish("nobody")


def test_a_run_publishes_one_way(catalog: core.Services) -> None:
    staged_run(catalog, "wap")
    with pytest.raises(core.ConflictError, match="publishes 'run'"):
        catalog.assets.commit_output(
            "wap", "main", "a", b"1", media_type=JSON, publish=core.PublishMode.OUTPUT
        )
    with pytest.raises(core.ValidationError, match="invalid publish mode 'later'"):
        catalog.runs.create_run("x", "main", publish="later")
    assert catalog.tags.list_tags() == []


def test_the_audit_publishes_only_a_run_that_passed(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    for run_id in ("passed", "failed", "checked"):
        staged_run(catalog, run_id)
        commit(catalog, run_id, run_id, b"x" + run_id.encode())
    failed = catalog.runs.publish_if_passed("failed", status=core.RunStatus.FAILURE)
    checked = catalog.runs.publish_if_passed(
        "checked", status=core.RunStatus.SUCCESS, failed_checks=["a:fresh"]
    )
    passed = catalog.runs.publish_if_passed("passed", status=core.RunStatus.SUCCESS)
    assert failed == core.RunOutcome(core.OutcomeState.FAILED)
    assert checked == core.RunOutcome(core.OutcomeState.CHECKS_FAILED, checks=("a:fresh",))
    assert passed.state is core.OutcomeState.PUBLISHED
    assert set(values(catalog)) == {"a", "passed"}
    again = catalog.runs.publish_if_passed("checked", status=core.RunStatus.SUCCESS)
    assert again == checked  # an outcome, once recorded, stays


def test_a_runs_end_records_its_status_and_audits_it_once(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    staged_run(catalog, "wap")
    commit(catalog, "wap", "a", b"2")
    with pytest.raises(core.ValidationError, match="'a:fresh'"):  # text, not a list
        catalog.runs.end_run("wap", "success", failed_checks="a:fresh")
    with pytest.raises(core.ValidationError, match="'done'"):
        catalog.runs.end_run("wap", "done")
    with pytest.raises(core.NotFoundError, match="'missing'"):
        catalog.runs.end_run("missing", "success")
    assert catalog.runs.get_run("wap").status == "started"  # nothing changed

    ended = catalog.runs.end_run("wap", "success")
    assert ended.status == "success" and ended.outcome is not None
    assert ended.outcome.state is core.OutcomeState.PUBLISHED
    assert values(catalog) == {"a": _sha(b"2")}
    # again, even as another status: the first status and the outcome stand
    assert catalog.runs.end_run("wap", "failure", failed_checks=["a:fresh"]) == ended
    assert len(catalog.tags.get_history("main")) == 2

    catalog.runs.create_run("out", "main")  # publish="output": no audit
    assert catalog.runs.end_run("out", "failure").outcome is None
    staged_run(catalog, "checked")
    commit(catalog, "checked", "a", b"3")
    checked = catalog.runs.end_run("checked", "success", failed_checks=["a:fresh"])
    assert checked.outcome == core.RunOutcome(core.OutcomeState.CHECKS_FAILED, checks=("a:fresh",))
    assert values(catalog) == {"a": _sha(b"2")}


def test_a_re_execution_continues_from_its_parents_staged_head(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    staged_run(catalog, "first")
    commit(catalog, "first", "a", b"2")
    commit(catalog, "first", "b", b"bad")
    parent_head = catalog.refs.resolve("run:first").id
    retry = catalog.runs.create_run("retry", "main", publish="run", parent_run_id="first")
    assert retry.head_id == parent_head
    commit(catalog, "retry", "b", b"good")
    catalog.runs.publish("retry")
    assert values(catalog) == {"a": _sha(b"2"), "b": _sha(b"good")}


def test_a_merge_of_tags_fast_forwards_then_merges(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    catalog.tags.create_tag("feature", catalog.tags.get_tag("main").target_id)
    commit(catalog, "f1", "x", b"9", tag="feature")
    forward = catalog.workflows.merge("feature", "main")
    assert forward.fast_forward and forward.changed
    assert forward.to_target_id == catalog.tags.get_tag("feature").target_id
    commit(catalog, "f2", "y", b"10", tag="feature")
    commit(catalog, "m1", "a", b"2")
    preview = catalog.workflows.preview_merge("feature", "main")
    assert preview.changed_nodes == frozenset({"y"}) and preview.conflicts == ()
    assert catalog.tags.get_tag("main").revision == 3  # a preview moves nothing
    merged = catalog.workflows.merge("feature", "main", reason="land feature")
    assert merged.changed and not merged.fast_forward
    assert values(catalog) == {"a": _sha(b"2"), "x": _sha(b"9"), "y": _sha(b"10")}
    assert catalog.tags.get_history("main")[-1].reason == "land feature"


def test_a_second_merge_starts_from_the_first(catalog: core.Services) -> None:
    """After a merge, main changes a value it merged; a second merge starts from the
    version the first merged, so it does not see feature's old change as new."""
    commit(catalog, "seed", "a", b"1")
    catalog.tags.create_tag("feature", catalog.tags.get_tag("main").target_id)
    commit(catalog, "f1", "b", b"2", tag="feature")
    commit(catalog, "m1", "c", b"3")
    catalog.workflows.merge("feature", "main")
    commit(catalog, "m2", "b", b"main's b")  # main changes what it merged
    commit(catalog, "f2", "d", b"4", tag="feature")
    catalog.workflows.merge("feature", "main")  # base is feature's merged head: no conflict
    assert values(catalog)["b"] == _sha(b"main's b") and "d" in values(catalog)
    nothing = catalog.workflows.merge("feature", "main")
    assert not nothing.changed


def test_added_and_removed_nodes_merge(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    commit(catalog, "seed", "gone", b"1")
    catalog.tags.create_tag("feature", catalog.tags.get_tag("main").target_id)
    catalog.workflows.patch_workflow("feature", [{"op": "remove", "path": "/nodes/gone"}])
    commit(catalog, "f1", "new", b"2", tag="feature")
    commit(catalog, "m1", "a", b"3")
    catalog.workflows.merge("feature", "main")
    assert values(catalog) == {"a": _sha(b"3"), "new": _sha(b"2")}


def test_a_node_removed_on_one_side_and_changed_on_the_other_conflicts(
    catalog: core.Services,
) -> None:
    commit(catalog, "seed", "a", b"1")
    commit(catalog, "seed", "gone", b"1")
    catalog.tags.create_tag("feature", catalog.tags.get_tag("main").target_id)
    catalog.workflows.patch_workflow("feature", [{"op": "remove", "path": "/nodes/gone"}])
    commit(catalog, "m1", "gone", b"2")
    with pytest.raises(core.MergeConflictError) as conflict:
        catalog.workflows.merge("feature", "main")
    assert conflict.value.conflicts == [("gone", None)]


def test_a_merge_expecting_another_target_moves_nothing(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    catalog.tags.create_tag("feature", catalog.tags.get_tag("main").target_id)
    commit(catalog, "f1", "x", b"9", tag="feature")
    stale = catalog.tags.get_tag("main").target_id
    commit(catalog, "m1", "a", b"2")
    with pytest.raises(core.ConflictError, match="not the expected"):
        catalog.workflows.merge("feature", "main", expected_target_id=stale)
    assert catalog.tags.get_tag("main").revision == 2


def test_a_staged_head_is_named_by_a_run_id_prefix(catalog: core.Services) -> None:
    commit(catalog, "seed", "a", b"1")
    staged_run(catalog, "6f1c2a9e-0000-4000-8000-000000000001")
    commit(catalog, "6f1c2a9e-0000-4000-8000-000000000001", "a", b"2")
    assert values(catalog, "run:6f1c2a9e") == {"a": _sha(b"2")}
    staged_run(catalog, "6f1c2a9e-0000-4000-8000-000000000002")
    with pytest.raises(core.ValidationError, match="ambiguous run id prefix"):
        catalog.refs.resolve("run:6f1c2a9e")
    with pytest.raises(core.NotFoundError, match="run '6f1c2a9f' not found"):
        catalog.refs.resolve("run:6f1c2a9f")


def test_a_merge_made_again_lands_on_the_version_recorded_the_first_time(
    catalog: core.Services,
) -> None:
    """A merge version is planned without looking it up first: when the catalog has it
    already (the same merge on the same parent), the tag moves to that one."""
    commit(catalog, "seed", "a", b"1")
    commit(catalog, "seed", "b", b"1")
    staged_run(catalog, "wap")
    commit(catalog, "wap", "a", b"2")
    commit(catalog, "other", "b", b"3")
    tip = catalog.tags.get_tag("main").target_id
    published = catalog.runs.publish("wap")
    catalog.tags.move_to("main", tip)
    again = catalog.workflows.merge("run:wap", "main")
    assert again.changed and again.to_target_id == published.to_target_id
    assert catalog.tags.get_tag("main").target_id == published.to_target_id
    assert values(catalog) == {"a": _sha(b"2"), "b": _sha(b"3")}


def test_an_output_committed_again_on_the_same_parent_lands_on_its_first_version(
    catalog: core.Services,
) -> None:
    """The same value committed on the same parent is the version recorded before."""
    commit(catalog, "seed", "a", b"1")
    parent = catalog.tags.get_tag("main").target_id
    first = commit(catalog, "r1", "a", b"2")
    catalog.tags.move_to("main", parent)
    second = commit(catalog, "r2", "a", b"2")
    assert second.changed and second.artifact_id == first.artifact_id
    assert catalog.tags.get_tag("main").target_id == first.artifact_id
    assert [move.to_target_id for move in catalog.tags.get_history("main")[-2:]] == [
        parent,
        first.artifact_id,
    ]
