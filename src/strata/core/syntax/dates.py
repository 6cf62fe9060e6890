"""Datetimes in the atproto lexicon `datetime` format.

The format is the intersection of RFC 3339 and ISO 8601: `YYYY-MM-DDTHH:MM:SS[.fraction]` with a
mandatory `Z` or `+HH:MM` / `-HH:MM` offset, uppercase `T` and `Z`, and never `-00:00`. As in the
reference implementations, a string is only valid if it also names a real instant between years
0000 and 9999 in UTC (no month 13, February 30 or leap second).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Final

from strata.core.syntax._fail import fail

MAX_DATETIME_LENGTH: Final = 64

_DATETIME_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)
_MINUTES_PER_DAY: Final = 24 * 60
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def validate_datetime(s: str) -> str:
    """Return `s` if it is a valid atproto datetime, else raise `InvalidSyntax`."""
    _fields(s)
    return s


def parse_datetime(s: str) -> dt.datetime:
    """Parse an atproto datetime into a timezone-aware `datetime`, keeping its UTC offset.

    Digits past microseconds are truncated. Year 0000 is valid atproto but has no `datetime`
    equivalent, so it raises `InvalidSyntax` here.
    """
    year, month, day, hour, minute, second, fraction, offset = _fields(s)
    if year == 0:
        raise fail("datetime year 0000 cannot be represented", s)
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    tz = dt.UTC if offset == 0 else dt.timezone(dt.timedelta(minutes=offset))
    return dt.datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)


def format_datetime(value: dt.datetime) -> str:
    """The preferred atproto form of an aware datetime: UTC, milliseconds, `Z` suffix."""
    if value.utcoffset() is None:
        raise fail("datetime must be timezone-aware", value.isoformat())
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError as exc:
        raise fail("datetime out of range in UTC", value.isoformat()) from exc
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def format_millis(ms: int) -> str:
    """Milliseconds since the epoch in the preferred form (`YYYY-MM-DDTHH:MM:SS.sssZ`)."""
    moment = dt.datetime.fromtimestamp(ms // 1000, dt.UTC) + dt.timedelta(milliseconds=ms % 1000)
    return format_datetime(moment)


def parse_millis(s: str) -> int:
    """Milliseconds since the epoch of a valid atproto datetime."""
    value = parse_datetime(s)
    return int(value.timestamp()) * 1000 + value.microsecond // 1000


def _fields(s: str) -> tuple[int, int, int, int, int, int, str | None, int]:
    """Validate `s`; return its fields, the fraction digits and the UTC offset in minutes."""
    if len(s) > MAX_DATETIME_LENGTH:
        raise fail(f"datetime too long (max {MAX_DATETIME_LENGTH} chars)", s)
    match = _DATETIME_RE.fullmatch(s)
    if match is None:
        raise fail(
            "datetime must look like YYYY-MM-DDTHH:MM:SS[.fraction] with 'Z' or a ±HH:MM offset",
            s,
        )
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction, sign = match[7], match[8]
    if not 1 <= month <= 12:
        raise fail("datetime month out of range", s)
    if not 1 <= day <= _days_in_month(year, month):
        raise fail("datetime day out of range for its month", s)
    if hour > 23:
        raise fail("datetime hour out of range", s)
    if minute > 59:
        raise fail("datetime minute out of range", s)
    if second > 59:
        raise fail("datetime second out of range (leap seconds are not allowed)", s)
    offset = 0
    if sign is not None:
        offset_hour, offset_minute = int(match[9]), int(match[10])
        if offset_hour > 23 or offset_minute > 59:
            raise fail("datetime timezone offset out of range", s)
        if sign == "-" and offset_hour == 0 and offset_minute == 0:
            raise fail("datetime must write UTC as 'Z' or '+00:00', not '-00:00'", s)
        offset = offset_hour * 60 + offset_minute
        if sign == "-":
            offset = -offset
    # The instant in UTC must still fall in years 0000-9999; only the first and last day of
    # that range can be pushed out of it by an offset.
    local_minutes = hour * 60 + minute
    if year == 0 and (month, day) == (1, 1) and local_minutes - offset < 0:
        raise fail("datetime is before year 0000 in UTC", s)
    if year == 9999 and (month, day) == (12, 31) and local_minutes - offset >= _MINUTES_PER_DAY:
        raise fail("datetime is after year 9999 in UTC", s)
    return year, month, day, hour, minute, second, fraction, offset


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and calendar.isleap(year):
        return 29
    return _DAYS_IN_MONTH[month - 1]
