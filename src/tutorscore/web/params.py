"""Checks shared by the endpoints that take an `as_of` query parameter."""

from __future__ import annotations

from datetime import UTC, datetime

from tutorscore.errors import UserError

# Analytics windows and look-aheads subtract and add days to as_of; far from these
# bounds datetime arithmetic overflows (year 1 / 9999), so they are refused up front.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def checked_as_of(value: datetime | None, field: str = "as_of") -> datetime | None:
    """`value` in UTC; 400 when it has no offset or lies outside [1900, 9000) in UTC."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise UserError(f"{field}: the timestamp needs an offset or Z (times are UTC)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise UserError(
            f"{field}: expected a time from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} UTC, "
            f"got {value.isoformat()}"
        )
    return utc


__all__ = ["EARLIEST", "LATEST", "checked_as_of"]
