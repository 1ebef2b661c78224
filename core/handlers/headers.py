"""HTTP headers the handlers read, parsed strictly as RFC 9110 spells them.

``If-Match`` carries a tag's expected revision: ``"3"`` (the ``ETag`` this server sends),
a bare ``3``, a list, or ``*``. Entity tags are compared whole, as text: under
``If-Match`` only a strong tag whose text is a revision's ``ETag`` text can match (a weak
tag, or one this server never sends, such as ``"03"``, never does); under
``If-None-Match`` the weak comparison holds. Repeated field lines are one list (RFC 9110
5.3). Numbers are ASCII digits only, of bounded length.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import core
from core.identifiers import MAX_REVISION

MAX_DIGITS = 18
"""Longer numbers are not parsed (each fits a 64-bit integer; Python's ``int`` stops at
4300 digits with an error)."""

ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
"""``entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE`` (RFC 9110 8.8.3)."""
DIGITS = re.compile(r"[0-9]+")
"""ASCII digits: ``str.isdigit`` also accepts ``²`` and ``٣``, which ``int`` refuses."""
LIST_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")


@dataclass(frozen=True)
class EntityTag:
    """One entity tag of a header: its opaque text (without quotes) and whether it is weak."""

    opaque: str
    weak: bool = False


@dataclass(frozen=True)
class IfMatch:
    """An ``If-Match`` header: ``any`` for ``*``, else the revisions its tags can match
    (empty when none can: the precondition fails whatever the tag's revision)."""

    any: bool
    revisions: tuple[int, ...] = ()


def entity_tags(header: str) -> list[EntityTag] | None:
    """The entity tags of a list header (``None`` for ``*``); a bare number counts as
    the strong tag of that number. ``ValueError`` names what is malformed."""
    text = header.strip(" \t")
    if text == "*":
        return None
    found: list[EntityTag] = []
    position = 0
    while position < len(text):
        if separator := LIST_SEPARATOR.match(text, position):  # empty elements are allowed
            position = separator.end()
            continue
        if (tag := ENTITY_TAG.match(text, position)) is not None:
            found.append(EntityTag(tag[2], weak=tag[1] is not None))
        elif (number := DIGITS.match(text, position)) is not None:
            found.append(EntityTag(number[0]))
            tag = number
        else:
            raise ValueError(f"not an entity tag at character {position + 1}")
        position = tag.end()
        if position < len(text) and not LIST_SEPARATOR.match(text, position):
            raise ValueError(f"expected ',' at character {position + 1}")
    if not found:
        raise ValueError("no entity tag")
    return found


def parse_number(digits: str) -> int | None:
    """``digits`` as an int if it is ASCII digits of bounded length, else ``None``."""
    if len(digits) > MAX_DIGITS or DIGITS.fullmatch(digits) is None:
        return None
    return int(digits)


def parse_if_match(header: str | None) -> IfMatch | None:
    """The ``If-Match`` header (``None`` without one); ``ValidationError`` if malformed."""
    if header is None:
        return None
    try:
        tags = entity_tags(header)
    except ValueError as error:
        raise core.ValidationError(
            f"invalid If-Match header {header!r}: {error}; expected a tag revision such as "
            "'\"3\"', a list of them, or '*'"
        ) from None
    if tags is None:
        return IfMatch(any=True)
    revisions = (None if tag.weak else sent_revision(tag.opaque) for tag in tags)
    return IfMatch(any=False, revisions=tuple(dict.fromkeys(r for r in revisions if r is not None)))


def sent_revision(opaque: str) -> int | None:
    """The revision whose ``ETag`` text (``str(revision)``) is exactly ``opaque``, if any:
    ``"03"`` and ``"+3"`` name no revision this server sends."""
    number = parse_number(opaque)
    if number is None or number > MAX_REVISION or str(number) != opaque:
        return None
    return number


def expected_revision(
    if_match: IfMatch | None, current: Callable[[], int | None], describe: str
) -> int | None:
    """The revision to compare-and-swap on: ``None`` without a header or for ``*``; the
    one the header lists, or, when it lists several, the tag's ``current()`` revision if
    listed, else the first (that swap loses). A header that can match no revision is a
    ``ConflictError`` naming ``describe``."""
    if if_match is None or if_match.any:
        return None
    if not if_match.revisions:
        raise core.ConflictError(
            f"{describe}: If-Match names no revision this server sends (a strong tag such "
            "as '\"3\"'; a weak tag never matches)"
        )
    if len(if_match.revisions) > 1 and (now := current()) in if_match.revisions:
        return now
    return if_match.revisions[0]


def none_match(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches the strong tag ``etag`` (weak
    comparison: ``W/`` ignored; ``*`` matches); a malformed header matches nothing."""
    if header is None:
        return False
    try:
        tags = entity_tags(header)
    except ValueError:
        return False
    return tags is None or any(f'"{tag.opaque}"' == etag for tag in tags)


def revision_etag(revision: int) -> str:
    """The ``ETag`` of a tag at ``revision``."""
    return f'"{revision}"'


def combined(field_lines: list[str]) -> str | None:
    """The field lines of one header as the single list they mean (RFC 9110 5.3: joined
    with ``", "``), or ``None`` without any."""
    return ", ".join(field_lines) if field_lines else None
