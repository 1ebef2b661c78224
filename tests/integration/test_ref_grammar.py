"""The ref grammar against oracles: git for ``~N``, ``^`` and ``@{N}`` on random
histories, the tag's own history for ``@{<time>}``, and run pins for ``@{run:...}``."""

import itertools
import random
import shutil
import subprocess
from datetime import UTC, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core
from core.ref_syntax import parse_ref

GIT = shutil.which("git")


class GitOracle:
    """A git repository that mirrors the catalog's versions: one commit per version."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commit_of: dict[object, str] = {}
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "core.logAllRefUpdates", "always")

    def git(self, *args: str) -> str:
        env = {
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
            "HOME": str(self.path),
            "PATH": "/usr/bin:/bin",
        }
        done = subprocess.run(
            [GIT or "git", *args], cwd=self.path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout.strip()

    def head(self, branch: str) -> str:
        return self.git("rev-parse", branch)

    def rev(self, ref: str) -> str | None:
        done = subprocess.run(
            [GIT or "git", "rev-parse", "--verify", "-q", ref],
            cwd=self.path,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip() if done.returncode == 0 else None


def commit(catalog: core.Services, git: GitOracle, branch: str, step: int) -> None:
    """A new version on ``branch`` (a node of its own, so merges never conflict)."""
    tag = catalog.tags.get_tag(branch)
    document = catalog.artifacts.resolve(tag.target_id)
    document["nodes"][f"{branch}_{step}"] = {"deps": []}
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", document, tag=branch))
    git.git("checkout", "-q", branch)
    git.git("commit", "-q", "--allow-empty", "-m", f"{branch} {step}")
    git.commit_of[catalog.tags.get_tag(branch).target_id] = git.head(branch)


def merge(catalog: core.Services, git: GitOracle, source: str, into: str) -> None:
    """``source`` merged into ``into``: a fast-forward when it can be, as git does."""
    result = catalog.workflows.merge(source, into)
    git.git("checkout", "-q", into)
    git.git("merge", "-q", "--no-edit", source)
    if result.changed:
        git.commit_of.setdefault(result.to_target_id, git.head(into))
    assert git.commit_of[catalog.tags.get_tag(into).target_id] == git.head(into)


def reset(catalog: core.Services, git: GitOracle, branch: str, rng: random.Random) -> None:
    """``branch`` moved back to one of its ancestors, by hand."""
    line = catalog.artifacts.get_ancestry(catalog.tags.get_tag(branch).target_id)
    target = rng.choice(line[1:]) if len(line) > 1 else line[0]
    if target.id == catalog.tags.get_tag(branch).target_id:
        return
    catalog.tags.move_tag(branch, target.id)
    git.git("update-ref", "-m", "reset", f"refs/heads/{branch}", git.commit_of[target.id])


@pytest.mark.skipif(GIT is None, reason="the git oracle needs git")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_first_parents_and_positions_match_git(
    catalog: core.Services, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    git = GitOracle(tmp_path / "oracle")
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", {"nodes": {}}))
    git.git("commit", "-q", "--allow-empty", "-m", "root")
    git.commit_of[catalog.tags.get_tag("main").target_id] = git.head("main")
    catalog.tags.create_tag("feature", catalog.tags.get_tag("main").target_id)
    git.git("branch", "feature", "main")
    for step in range(40):
        roll = rng.random()
        if roll < 0.45:
            commit(catalog, git, "main", step)
        elif roll < 0.8:
            commit(catalog, git, "feature", step)
        elif roll < 0.92:
            source, into = rng.choice([("feature", "main"), ("main", "feature")])
            merge(catalog, git, source, into)
        else:
            reset(catalog, git, rng.choice(["main", "feature"]), rng)
    version_of = {sha: artifact_id for artifact_id, sha in git.commit_of.items()}
    for branch in ("main", "feature"):
        refs = [f"{branch}~{n}" for n in range(30)] + [f"{branch}@{{{n}}}" for n in range(60)]
        refs += [f"{branch}^", f"{branch}^^", f"{branch}~2^", f"{branch}@{{3}}~2", f"{branch}~"]
        for ref in refs:
            expected = git.rev(ref)
            if expected is None:
                with pytest.raises(core.NotFoundError):
                    catalog.refs.resolve(ref)
            else:
                assert catalog.refs.resolve(ref).id == version_of[expected], ref


def test_a_long_line_resolves_any_distance(catalog: core.Services) -> None:
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", {"nodes": {}}))
    line = [catalog.tags.get_tag("main").target_id]
    for step in range(300):
        catalog.workflows.patch_workflow(
            "main", [{"op": "add", "path": f"/nodes/n{step}", "value": {"deps": []}}]
        )
        line.append(catalog.tags.get_tag("main").target_id)
    for distance in (1, 2, 3, 63, 64, 65, 127, 255, 300):
        assert catalog.refs.resolve(f"main~{distance}").id == line[-1 - distance]
    assert catalog.refs.resolve("main~100~100~100").id == line[0]
    hash_of_middle = catalog.artifacts.get_by_id(line[150]).version_hash
    assert catalog.refs.resolve(f"{hash_of_middle}~150").id == line[0]
    assert catalog.refs.resolve(f"{line[150]}^").id == line[149]
    with pytest.raises(core.NotFoundError, match="fewer than 301 first parents"):
        catalog.refs.resolve("main~301")


def history_with_times(catalog: core.Services) -> list[core.TagMove]:
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", {"nodes": {}}))
    for step in range(4):
        catalog.workflows.patch_workflow(
            "main", [{"op": "add", "path": f"/nodes/n{step}", "value": {"deps": []}}]
        )
    return catalog.tags.get_history("main")


def test_a_time_names_the_target_at_that_instant(catalog: core.Services) -> None:
    moves = history_with_times(catalog)
    first, last = moves[0].moved_at, moves[-1].moved_at
    for before, after in itertools.pairwise(moves):
        if before.moved_at == after.moved_at:
            continue  # no instant lies between
        between = before.moved_at + (after.moved_at - before.moved_at) / 2
        assert catalog.refs.resolve(f"main@{{{between.isoformat()}}}").id == before.to_target_id
        naive = between.astimezone(UTC).replace(tzinfo=None).isoformat()
        assert catalog.refs.resolve(f"main@{{{naive}}}").id == before.to_target_id
        india = between.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
        assert catalog.refs.resolve(f"main@{{{india}}}").id == before.to_target_id
        zulu = between.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
        assert catalog.refs.resolve(f"main@{{{zulu}}}").id == before.to_target_id
    assert catalog.refs.resolve(f"main@{{{last.isoformat()}}}").id == moves[-1].to_target_id
    at_first = first.isoformat()
    assert catalog.refs.resolve(f"main@{{{at_first}}}").id == moves[0].to_target_id
    tomorrow = (last + timedelta(days=1)).date().isoformat()
    assert catalog.refs.resolve(f"main@{{{tomorrow}}}").id == moves[-1].to_target_id
    assert catalog.refs.resolve(f"main@{{{tomorrow}}}~1").id == moves[-2].to_target_id
    with pytest.raises(core.NotFoundError, match="did not exist at"):
        catalog.refs.resolve(f"main@{{{(first - timedelta(microseconds=1)).isoformat()}}}")
    with pytest.raises(core.NotFoundError, match="did not exist at"):
        catalog.refs.resolve("main@{2000-01-01}")
    with pytest.raises(core.NotFoundError, match="did not exist at"):
        catalog.refs.resolve(f"nope@{{{tomorrow}}}")


def test_a_time_after_a_delete_is_not_found(catalog: core.Services) -> None:
    moves = history_with_times(catalog)
    catalog.tags.delete_tag("main")
    deleted_at = catalog.tags.get_history("main")[-1].moved_at
    with pytest.raises(core.NotFoundError, match="was deleted at"):
        catalog.refs.resolve(f"main@{{{(deleted_at + timedelta(seconds=1)).isoformat()}}}")
    before = moves[-1].moved_at.isoformat()
    assert catalog.refs.resolve(f"main@{{{before}}}").id == moves[-1].to_target_id


def test_a_run_pin_names_what_the_run_read(catalog: core.Services) -> None:
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", {"nodes": {}}))
    orders = catalog.cas.store_content(b'"v1"', "application/json")
    catalog.workflows.patch_workflow(
        "main",
        [{"op": "add", "path": "/nodes/orders", "value": {"deps": [], "cas_id": orders}}],
    )
    catalog.tags.create_tag("prod", catalog.tags.get_tag("main").target_id)
    base = catalog.tags.get_tag("main").target_id
    catalog.runs.create_run("run-1", "main")
    first = catalog.assets.locate_input("run-1", "main", "orders", pin_tag="prod")
    newer = catalog.cas.store_content(b'"v2"', "application/json")
    catalog.workflows.patch_workflow(
        "main", [{"op": "replace", "path": "/nodes/orders/cas_id", "value": newer}]
    )
    catalog.tags.move_tag("prod", catalog.tags.get_tag("main").target_id)
    again = catalog.assets.locate_input("run-1", "main", "orders", pin_tag="prod")
    assert again.cas_id == first.cas_id == orders  # read once per run, however prod moves
    assert catalog.refs.resolve("prod@{run:run-1}").id == base
    assert catalog.refs.resolve("main@{run:run-1}").id == base  # its own tag: its base
    assert catalog.refs.resolve("prod").id != base
    as_of = catalog.assets.locate_input("run-2", "main", "orders", pin_version="prod@{1}")
    assert as_of.cas_id == orders  # prod before its last move
    latest = catalog.cas.store_content(b'"v3"', "application/json")
    catalog.workflows.patch_workflow(
        "main", [{"op": "replace", "path": "/nodes/orders/cas_id", "value": latest}]
    )
    catalog.tags.move_tag("prod", catalog.tags.get_tag("main").target_id)
    assert catalog.refs.resolve("prod@{1}").id != base  # prod@{1} moved on...
    again = catalog.assets.locate_input("run-2", "main", "orders", pin_version="prod@{1}")
    assert again.cas_id == orders  # ...but run-2 reads what it read first
    with pytest.raises(core.NotFoundError, match="did not read tag 'other'"):
        catalog.refs.resolve("other@{run:run-1}")
    with pytest.raises(core.NotFoundError, match="run 'nobody' not found"):
        catalog.refs.resolve("main@{run:nobody}")


@pytest.mark.parametrize(
    ("ref", "part"),
    [
        ("main~x", "'~x'"),
        ("main^2", "'^2'"),
        ("main@{}", "@{} is empty"),
        ("main@{yesterday}", "'yesterday'"),
        ("main@{2026-13-01}", "'2026-13-01'"),
        ("ma in@{1}", "'ma in'"),
        ("~3", "'~3' follows no tag"),
        ("sha256:12", "version hash is sha256:"),
        ("run:", "run id"),
        ("main@{run:}", "run id"),
        ("main@1", "'@1'"),
    ],
)
def test_a_malformed_ref_names_the_wrong_part(catalog: core.Services, ref: str, part: str) -> None:
    with pytest.raises(core.ValidationError) as raised:
        catalog.refs.resolve(ref)
    assert part in str(raised.value) and repr(ref) in str(raised.value)


REF_ALPHABET = st.sampled_from(
    [*list("main~^@{}:-.0123456789abcdefTZ+/ _"), "run:", "sha256:", "\x00", "٣", "é"]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(st.text(max_size=40), st.lists(REF_ALPHABET, max_size=12).map("".join)))
def test_no_ref_raises_anything_but_validation_or_not_found(
    catalog: core.Services, text: str
) -> None:
    if not catalog.tags.list_tags():
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", {"nodes": {}}))
    try:
        parse_ref(text)
        catalog.refs.resolve(text)
    except (core.ValidationError, core.NotFoundError):
        pass


def test_a_ref_too_long_for_a_run_to_record_is_refused_as_a_pin(catalog: core.Services) -> None:
    catalog.assets.commit_output("writer", "main", "a", b"1", media_type="application/json")
    ref = "main" + "~0" * 300  # main, spelled in 604 characters
    with pytest.raises(core.ValidationError, match="at most 500 characters"):
        catalog.assets.locate_input("reader", "main", "a", pin_version=ref)
    assert catalog.refs.resolve(ref) == catalog.refs.resolve("main")  # pinning it is refused
    assert catalog.assets.locate_input("reader", "main", "a", pin_version=ref[:500]).cas_id
