"""Language tags (lexicon `language` format): well-formed BCP-47, per the RFC 5646 grammar.

`validate_language` checks the grammar only, as lexicon validation does. `parse_language`
additionally enforces RFC 5646 section 2.2.9: no variant or extension singleton may repeat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from strata.core.syntax._fail import fail

_GRANDFATHERED: Final = (
    "en-GB-oed|i-ami|i-bnn|i-default|i-enochian|i-hak|i-klingon|i-lux|i-mingo|i-navajo|i-pwn|"
    "i-tao|i-tay|i-tsu|sgn-BE-FR|sgn-BE-NL|sgn-CH-DE|"
    "art-lojban|cel-gaulish|no-bok|no-nyn|zh-guoyu|zh-hakka|zh-min|zh-min-nan|zh-xiang"
)
_LANGUAGE_RE: Final = re.compile(
    rf"(?P<grandfathered>{_GRANDFATHERED})"
    r"|[a-z]{2,3}(?:-[A-Za-z]{3}(?:-[A-Za-z]{3}){0,2})?"  # language, extlang
    r"(?:-[A-Za-z]{4})?"  # script
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"  # region
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"  # variants
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"  # extensions
    r"(?:-[xX](?:-[A-Za-z0-9]{1,8})+)?"  # private use
    r"|(?P<private_use>[xX](?:-[A-Za-z0-9]{1,8})+)"
)
_EXTLANG_RE: Final = re.compile(r"[A-Za-z]{3}")
_SCRIPT_RE: Final = re.compile(r"[A-Za-z]{4}")
_REGION_RE: Final = re.compile(r"[A-Za-z]{2}|[0-9]{3}")
_VARIANT_RE: Final = re.compile(r"[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}")
_SINGLETON_RE: Final = re.compile(r"[0-9A-WY-Za-wy-z]")


@dataclass(frozen=True, slots=True)
class LanguageTag:
    """The subtags of a BCP-47 language tag, case preserved."""

    tag: str
    language: str | None = None
    extlang: tuple[str, ...] = ()
    script: str | None = None
    region: str | None = None
    variants: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    private_use: str | None = None
    grandfathered: str | None = None


def validate_language(s: str) -> str:
    """Return `s` if it is a well-formed BCP-47 language tag, else raise `InvalidSyntax`."""
    _match(s)
    return s


def parse_language(s: str) -> LanguageTag:
    """Split a language tag into subtags, rejecting repeated variants or extension singletons."""
    match = _match(s)
    if match["grandfathered"]:
        return LanguageTag(s, grandfathered=s)
    if match["private_use"]:
        return LanguageTag(s, private_use=s)

    # The grammar matched, so each subtag's kind follows from its position and shape alone.
    subtags = s.split("-")
    n = len(subtags)
    i = 1
    while i < n and i <= 3 and _EXTLANG_RE.fullmatch(subtags[i]):
        i += 1
    extlang = tuple(subtags[1:i])
    script = region = None
    if i < n and _SCRIPT_RE.fullmatch(subtags[i]):
        script = subtags[i]
        i += 1
    if i < n and _REGION_RE.fullmatch(subtags[i]):
        region = subtags[i]
        i += 1
    variants: list[str] = []
    seen: set[str] = set()
    while i < n and _VARIANT_RE.fullmatch(subtags[i]):
        if subtags[i].lower() in seen:
            raise fail(f"language tag repeats variant {subtags[i]!r}", s)
        seen.add(subtags[i].lower())
        variants.append(subtags[i])
        i += 1
    extensions: list[str] = []
    seen.clear()
    while i < n and _SINGLETON_RE.fullmatch(subtags[i]):
        if subtags[i].lower() in seen:
            raise fail(f"language tag repeats extension {subtags[i]!r}", s)
        seen.add(subtags[i].lower())
        start = i
        i += 1
        while i < n and len(subtags[i]) > 1:
            i += 1
        extensions.append("-".join(subtags[start:i]))
    private_use = "-".join(subtags[i:]) or None
    return LanguageTag(
        s,
        language=subtags[0],
        extlang=extlang,
        script=script,
        region=region,
        variants=tuple(variants),
        extensions=tuple(extensions),
        private_use=private_use,
    )


def _match(s: str) -> re.Match[str]:
    match = _LANGUAGE_RE.fullmatch(s)
    if match is None:
        if not s:
            raise fail("language tag is empty", s)
        raise fail("language tag is not well-formed BCP-47", s)
    return match
