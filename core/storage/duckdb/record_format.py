"""Commit records as journal lines: JSON objects of a versioned format, exact both ways.

A line holds ``{"format": 1, "id": <uuid>, "record": {...}}``. Every field is written
by its declared type (uuids and times as text, kinds as their words) and read back to
that same type, so a record read back equals the one written; anything else (an unknown
format, a field missing, extra or of another type) is refused with the field named.
"""

import reprlib
import uuid
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import Enum
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from core.domain import ArtifactKind, Direction
from core.identifiers import CAS_ID_PATTERN
from core.storage.commit_record import (
    BlobEntry,
    CommitRecord,
    HeadMove,
    NewVersion,
    RunValue,
    TagSwap,
)

FORMAT = 1
"""The format this release writes and reads; a line of another is refused by name."""

_CONTENT_IDS = frozenset({"cas_id", "version_hash", "refs"})
"""Fields whose values are ``sha256:<hex>`` content ids."""
_PARTS = (CommitRecord, BlobEntry, NewVersion, TagSwap, HeadMove, RunValue)
_HINTS = {part: get_type_hints(part) for part in _PARTS}


class RecordError(ValueError):
    """A journal line that is not a commit record of this format; says which part."""


def encode(record_id: uuid.UUID, record: CommitRecord) -> dict[str, Any]:
    """The JSON-able object of ``record`` on a journal line."""
    return {"format": FORMAT, "id": str(record_id), "record": _encode(record)}


def decode(line: object) -> tuple[uuid.UUID, CommitRecord]:
    """The record id and record of a journal line's object; ``RecordError`` otherwise."""
    if isinstance(line, list):
        raise RecordError(
            f"is a list of writes, as releases before format {FORMAT} wrote them: fold it "
            "with the release that wrote it"
        )
    if not isinstance(line, dict) or set(line) != {"format", "id", "record"}:
        raise RecordError(f"is not a commit record: {reprlib.repr(line)}")
    if line["format"] != FORMAT or type(line["format"]) is not int:
        raise RecordError(
            f"is written in format {reprlib.repr(line['format'])}, and this release reads "
            f"format {FORMAT} only: fold it with the release that wrote it"
        )
    record_id = _value(line["id"], uuid.UUID, "id")
    record: CommitRecord = _value(line["record"], CommitRecord, "record")
    return record_id, record


def _encode(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: _encode(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID | datetime):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    return value


def _value(value: Any, kind: Any, where: str) -> Any:
    """``value`` read back as ``kind`` (a hint of the record's fields)."""
    if get_origin(kind) in (Union, UnionType):
        options = get_args(kind)
        if value is None and NoneType in options:
            return None
        (kind,) = [option for option in options if option is not NoneType]
    if get_origin(kind) is tuple:
        if not isinstance(value, list):
            raise RecordError(f"{where} is {reprlib.repr(value)}, not a list")
        item = get_args(kind)[0]
        return tuple(_value(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if kind in _PARTS:
        return _part(value, kind, where)
    if kind in (int, str):
        if type(value) is not kind:
            raise RecordError(f"{where} is {reprlib.repr(value)}, not {kind.__name__}")
        field = where.rsplit(".", 1)[-1].split("[")[0]
        if field in _CONTENT_IDS and not CAS_ID_PATTERN.fullmatch(value):
            raise RecordError(f"{where} is {reprlib.repr(value)}, not a sha256: content id")
        return value
    if type(value) is not str:
        raise RecordError(f"{where} is {reprlib.repr(value)}, not text")
    try:
        if kind is uuid.UUID:
            return uuid.UUID(value)
        if kind is datetime:
            return _naive_time(value)
        return kind(value)  # ArtifactKind, Direction
    except ValueError:
        raise RecordError(f"{where} is {reprlib.repr(value)}, not {_named(kind)}") from None


def _part(value: Any, kind: type[Any], where: str) -> Any:
    hints = _HINTS[kind]
    if not isinstance(value, dict) or set(value) != set(hints):
        found = sorted(value) if isinstance(value, dict) else reprlib.repr(value)
        raise RecordError(f"{where} has the fields {found}, not {sorted(hints)}")
    values = {name: _value(value[name], hints[name], f"{where}.{name}") for name in hints}
    try:
        return kind(**values)
    except ValueError as exc:  # a rule of the part itself
        raise RecordError(f"{where}: {exc}") from None


def _naive_time(text: str) -> datetime:
    """A stored time: naive UTC, as the catalog's tables keep them."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        raise ValueError(text)
    return value


def _named(kind: Any) -> str:
    if kind is datetime:
        return "a time without an offset (naive UTC)"
    if kind is uuid.UUID:
        return "a uuid"
    if kind in (ArtifactKind, Direction):
        return "one of " + ", ".join(sorted(member.value for member in kind))
    return str(kind)
