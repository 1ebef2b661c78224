"""Tag policies on DuckDB and Postgres: setting and reading them, their history, and every
move each policy refuses, with nothing changed by a refusal."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest

import core
from tests.support.helpers import row_counts

JSON = "application/json"
DAG = {"nodes": {"a": {"deps": []}}}


def commit(catalog: core.Services, run_id: str, node: str, content: bytes, tag: str) -> Any:
    return catalog.assets.commit_output(run_id, tag, node, content, media_type=JSON)


def state(catalog: core.Services) -> tuple[Any, ...]:
    """Everything a refusal must leave as it was: the tags, their histories, every row."""
    tags = catalog.tags.list_tags()
    histories = {tag.name: catalog.tags.get_history(tag.name) for tag in tags}
    return tags, histories, row_counts(catalog)


def refused(catalog: core.Services, tag: str, pattern: str, call: Callable[[], object]) -> None:
    """``call`` is refused by the policy ``pattern`` on ``tag`` and changes nothing."""
    before = state(catalog)
    with pytest.raises(core.PolicyError) as error:
        call()
    assert isinstance(error.value, core.ConflictError)
    assert (error.value.tag, error.value.pattern) == (tag, pattern)
    assert repr(tag) in str(error.value) and repr(pattern) in str(error.value)
    assert state(catalog) == before


@pytest.fixture
def versions(catalog: core.Services) -> dict[str, uuid.UUID]:
    """main at two versions (``one``, then ``two``) and a ``feature`` tag one version on."""
    one = catalog.workflows.create_workflow(core.CreateWorkflowRequest("sales", DAG))
    patch = [{"op": "add", "path": "/nodes/b", "value": {"deps": ["a"]}}]
    two = catalog.workflows.patch_workflow("main", patch)
    catalog.tags.create_tag("feature", two.artifact_id)
    extra = [{"op": "add", "path": "/nodes/c", "value": {"deps": []}}]
    three = catalog.workflows.patch_workflow("feature", extra)
    return {"one": one.artifact_id, "two": two.artifact_id, "three": three.artifact_id}


def test_policies_are_set_read_listed_deleted_and_every_change_recorded(
    catalog: core.Services,
) -> None:
    tags = catalog.tags
    release = tags.set_policy("release/*", protected=True, moved_by="ann")
    assert (release.pattern, release.immutable, release.protected) == ("release/*", False, True)
    assert release.updated_by == "ann" and release.updated_at.tzinfo is not None
    tags.set_policy("release/scratch-*", moved_by="ann")  # neither flag: an exemption
    tags.set_policy("release/1.0", immutable=True, moved_by="bob")
    tags.set_policy("v*", immutable=True)
    tags.set_policy("v[0-9].?", protected=True)
    # the most specific pattern governs: the name itself, then the most literal characters
    governing = {
        name: policy and policy.pattern
        for name in ("release/1.0", "release/2.0", "release/scratch-1", "v1.4", "v10", "main")
        if (policy := tags.get_policy(name)) is not None or True
    }
    assert governing == {
        "release/1.0": "release/1.0",
        "release/2.0": "release/*",
        "release/scratch-1": "release/scratch-*",
        "v1.4": "v[0-9].?",
        "v10": "v*",
        "main": None,
    }
    assert [p.pattern for p in tags.list_policies()] == sorted(
        ["release/*", "release/scratch-*", "release/1.0", "v*", "v[0-9].?"]
    )
    again = tags.set_policy("release/*", protected=True, moved_by="eve")  # no change
    assert again == release
    tags.set_policy("release/*", immutable=True, moved_by="eve")
    tags.delete_policy("release/*", moved_by="zed")
    assert tags.get_policy("release/2.0") is None
    history = [
        (
            c.pattern,
            c.old_immutable,
            c.old_protected,
            c.new_immutable,
            c.new_protected,
            c.changed_by,
        )
        for c in tags.policy_history("release/*")
    ]
    assert history == [
        ("release/*", None, None, False, True, "ann"),
        ("release/*", False, True, True, False, "eve"),
        ("release/*", True, False, None, None, "zed"),
    ]
    everything = tags.policy_history()
    assert len(everything) == 7 and [c.id for c in everything] == sorted(c.id for c in everything)
    with pytest.raises(core.NotFoundError, match="release/\\*"):
        tags.delete_policy("release/*")


@pytest.mark.parametrize(
    "pattern", ["", "v[1", "v]", "a..b", "a//b", "has space", "x" * 201, "v[!]", "é*", None, 7]
)
def test_a_bad_pattern_is_refused_naming_it_and_nothing_changes(
    catalog: core.Services, pattern: object
) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="invalid tag pattern"):
        catalog.tags.set_policy(pattern)  # type: ignore[arg-type]
    with pytest.raises(core.ValidationError, match="invalid tag pattern"):
        catalog.tags.delete_policy(pattern)  # type: ignore[arg-type]
    assert catalog.tags.list_policies() == [] and catalog.tags.policy_history() == []
    assert row_counts(catalog) == before
    with pytest.raises(core.ValidationError, match="immutable"):
        catalog.tags.set_policy("v*", immutable="yes")  # type: ignore[arg-type]


def test_an_immutable_tag_is_created_once_and_never_moved_swapped_or_deleted(
    catalog: core.Services, versions: dict[str, uuid.UUID]
) -> None:
    tags, one, two, three = catalog.tags, versions["one"], versions["two"], versions["three"]
    catalog.runs.create_run("before-policy", "v1.4")  # a run pinned before the tag existed
    catalog.runs.create_run("staged", "v1.4", publish="run")
    commit(catalog, "staged", "a", b"7", "v1.4")  # stages: moves no tag
    tags.set_policy("v*", immutable=True, moved_by="release-manager")
    created = tags.create_tag("v1.4", one, moved_by="ann")  # created once: allowed
    assert tags.create_or_move_tag("v1.4", one).revision == created.revision  # no move: allowed
    assert tags.compare_and_swap("v1.4", one, one)

    pattern = "v*"
    for call in (
        lambda: tags.create_tag("v1.4", two),
        lambda: tags.move_tag("v1.4", two),
        lambda: tags.create_or_move_tag("v1.4", two),
        lambda: tags.compare_and_swap("v1.4", one, two),
        lambda: tags.compare_and_swap("v1.4", one, None),
        lambda: tags.move_to("v1.4", two, expected_revision=created.revision),
        lambda: tags.move_if_at("v1.4", one, two),
        lambda: tags.delete_tag("v1.4"),
        lambda: catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("sales", {"nodes": {"z": {"deps": []}}}, tag="v1.4")
        ),
        lambda: catalog.workflows.patch_workflow(
            "v1.4", [{"op": "add", "path": "/nodes/z", "value": {"deps": []}}]
        ),
        lambda: commit(catalog, "before-policy", "a", b"1", "v1.4"),
        lambda: catalog.workflows.merge("feature", "v1.4"),
        lambda: catalog.runs.publish("staged"),
        lambda: catalog.runs.create_run("new-output-run", "v1.4"),
        lambda: catalog.runs.create_run("new-staged-run", "v1.4", publish="run"),
    ):
        refused(catalog, "v1.4", pattern, call)
    tags.create_tag("v2.0", one)
    refused(catalog, "v2.0", pattern, lambda: tags.rollback("v2.0", two))
    # merging what it holds already moves nothing, so it is not refused
    assert not catalog.workflows.merge("main@{1}", "v1.4").changed
    assert tags.get_tag("v1.4").target_id == one and three != one


def test_an_immutable_tag_that_does_not_exist_is_created_by_a_whole_run_only(
    catalog: core.Services,
) -> None:
    catalog.tags.set_policy("v*", immutable=True)
    refused(catalog, "v9", "v*", lambda: commit(catalog, "build", "a", b"1", "v9"))
    with pytest.raises(core.PolicyError, match="freeze it holding part of the run"):
        catalog.runs.create_run("build", "v9")
    catalog.runs.create_run("whole", "v9", publish="run")
    commit(catalog, "whole", "a", b"1", "v9")
    commit(catalog, "whole", "b", b"2", "v9")
    assert "v9" not in {tag.name for tag in catalog.tags.list_tags()}  # staged only
    published = catalog.runs.publish("whole")  # creates v9 with the whole run: allowed once
    assert published.changed and catalog.tags.get_tag("v9").revision == 1
    refused(catalog, "v9", "v*", lambda: catalog.runs.create_run("again", "v9", publish="run"))


def test_a_protected_tag_moves_only_by_publish_or_merge(
    catalog: core.Services, versions: dict[str, uuid.UUID]
) -> None:
    tags, one, two = catalog.tags, versions["one"], versions["two"]
    output_run = catalog.runs.create_run("output-run", "main")  # before the policy
    catalog.runs.create_run("staged", "main", publish="run")
    staged = commit(catalog, "staged", "d", b"4", "main")
    tags.set_policy("main", protected=True, moved_by="lead")  # on main's existing history
    for call in (
        lambda: tags.move_tag("main", one),
        lambda: tags.create_or_move_tag("main", one),
        lambda: tags.compare_and_swap("main", two, one),
        lambda: tags.compare_and_swap("main", two, None),
        lambda: tags.move_to("main", one, expected_revision=2),
        lambda: tags.move_if_at("main", two, one),
        lambda: tags.delete_tag("main"),
        lambda: tags.rollback("main"),
        lambda: catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("sales", {"nodes": {}})
        ),
        lambda: catalog.workflows.patch_workflow(
            "main", [{"op": "remove", "path": "/nodes/b"}], expected_revision=2
        ),
        lambda: commit(catalog, output_run.run_id, "a", b"1", "main"),
        lambda: catalog.runs.create_run("new-output-run", "main"),
    ):
        refused(catalog, "main", "main", call)
    # publishing and merging move it
    published = catalog.runs.publish("staged")
    assert published.changed and published.to_target_id == staged.artifact_id
    merged = catalog.workflows.merge("feature", "main", moved_by="lead")
    assert merged.changed
    assert [m.reason for m in tags.get_history("main")][-2:] == [
        "publish run staged",
        "merge feature",
    ]
    # a protected tag that does not exist yet may be created by hand; then it is protected
    tags.set_policy("prod", protected=True)
    tags.create_tag("prod", one)
    refused(catalog, "prod", "prod", lambda: tags.move_tag("prod", two))
    assert catalog.workflows.merge("main", "prod").changed


def test_a_more_specific_pattern_exempts_a_name(
    catalog: core.Services, versions: dict[str, uuid.UUID]
) -> None:
    tags = catalog.tags
    tags.create_tag("release/1", versions["one"])
    tags.create_tag("release/scratch-1", versions["one"])
    tags.set_policy("release/*", immutable=True)
    tags.set_policy("release/scratch-*")
    assert tags.move_tag("release/scratch-1", versions["two"]).revision == 2
    refused(catalog, "release/1", "release/*", lambda: tags.move_tag("release/1", versions["two"]))
    tags.delete_policy("release/*")
    assert tags.move_tag("release/1", versions["two"]).revision == 2  # lifted: moves again


def test_the_audit_records_a_refused_publish_instead_of_raising(catalog: core.Services) -> None:
    catalog.runs.create_run("staged", "v3", publish="run")
    commit(catalog, "staged", "a", b"1", "v3")
    commit(catalog, "other", "b", b"2", "v3")  # creates v3 meanwhile
    catalog.tags.set_policy("v*", immutable=True)
    before = catalog.tags.get_history("v3")
    outcome = catalog.runs.publish_if_passed("staged", status="success")
    assert outcome.state is core.OutcomeState.REFUSED
    assert catalog.runs.get_run("staged").outcome == outcome
    assert catalog.tags.get_history("v3") == before
    catalog.tags.delete_policy("v*")  # lifted: a person can publish it by hand
    assert catalog.runs.publish("staged").changed


def test_a_policy_set_between_output_commits_refuses_the_next(catalog: core.Services) -> None:
    """On DuckDB the later commits are written behind, and still obey the policy."""
    for n in range(3):
        commit(catalog, "busy", f"n{n}", b"%d" % n, "main")
    catalog.tags.set_policy("ma*", protected=True)
    refused(catalog, "main", "ma*", lambda: commit(catalog, "busy", "n9", b"9", "main"))
    catalog.tags.delete_policy("ma*")
    assert commit(catalog, "busy", "n9", b"9", "main").changed


def test_a_dry_run_of_a_merge_an_immutable_tag_refuses_is_refused_too(
    catalog: core.Services, versions: dict[str, uuid.UUID]
) -> None:
    catalog.tags.create_tag("v1.4", versions["one"])
    catalog.tags.set_policy("v*", immutable=True)
    refused(catalog, "v1.4", "v*", lambda: catalog.workflows.preview_merge("feature", "v1.4"))
    refused(catalog, "v1.4", "v*", lambda: catalog.workflows.merge("feature", "v1.4"))
    assert not catalog.workflows.preview_merge("main@{1}", "v1.4").changed  # holds it already
