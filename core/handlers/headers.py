"""HTTP headers the handlers read: If-Match carries a tag's expected revision."""

import core


def expected_revision(if_match: str | None) -> int | None:
    """The revision in an ``If-Match`` header (``3`` or ``"3"``); ``None`` without one."""
    if if_match is None:
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise core.ValidationError(
            f"invalid If-Match header {if_match!r}: expected a tag revision such as '\"3\"'"
        )
    return int(text)


def revision_etag(revision: int) -> str:
    return f'"{revision}"'
