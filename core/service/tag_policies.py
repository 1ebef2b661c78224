"""Tag policies: which tags may move how, and the refusals every mover obeys.

A policy names its tags by a glob (``fnmatch`` rules, case-sensitive: ``*`` any run of
characters, ``/`` included; ``?`` one character; ``[...]`` one of a set, ``[!...]`` one
not in it). The policy that governs a name is the most specific pattern that matches it:
a pattern with no wildcard (the name itself) first, then the one with the most literal
characters, then the first by pattern text. So ``release/*`` protected and
``release/scratch-*`` with neither flag leaves ``release/scratch-1`` free.

``immutable``: a tag that does not exist may be created once (by any mover); once it
exists nothing moves or deletes it, publishing and merging included. ``protected``: a
tag that does not exist may be created by hand (it holds nothing to protect yet); once
it exists only publishing a run (``runs.publish``) and merging (``workflows.merge``)
move it. A call that would leave a tag where it is is never refused. A policy set on a
tag's existing history is allowed: it governs moves from then on.

Every mover reads the policies in its own transaction, before it moves (a commit through
its ``CommitStore``, so a DuckDB commit written behind obeys them too). On Postgres a move
whose transaction read them just before a concurrent policy change committed may still
land: a policy governs the moves that begin after it is set.
"""

import fnmatch
import functools
import re
from collections.abc import Iterable

from core.domain import PublishMode, TagPolicy, TagPolicyChange
from core.errors import NotFoundError, PolicyError, ValidationError
from core.identifiers import check_actor, check_tag_name, check_tag_pattern
from core.repository.clock import utc_now
from core.repository.unit_of_work import UnitOfWork
from core.storage.uow import UnitOfWorkFactory


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def _literals(pattern: str) -> int:
    """How many characters of ``pattern`` match only themselves."""
    return len(re.sub(r"\[[^\]]*\]|[*?]", "", pattern))


def specificity(pattern: str) -> tuple[bool, int, str]:
    """Sorts the most specific pattern first: no wildcard, then most literal characters,
    then by text."""
    wildcard = any(c in pattern for c in "*?[")
    return (wildcard, -_literals(pattern), pattern)


def governing(policies: Iterable[TagPolicy], name: str) -> TagPolicy | None:
    """The policy that governs tag ``name``: the most specific pattern matching it."""
    matching = [p for p in policies if _compiled(p.pattern).fullmatch(name) is not None]
    return min(matching, key=lambda p: specificity(p.pattern), default=None)


def refuse_direct(policies: Iterable[TagPolicy], name: str, *, live: bool, action: str) -> None:
    """``PolicyError`` if ``action`` (a direct move, a workflow or output commit) may not
    change tag ``name`` (``live``: it exists now)."""
    policy = governing(policies, name)
    if policy is None or not live:
        return
    if policy.immutable:
        raise _immutable(name, policy, action)
    if policy.protected:
        raise PolicyError(
            f"tag {name!r} is protected (policy {policy.pattern!r}): only publishing a run "
            f"or a merge moves it, not {action}; nothing changed",
            tag=name,
            pattern=policy.pattern,
        )


def refuse_landing(policies: Iterable[TagPolicy], name: str, *, live: bool, action: str) -> None:
    """``PolicyError`` if ``action`` (publishing a run, a merge) may not move tag ``name``."""
    policy = governing(policies, name)
    if policy is not None and live and policy.immutable:
        raise _immutable(name, policy, action)


def refuse_run(
    policies: Iterable[TagPolicy], name: str, publish: PublishMode, *, live: bool
) -> None:
    """``PolicyError`` for a new run that could never move its tag: a ``publish="output"``
    run on a protected tag, any run on an immutable tag that exists, and a
    ``publish="output"`` run on an immutable tag that does not (its first output would
    create the tag and freeze it holding part of the run)."""
    policy = governing(policies, name)
    if policy is None:
        return
    if policy.immutable and live:
        raise _immutable(name, policy, f"a publish={publish.value!r} run")
    if policy.immutable and publish is PublishMode.OUTPUT:
        raise PolicyError(
            f"tag {name!r} is immutable (policy {policy.pattern!r}): a publish='output' run "
            "would create it with its first output and freeze it holding part of the run; "
            "run with publish='run' (it lands whole) or create the tag by hand; nothing "
            "changed",
            tag=name,
            pattern=policy.pattern,
        )
    if policy.protected and not policy.immutable and publish is PublishMode.OUTPUT:
        raise PolicyError(
            f"tag {name!r} is protected (policy {policy.pattern!r}): a publish='output' run "
            "cannot move it (only publishing a run or a merge does); run with "
            "publish='run' instead; nothing changed",
            tag=name,
            pattern=policy.pattern,
        )


