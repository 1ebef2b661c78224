"""Timestamps are stored as naive UTC and handed out time-zone aware."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time as the naive UTC value the tables store."""
    return datetime.now(UTC).replace(tzinfo=None)


def stored(value: datetime) -> datetime:
    """An aware ``datetime`` as the naive UTC value the tables store."""
    return value.astimezone(UTC).replace(tzinfo=None)


def aware(value: datetime) -> datetime:
    """A stored naive UTC timestamp as an aware ``datetime``."""
    return value.replace(tzinfo=UTC)


def aware_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)
