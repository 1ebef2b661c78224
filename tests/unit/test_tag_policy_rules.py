"""Tag policies on the fake: which pattern governs a name, which patterns are valid, and
refusals that leave the catalog as it was (no unit of work committed)."""

import uuid
from datetime import UTC, datetime

import pytest

import core
from core.identifiers import check_tag_pattern
from core.service.tag_policies import governing
from tests.support.fakes import FakeCatalog


def policy(pattern: str) -> core.TagPolicy:
    return core.TagPolicy(pattern, False, True, datetime.now(UTC), None)


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("main", ["*", "m*", "main", "ma?n"], "main"),  # the name itself first
        ("main", ["*", "m*", "ma?n"], "ma?n"),  # then the most literal characters
        ("release/1.0", ["release/*", "*", "release/?.?"], "release/?.?"),
        ("v10", ["v[0-9]*", "v*"], "v*"),  # a set counts as no literal, as ? does
        ("v1", ["v[0-9]", "v?"], "v?"),  # same literals: the first by text
        ("team/a/main", ["team/*", "*/main"], "*/main"),  # "*" spans "/"; a tie: by text
        ("Main", ["main", "m*"], None),  # case-sensitive
        ("v1", ["v[!1]", "x*"], None),
    ],
)
def test_the_most_specific_matching_pattern_governs(
    name: str, patterns: list[str], expected: str | None
) -> None:
    found = governing([policy(p) for p in patterns], name)
    assert (found and found.pattern) == expected


@pytest.mark.parametrize("pattern", ["main", "v*", "release/*", "v[0-9].?", "[!x]*", "a-b_c.d"])
def test_globs_over_tag_names_are_valid_patterns(pattern: str) -> None:
    assert check_tag_pattern(pattern) == pattern


def test_a_refused_move_commits_no_unit_of_work(fake: FakeCatalog) -> None:
    artifacts, tags = fake.services.artifacts, fake.services.tags
    one, two = (artifacts.add_dag_version("w", {"nodes": {f"n{i}": {"deps": []}}}) for i in (1, 2))
    tags.create_tag("main", one)
    tags.set_policy("main", protected=True)
    commits = len(fake.uow.commits)
    with pytest.raises(core.PolicyError, match="'main' is protected"):
        tags.move_tag("main", two)
    with pytest.raises(core.PolicyError):
        tags.delete_tag("main")
    assert len(fake.uow.commits) == commits
    assert tags.get_tag("main").target_id == one and isinstance(one, uuid.UUID)
