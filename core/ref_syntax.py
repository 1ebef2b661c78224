"""The ref grammar: how a version is named on a command line, over HTTP or in a pin.

::

    ref      = base ( "~" [digits] | "^" )*
    base     = "run:" run-id                     a run's staged head, else its base
             | tag "@{" digits "}"               the tag's target before its N-th latest move
             | tag "@{" iso-8601-time "}"        the tag's target at that instant (UTC if
                                                 no offset; a date alone is its midnight)
             | tag "@{run:" run-id "}"           the version that run pinned on the tag
             | tag | version hash or 8+ hex digits of one | artifact id

``~N`` walks N first parents (``~`` alone is ``~1``), ``^`` one; they add up. Parsing
needs no catalog: a malformed ref is a ``ValidationError`` naming the part that is wrong.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import ValidationError
from core.identifiers import TAG_NAME_PATTERN, check_run_id, check_tag_name

MAX_STEPS = 2**31 - 1
"""Positions and first-parent walks past this name nothing (and stay cheap to parse)."""
SUFFIXES = re.compile(r"(?P<base>.*?)(?P<suffixes>(?:~[0-9]*|\^)*)", re.S)
STEP = re.compile(r"~(?P<count>[0-9]*)|\^")
SELECTOR = re.compile(r"(?P<tag>[^@]*)@\{(?P<selector>.*)\}", re.S)
RUN_PREFIX = "run:"
HASH_PREFIX = "sha256:"
MIN_PREFIX = 8
"""Hex digits a version hash prefix needs."""
HEX_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_PREFIX},64}}")
ARTIFACT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
"""An artifact id as ``str(uuid)`` spells it (32 bare hex digits are a hash prefix)."""


@dataclass(frozen=True)
class Named:
    """A tag, a version hash (or a prefix of one) or an artifact id."""

    name: str


@dataclass(frozen=True)
class Staged:
    """``run:<run id>``."""

    run_id: str


@dataclass(frozen=True)
class Position:
    """``TAG@{N}``."""

    tag: str
    moves_back: int


@dataclass(frozen=True)
class AsOf:
    """``TAG@{<time>}`` (an aware UTC instant)."""

    tag: str
    instant: datetime


@dataclass(frozen=True)
class PinnedBy:
    """``TAG@{run:<run id>}``."""

    tag: str
    run_id: str


Base = Named | Staged | Position | AsOf | PinnedBy


@dataclass(frozen=True)
class Ref:
    """A parsed ref: where to start, then how many first parents to walk."""

    text: str
    base: Base
    first_parents: int


def parse_ref(text: object) -> Ref:
    """``text`` parsed by the grammar above; ``ValidationError`` naming the bad part."""
    if not isinstance(text, str) or not text:
        raise ValidationError(f"invalid ref {text!r}: expected a tag, hash or artifact id")
    split = SUFFIXES.fullmatch(text)
    assert split is not None, "every string splits into a base and (maybe no) suffixes"
    base, suffixes = split["base"], split["suffixes"]
    if not base:
        raise ValidationError(f"invalid ref {text!r}: {suffixes!r} follows no tag or version")
    return Ref(text, _base(text, base), _first_parents(suffixes))


def _first_parents(suffixes: str) -> int:
    total = 0
    for step in STEP.finditer(suffixes):
        count = step["count"]
        total += 1 if count is None or count == "" else _number(count)
    return min(total, MAX_STEPS + 1)


def _base(text: str, base: str) -> Base:
    if base.startswith(RUN_PREFIX):
        return Staged(_run_id(text, base[len(RUN_PREFIX) :]))
    if selected := SELECTOR.fullmatch(base):
        return _selected(text, selected["tag"], selected["selector"])
    if base.startswith(HASH_PREFIX):
        if HEX_PREFIX.fullmatch(base[len(HASH_PREFIX) :]) is None:
            raise ValidationError(
                f"invalid ref {text!r}: a version hash is sha256: and {MIN_PREFIX} to 64 "
                "lowercase hex digits"
            )
        return Named(base)
    if TAG_NAME_PATTERN.fullmatch(base) is None and ARTIFACT_ID.fullmatch(base) is None:
        wrong = next((c for c in base if c in "~^@{}"), None)
        detail = (
            f"{base[base.index(wrong) :]!r} is not ~N, ^ or @{{...}}"
            if wrong is not None
            else f"{base!r} is not a tag, version hash or artifact id"
        )
        raise ValidationError(f"invalid ref {text!r}: {detail}")
    return Named(base)


def _selected(text: str, tag: str, selector: str) -> Base:
    """``TAG@{selector}``: a position, a run's pin or a time."""
    try:
        check_tag_name(tag)
    except ValidationError as exc:
        raise ValidationError(
            f"invalid ref {text!r}: {tag!r} before @{{ is not a tag name"
        ) from exc
    if not selector:
        raise ValidationError(f"invalid ref {text!r}: @{{}} is empty: give N, a time or run:ID")
    if selector.isascii() and selector.isdigit():
        return Position(tag, _number(selector))
    if selector.startswith(RUN_PREFIX):
        return PinnedBy(tag, _run_id(text, selector[len(RUN_PREFIX) :]))
    return AsOf(tag, _instant(text, selector))


def _instant(text: str, selector: str) -> datetime:
    """An ISO 8601 time as an aware UTC ``datetime`` (naive means UTC)."""
    try:
        when = datetime.fromisoformat(selector)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValidationError(
            f"invalid ref {text!r}: {selector!r} in @{{...}} is not a number of moves, "
            "run:<run id> or an ISO 8601 time (2026-11-01, 2026-11-01T09:30:00+01:00)"
        ) from exc


def _run_id(text: str, run_id: str) -> str:
    try:
        return check_run_id(run_id)
    except ValidationError as exc:
        raise ValidationError(f"invalid ref {text!r}: {exc}") from exc


def _number(digits: str) -> int:
    """ASCII ``digits`` as an int; one too long to matter is ``MAX_STEPS + 1``."""
    significant = digits.lstrip("0") or "0"
    return MAX_STEPS + 1 if len(significant) > len(str(MAX_STEPS)) else int(significant)