def refuse_run_in(uow: UnitOfWork, name: str, publish: PublishMode) -> None:
    """A step: ``refuse_run`` for a new run on tag ``name`` as ``uow`` sees it."""
    policies = uow.commits.policies()
    if governing(policies, name) is not None:
        live = uow.commits.head(name).target_id is not None
        refuse_run(policies, name, publish, live=live)


def _immutable(name: str, policy: TagPolicy, action: str) -> PolicyError:
    return PolicyError(
        f"tag {name!r} is immutable (policy {policy.pattern!r}): created once, it is never "
        f"moved, swapped or deleted, not by {action} either; nothing changed",
        tag=name,
        pattern=policy.pattern,
    )


def _check_flag(value: object, field: str) -> bool:
    if type(value) is not bool:
        raise ValidationError(f"invalid {field} {value!r}: expected True or False")
    return value


class TagPolicies:
    """Sets, reads and deletes policies; every change is recorded (who, when, old, new)."""

    def __init__(self, uow: UnitOfWorkFactory[UnitOfWork]) -> None:
        self._uow = uow

    def set_policy(
        self,
        pattern: str,
        *,
        immutable: bool = False,
        protected: bool = False,
        moved_by: str | None = None,
    ) -> TagPolicy:
        """Store the policy of ``pattern`` (replacing its flags); setting the flags it
        has already changes and records nothing."""
        check_tag_pattern(pattern)
        _check_flag(immutable, "immutable")
        _check_flag(protected, "protected")
        check_actor(moved_by, "moved_by")
        with self._uow() as uow:
            uow.tag_policies.lock(pattern)
            old = uow.tag_policies.get(pattern)
            if old is not None and (old.immutable, old.protected) == (immutable, protected):
                uow.commit()
                return old
            at = utc_now()
            new = uow.tag_policies.put(
                pattern,
                immutable=immutable,
                protected=protected,
                updated_by=moved_by,
                at=at,
                exists=old is not None,
            )
            uow.tag_policies.append_change(pattern, old, new, changed_by=moved_by, at=at)
            uow.commit()
        return new

    def delete_policy(self, pattern: str, *, moved_by: str | None = None) -> None:
        """Delete the policy stored under exactly ``pattern`` (``NotFoundError`` if none)."""
        check_tag_pattern(pattern)
        check_actor(moved_by, "moved_by")
        with self._uow() as uow:
            uow.tag_policies.lock(pattern)
            old = uow.tag_policies.get(pattern)
            if old is None:
                raise NotFoundError(f"no tag policy with pattern {pattern!r}")
            uow.tag_policies.delete(pattern)
            uow.tag_policies.append_change(pattern, old, None, changed_by=moved_by)
            uow.commit()

    def get_policy(self, name: str) -> TagPolicy | None:
        """The policy that governs tag ``name`` (``None``: no pattern matches it)."""
        check_tag_name(name)
        with self._uow() as uow:
            policies = uow.tag_policies.all()
            uow.commit()
        return governing(policies, name)

    def list_policies(self) -> list[TagPolicy]:
        """Every policy, by pattern."""
        with self._uow() as uow:
            policies = list(uow.tag_policies.all())
            uow.commit()
        return policies

    def policy_history(self, pattern: str | None = None) -> list[TagPolicyChange]:
        """Every change of every policy (or of ``pattern``), oldest first."""
        if pattern is not None:
            check_tag_pattern(pattern)
        with self._uow() as uow:
            history = uow.tag_policies.history(pattern)
            uow.commit()
        return history

    def refuse_direct_in(self, uow: UnitOfWork, name: str, action: str) -> None:
        """A step: ``refuse_direct`` for tag ``name`` as ``uow`` sees it (the tag is read
        only when a policy governs it)."""
        policies = uow.commits.policies()
        if governing(policies, name) is not None:
            live = uow.commits.head(name).target_id is not None
            refuse_direct(policies, name, live=live, action=action)
