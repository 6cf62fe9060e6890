"""Building `InvalidSyntax` errors with a bounded, readable copy of the offending input."""

from __future__ import annotations

from typing import Final

from strata.core.errors import InvalidSyntax

# Inputs can be kilobytes long; an error message only needs enough to recognise them.
_SHOWN_CHARS: Final = 80


def fail(problem: str, value: str) -> InvalidSyntax:
    """An `InvalidSyntax` whose message names `problem` and quotes (a prefix of) `value`."""
    shown = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."
    return InvalidSyntax(f"{problem}: {shown!r}")
