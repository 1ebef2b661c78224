"""Validation of the identifiers users hand us: tag names, content ids, artifact ids.

Each rule lives in one function here, and every entry point that takes such a value
(the services, and through them HTTP, the CLI and Dagster; a DAG document's node ids,
deps and partition keys) calls it, so a value one of them refuses, all of them refuse.
``where`` (``"in nodes"``, ``"in deps of node 'x'"``) says where a value was found.
"""

import re
import uuid

from core.domain import PublishMode
from core.errors import ValidationError

TAG_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
CAS_ID_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
VERSION_HASH_PATTERN = CAS_ID_PATTERN


def check_tag_name(name: object) -> str:
    """Return ``name`` if it is a valid tag name, else raise ``ValidationError``."""
    if (
        not isinstance(name, str)
        or TAG_NAME_PATTERN.fullmatch(name) is None
        or ".." in name
        or "//" in name
    ):
        raise ValidationError(
            f"invalid tag name {name!r}: must match {TAG_NAME_PATTERN.pattern} "
            "with no '..' and no '//'"
        )
    return name


def _at(where: str | None) -> str:
    """The part of a message that says where a value was found (`` in nodes``), if known."""
    return f" {where}" if where else ""


def check_cas_id(cas_id: object, where: str | None = None) -> str:
    """Return ``cas_id`` if it has the form ``sha256:<64 lowercase hex>``."""
    if not isinstance(cas_id, str) or CAS_ID_PATTERN.fullmatch(cas_id) is None:
        raise ValidationError(
            f"invalid cas id {cas_id!r}{_at(where)}: expected 'sha256:<64 lowercase hex>'"
        )
    return cas_id


def check_version_hash(version_hash: object) -> str:
    """Return ``version_hash`` if it has the form ``sha256:<64 lowercase hex>``."""
    if not isinstance(version_hash, str) or VERSION_HASH_PATTERN.fullmatch(version_hash) is None:
        raise ValidationError(
            f"invalid version hash {version_hash!r}: expected 'sha256:<64 lowercase hex>'"
        )
    return version_hash


def check_artifact_id(artifact_id: object) -> uuid.UUID:
    """Return ``artifact_id`` as a UUID (accepting its string form)."""
    if isinstance(artifact_id, uuid.UUID):
        return artifact_id
    if isinstance(artifact_id, str):
        try:
            return uuid.UUID(artifact_id)
        except ValueError:
            pass
    raise ValidationError(f"invalid artifact id {artifact_id!r}: expected a UUID")


def check_name(value: object, field: str, limit: int = 255, where: str | None = None) -> str:
    """``value`` if it is a string of 1 to ``limit`` printable characters."""
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isprintable():
        raise ValidationError(
            f"invalid {field} {value!r}{_at(where)}: expected 1-{limit} printable characters"
        )
    return value


def check_run_id(run_id: object) -> str:
    return check_name(run_id, "run id", 200)


def check_node_id(node: object, where: str | None = None) -> str:
    """``node`` if it is a node id (an asset's key, a key of a DAG document's ``nodes``,
    an entry of a node's ``deps``): 1 to 1000 printable characters."""
    return check_name(node, "node id", 1000, where)


def check_partition_key(key: object, where: str | None = None) -> str | None:
    """``key`` if it is ``None`` or text as ``check_text`` takes it, not empty."""
    if key == "":
        raise ValidationError(
            f"invalid partition key ''{_at(where)}: expected at least one character"
        )
    return check_text(key, "partition key", 1000, where)


def check_size(size: object, where: str | None = None) -> int:
    """``size`` if it is an int >= 0 (a byte count)."""
    if type(size) is not int or size < 0:
        raise ValidationError(f"invalid size {size!r}{_at(where)}: expected an int >= 0")
    return size


def check_artifact_name(name: object) -> str:
    return check_name(name, "artifact name")


def check_job_name(name: object) -> str | None:
    """``name`` if it is ``None`` or 1-255 printable characters."""
    return None if name is None else check_name(name, "job name")


MAX_LIMIT = 1_000_000


def check_limit(limit: object) -> int:
    """Return ``limit`` if it is an int from 1 to ``MAX_LIMIT`` (how many rows to list)."""
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"invalid limit {limit!r}: expected 1 to {MAX_LIMIT}")
    return limit


