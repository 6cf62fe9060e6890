"""Counting user-perceived characters (extended grapheme clusters) for `maxGraphemes`.

This follows the segmentation rules of Unicode 15.0 (UAX #29), the version the reference
implementations use, so the Indic conjunct rule added in 15.1 (GB9c) is deliberately absent.
Rather than shipping the full property tables, the Grapheme_Cluster_Break property is derived
from the general category in `unicodedata` plus short lists of the exceptions UAX #29 makes to
it; only `Extended_Pictographic`, which no category approximates and which decides how emoji
joined by ZWJ group, is a table of its own. Characters newer than the interpreter's Unicode
database count as ordinary letters, which can only split, never merge, a cluster.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from itertools import pairwise
from typing import Final

_OTHER: Final = 0
_CR: Final = 1
_LF: Final = 2
_CONTROL: Final = 3
_EXTEND: Final = 4
_ZWJ: Final = 5
_RI: Final = 6
_PREPEND: Final = 7
_SPACING_MARK: Final = 8
_L: Final = 9
_V: Final = 10
_T: Final = 11
_LV: Final = 12
_LVT: Final = 13

_BREAKS_AROUND: Final = frozenset({_CONTROL, _CR, _LF})

Ranges = tuple[tuple[int, int], ...]

# Grapheme_Extend characters whose general category is not Mn/Me, plus the emoji modifiers,
# which UAX #29 also treats as Extend.
_EXTRA_EXTEND: Final[Ranges] = (
    (0x09BE, 0x09BE), (0x09D7, 0x09D7), (0x0B3E, 0x0B3E), (0x0B57, 0x0B57),
    (0x0BBE, 0x0BBE), (0x0BD7, 0x0BD7), (0x0CC2, 0x0CC2), (0x0CD5, 0x0CD6),
    (0x0D3E, 0x0D3E), (0x0D57, 0x0D57), (0x0DCF, 0x0DCF), (0x0DDF, 0x0DDF),
    (0x1B35, 0x1B35), (0x200C, 0x200C), (0x302E, 0x302F), (0xFF9E, 0xFF9F),
    (0x1133E, 0x1133E), (0x11357, 0x11357), (0x114B0, 0x114B0), (0x114BD, 0x114BD),
    (0x115AF, 0x115AF), (0x11930, 0x11930), (0x1D165, 0x1D165), (0x1D16E, 0x1D172),
    (0x1F3FB, 0x1F3FF), (0xE0020, 0xE007F),
)  # fmt: skip

_PREPENDS: Final[Ranges] = (
    (0x0600, 0x0605), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891),
    (0x08E2, 0x08E2), (0x0D4E, 0x0D4E), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x111C2, 0x111C3), (0x1193F, 0x1193F), (0x11941, 0x11941), (0x11A3A, 0x11A3A),
    (0x11A84, 0x11A89), (0x11D46, 0x11D46), (0x11F02, 0x11F02),
)  # fmt: skip

# Spacing combining marks (Mc) that UAX #29 does not count as SpacingMark.
_NOT_SPACING: Final[Ranges] = (
    (0x102B, 0x102C), (0x1038, 0x1038), (0x1062, 0x1064), (0x1067, 0x106D),
    (0x1083, 0x1083), (0x1087, 0x108C), (0x108F, 0x108F), (0x109A, 0x109C),
    (0x1A61, 0x1A61), (0x1A63, 0x1A64), (0xAA7B, 0xAA7B), (0xAA7D, 0xAA7D),
    (0x11720, 0x11721),
)  # fmt: skip

# Extended_Pictographic, from the Unicode emoji data.
_PICTOGRAPHIC: Final[Ranges] = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328),
    (0x23CF, 0x23CF), (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB),
    (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2604), (0x260E, 0x260E),
    (0x2611, 0x2611), (0x2614, 0x2615), (0x2618, 0x2618), (0x261D, 0x261D), (0x2620, 0x2620),
    (0x2622, 0x2623), (0x2626, 0x2626), (0x262A, 0x262A), (0x262E, 0x262F), (0x2638, 0x263A),
    (0x2640, 0x2640), (0x2642, 0x2642), (0x2648, 0x2653), (0x265F, 0x2660), (0x2663, 0x2663),
    (0x2665, 0x2666), (0x2668, 0x2668), (0x267B, 0x267B), (0x267E, 0x267F), (0x2692, 0x2697),
    (0x2699, 0x2699), (0x269B, 0x269C), (0x26A0, 0x26A1), (0x26A7, 0x26A7), (0x26AA, 0x26AB),
    (0x26B0, 0x26B1), (0x26BD, 0x26BE), (0x26C4, 0x26C5), (0x26C8, 0x26C8), (0x26CE, 0x26CF),
    (0x26D1, 0x26D1), (0x26D3, 0x26D4), (0x26E9, 0x26EA), (0x26F0, 0x26F5), (0x26F7, 0x26FA),
    (0x26FD, 0x26FD), (0x2702, 0x2702), (0x2705, 0x2705), (0x2708, 0x270D), (0x270F, 0x270F),
    (0x2712, 0x2712), (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721),
    (0x2728, 0x2728), (0x2733, 0x2734), (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C),
    (0x274E, 0x274E), (0x2753, 0x2755), (0x2757, 0x2757), (0x2763, 0x2764), (0x2795, 0x2797),
    (0x27A1, 0x27A1), (0x27B0, 0x27B0), (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299), (0x1F004, 0x1F004), (0x1F02C, 0x1F02F),
    (0x1F094, 0x1F09F), (0x1F0AF, 0x1F0B0), (0x1F0C0, 0x1F0C0), (0x1F0CF, 0x1F0D0),
    (0x1F0F6, 0x1F0FF), (0x1F170, 0x1F171), (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A), (0x1F1AE, 0x1F1E5), (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A),
    (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A), (0x1F23C, 0x1F23F), (0x1F249, 0x1F25F),
    (0x1F266, 0x1F321), (0x1F324, 0x1F393), (0x1F396, 0x1F397), (0x1F399, 0x1F39B),
    (0x1F39E, 0x1F3F0), (0x1F3F3, 0x1F3F5), (0x1F3F7, 0x1F3FA), (0x1F400, 0x1F4FD),
    (0x1F4FF, 0x1F53D), (0x1F549, 0x1F54E), (0x1F550, 0x1F567), (0x1F56F, 0x1F570),
    (0x1F573, 0x1F57A), (0x1F587, 0x1F587), (0x1F58A, 0x1F58D), (0x1F590, 0x1F590),
    (0x1F595, 0x1F596), (0x1F5A4, 0x1F5A5), (0x1F5A8, 0x1F5A8), (0x1F5B1, 0x1F5B2),
    (0x1F5BC, 0x1F5BC), (0x1F5C2, 0x1F5C4), (0x1F5D1, 0x1F5D3), (0x1F5DC, 0x1F5DE),
    (0x1F5E1, 0x1F5E1), (0x1F5E3, 0x1F5E3), (0x1F5E8, 0x1F5E8), (0x1F5EF, 0x1F5EF),
    (0x1F5F3, 0x1F5F3), (0x1F5FA, 0x1F64F), (0x1F680, 0x1F6C5), (0x1F6CB, 0x1F6D2),
    (0x1F6D5, 0x1F6E5), (0x1F6E9, 0x1F6E9), (0x1F6EB, 0x1F6F0), (0x1F6F3, 0x1F6FF),
    (0x1F7DA, 0x1F7FF), (0x1F80C, 0x1F80F), (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F),
    (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8AF), (0x1F8BC, 0x1F8BF), (0x1F8C2, 0x1F8CF),
    (0x1F8D9, 0x1F8FF), (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1F9FF),
    (0x1FA58, 0x1FA5F), (0x1FA6E, 0x1FAFF), (0x1FC00, 0x1FFFD),
)  # fmt: skip


def _in(cp: int, ranges: Ranges) -> bool:
    index = bisect.bisect_right(ranges, (cp, 0x10FFFF)) - 1
    return index >= 0 and cp <= ranges[index][1]


@lru_cache(maxsize=4096)
def _property(cp: int) -> int:
    """The Grapheme_Cluster_Break property of one code point."""
    if cp < 0x7F:
        if cp == 0x0D:
            return _CR
        if cp == 0x0A:
            return _LF
        return _CONTROL if cp < 0x20 else _OTHER
    if 0x1F1E6 <= cp <= 0x1F1FF:
        return _RI
    if 0xAC00 <= cp <= 0xD7A3:
        return _LV if (cp - 0xAC00) % 28 == 0 else _LVT
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return _L
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return _V
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return _T
    if cp == 0x200D:
        return _ZWJ
    if _in(cp, _EXTRA_EXTEND):
        return _EXTEND
    if _in(cp, _PREPENDS):
        return _PREPEND
    category = unicodedata.category(chr(cp))
    if category in ("Mn", "Me"):
        return _EXTEND
    if category == "Mc":
        return _OTHER if _in(cp, _NOT_SPACING) else _SPACING_MARK
    if cp in (0x0E33, 0x0EB3):
        return _SPACING_MARK
    if category in ("Cc", "Cf", "Zl", "Zp", "Cs"):
        return _CONTROL
    # Unassigned default-ignorable code points are controls too.
    if category == "Cn" and (cp == 0x2065 or 0xFFF0 <= cp <= 0xFFF8 or 0xE0000 <= cp <= 0xE0FFF):
        return _CONTROL
    return _OTHER


@lru_cache(maxsize=4096)
def _pictographic(cp: int) -> bool:
    return cp >= 0xA9 and _in(cp, _PICTOGRAPHIC)


def _boundaries(text: str) -> Iterator[int]:
    """Indices at which a new grapheme cluster starts."""
    prev = -1
    ri_run = 0  # regional indicators immediately before the current position
    in_emoji = False  # inside `ExtPict Extend*`
    emoji_zwj = False  # just after `ExtPict Extend* ZWJ`
    for index, char in enumerate(text):
        cp = ord(char)
        cur = _property(cp)
        pict = _pictographic(cp)
        if prev < 0 or _is_break(prev, cur, pict, ri_run, emoji_zwj):
            yield index
        ri_run = ri_run + 1 if cur == _RI else 0
        emoji_zwj = in_emoji and cur == _ZWJ
        in_emoji = pict or (in_emoji and cur == _EXTEND)
        prev = cur


def _is_break(prev: int, cur: int, pict: bool, ri_run: int, emoji_zwj: bool) -> bool:
    if prev == _CR and cur == _LF:
        return False
    if prev in _BREAKS_AROUND or cur in _BREAKS_AROUND:
        return True
    if prev == _L and cur in (_L, _V, _LV, _LVT):
        return False
    if prev in (_LV, _V) and cur in (_V, _T):
        return False
    if prev in (_LVT, _T) and cur == _T:
        return False
    if cur in (_EXTEND, _ZWJ, _SPACING_MARK) or prev == _PREPEND:
        return False
    if emoji_zwj and pict:
        return False
    return not (prev == _RI and cur == _RI and ri_run % 2 == 1)


def count_graphemes(text: str) -> int:
    """Number of extended grapheme clusters in `text`."""
    if text.isascii():
        return len(text) - text.count("\r\n")
    return sum(1 for _ in _boundaries(text))


def split_graphemes(text: str) -> list[str]:
    """`text` split into its extended grapheme clusters."""
    starts = [*_boundaries(text), len(text)]
    return [text[a:b] for a, b in pairwise(starts)]
