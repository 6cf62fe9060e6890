"""Timestamp identifiers (TIDs): 64-bit integers written in 13 base32-sortable characters.

The top bit is zero, the next 53 bits are microseconds since the UNIX epoch and the low 10 bits
a clock identifier, so TIDs sort as strings in the order they were made.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Final

from strata.core.syntax._fail import fail

TID_LENGTH: Final = 13
ALPHABET: Final = "234567abcdefghijklmnopqrstuvwxyz"
MAX_MICROS: Final = (1 << 53) - 1
MAX_CLOCK_ID: Final = (1 << 10) - 1

_TID_RE: Final = re.compile(r"[234567a-j][234567a-z]{12}")
_DIGITS: Final = {char: value for value, char in enumerate(ALPHABET)}


def validate_tid(s: str) -> str:
    """Return `s` if it is a syntactically valid TID, else raise `InvalidSyntax`."""
    if len(s) == TID_LENGTH and _TID_RE.fullmatch(s):
        return s
    if len(s) != TID_LENGTH:
        raise fail(f"TID must be {TID_LENGTH} chars", s)
    if not all(char in _DIGITS for char in s):
        raise fail("TID contains chars outside the base32-sortable alphabet", s)
    raise fail("TID first char is out of range (high bit must be zero)", s)


def tid_from_parts(micros: int, clock_id: int) -> str:
    """The TID for a timestamp in microseconds since the epoch and a 10-bit clock identifier."""
    if not 0 <= micros <= MAX_MICROS:
        raise fail("TID timestamp out of range", str(micros))
    if not 0 <= clock_id <= MAX_CLOCK_ID:
        raise fail("TID clock id out of range", str(clock_id))
    value = (micros << 10) | clock_id
    chars: list[str] = []
    for _ in range(TID_LENGTH):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def tid_timestamp_micros(tid: str) -> int:
    """The timestamp of a TID, in microseconds since the epoch."""
    value = 0
    for char in validate_tid(tid):
        value = (value << 5) | _DIGITS[char]
    return value >> 10


def _wall_clock_micros() -> int:
    return time.time_ns() // 1000


class TidClock:
    """A source of TIDs that are strictly increasing for the life of the clock.

    If the wall clock stalls or goes backwards, timestamps continue one microsecond after the
    last one issued, so ordering never depends on the system clock behaving.
    """

    def __init__(
        self,
        now_micros: Callable[[], int] = _wall_clock_micros,
        clock_id: int | None = None,
    ) -> None:
        self._now_micros = now_micros
        # Random, so TIDs from separate processes writing to one repository rarely collide.
        self.clock_id = secrets.randbits(10) if clock_id is None else clock_id
        if not 0 <= self.clock_id <= MAX_CLOCK_ID:
            raise fail("TID clock id out of range", str(self.clock_id))
        self._last = -1
        self._lock = threading.Lock()

    def next(self) -> str:
        """A TID greater than every TID this clock has returned before."""
        with self._lock:
            micros = max(self._now_micros(), self._last + 1)
            self._last = micros
        return tid_from_parts(micros, self.clock_id)


_SHARED_CLOCK: Final = TidClock()


def next_tid() -> str:
    """A fresh TID from the process-wide clock."""
    return _SHARED_CLOCK.next()