def check_text(value: object, field: str, limit: int, where: str | None = None) -> str | None:
    """``value`` if it is ``None`` or a string of at most ``limit`` characters with no NUL
    (and no lone surrogate, which no database can store)."""
    if value is not None and (
        not isinstance(value, str) or len(value) > limit or "\x00" in value or not _utf8(value)
    ):
        raise ValidationError(
            f"invalid {field} {value!r}{_at(where)}: expected at most {limit} characters of "
            "UTF-8 text and no NUL"
        )
    return value


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_actor(value: object, field: str = "created_by") -> str | None:
    """Who did something (``created_by``, ``moved_by``): ``None`` or a short string."""
    return check_text(value, field, 255)


MAX_REASON = 10_000


def check_reason(value: object, field: str = "reason") -> str | None:
    """Why something moved (a tag move's ``reason``, a commit's ``message``): ``None`` or
    text of at most ``MAX_REASON`` characters."""
    return check_text(value, field, MAX_REASON)


MAX_REVISION = 2**31 - 1
"""The largest revision a tag can have (the catalog stores it as a 32-bit integer)."""


def check_revision(revision: object, field: str = "expected revision") -> int | None:
    """``revision`` if it is ``None`` or a real int from 0 to ``MAX_REVISION`` (a tag's
    revision: ``True``, ``1.0`` and ``"1"`` are not ``1``)."""
    if revision is not None and (type(revision) is not int or not 0 <= revision <= MAX_REVISION):
        raise ValidationError(
            f"invalid {field} {revision!r}: expected an int from 0 to {MAX_REVISION}"
        )
    return revision


def check_media_type(media_type: object, where: str | None = None) -> str:
    """``media_type`` if it looks like ``type/subtype``."""
    if (
        not isinstance(media_type, str)
        or not 0 < len(media_type) <= 255
        or "/" not in media_type
        or not media_type.isprintable()
    ):
        raise ValidationError(
            f"invalid media type {media_type!r}{_at(where)}: expected 'type/subtype'"
        )
    return media_type


def check_content(content: object) -> bytes | bytearray | memoryview:
    """``content`` if it is bytes-like."""
    if not isinstance(content, bytes | bytearray | memoryview):
        raise ValidationError(f"content must be bytes, got {type(content).__name__}")
    return content


MIN_RUN_PREFIX = 8
"""The shortest run id prefix that names a run (the Dagster UI shows eight characters)."""
MAX_PIN_REF = 500
"""Characters of a ref an input pins (``orchestrator/version``), which its run records."""


def check_pin_ref(ref: object) -> None:
    """``ValidationError`` if ``ref`` is text longer than a run can record as a pin (any
    other malformed ref is the ref grammar's to refuse)."""
    if isinstance(ref, str) and len(ref) > MAX_PIN_REF:
        raise ValidationError(
            f"invalid pinned ref {ref[:40]!r}... ({len(ref)} characters): a ref an input "
            f"pins is at most {MAX_PIN_REF} characters"
        )


def check_publish(publish: object) -> PublishMode | None:
    """``publish`` as a mode (``None`` stays ``None``); an unknown one is refused."""
    if publish is None or isinstance(publish, PublishMode):
        return publish
    if isinstance(publish, str) and publish in PublishMode.__members__.values():
        return PublishMode(publish)
    modes = ", ".join(repr(mode.value) for mode in PublishMode)
    raise ValidationError(f"invalid publish mode {publish!r}: expected one of {modes}")


TAG_PATTERN_CHARACTERS = re.compile(r"[A-Za-z0-9._/*?\[\]!-]{1,200}")
"""A tag policy's pattern: the tag-name alphabet plus the glob's ``*``, ``?`` and
``[...]`` (``[!...]`` negates)."""
_BRACKET = re.compile(r"\[!?(?:[A-Za-z0-9._/-](?:-[A-Za-z0-9._/])?)+\]")


def check_tag_pattern(pattern: object) -> str:
    """``pattern`` if it is a glob over tag names (``v*``, ``release/*``, ``main``): at
    most 200 characters of the tag-name alphabet, ``*``, ``?`` and bracket expressions
    (``[0-9]``, ``[!x]``) that close; no ``..`` or ``//`` (no tag name holds them)."""
    text = pattern if isinstance(pattern, str) else ""
    rest = _BRACKET.sub("?", text)
    if (
        TAG_PATTERN_CHARACTERS.fullmatch(text) is None
        or any(c in rest for c in "[]!")
        or ".." in text
        or "//" in text
    ):
        raise ValidationError(
            f"invalid tag pattern {pattern!r}: expected a glob of at most 200 characters "
            "over tag names ([A-Za-z0-9._/-]) with *, ? and closed [...] (no '..', no '//')"
        )
    return text
