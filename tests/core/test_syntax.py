"""Identifier and string-format syntax: messages, helpers, TIDs, datetimes and fuzzing."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.core.errors import CoreError, InvalidSyntax
from strata.core.syntax import (
    INVALID_HANDLE,
    AtUri,
    LanguageTag,
    TidClock,
    did_method,
    format_datetime,
    is_disallowed_tld,
    next_tid,
    normalize_handle,
    nsid_authority,
    nsid_name,
    parse_datetime,
    parse_language,
    tid_from_parts,
    tid_timestamp_micros,
    validate_at_identifier,
    validate_at_uri,
    validate_cid_string,
    validate_datetime,
    validate_did,
    validate_handle,
    validate_language,
    validate_nsid,
    validate_record_key,
    validate_tid,
    validate_uri,
)

VALIDATORS: list[Callable[[str], object]] = [
    validate_at_identifier,
    validate_at_uri,
    validate_cid_string,
    validate_datetime,
    validate_did,
    validate_handle,
    validate_language,
    validate_nsid,
    validate_record_key,
    validate_tid,
    validate_uri,
    did_method,
    normalize_handle,
    nsid_authority,
    nsid_name,
    parse_datetime,
    parse_language,
    tid_timestamp_micros,
    AtUri.parse,
]


# --- error messages name the problem ------------------------------------------------------


@pytest.mark.parametrize(
    ("validate", "value", "message"),
    [
        (validate_handle, "short." + "o" * 64 + ".test", "handle segment too long"),
        (validate_handle, "a" * 250 + ".test", "handle too long"),
        (validate_handle, "", "handle is empty"),
        (validate_handle, "john", "at least two segments"),
        (validate_handle, "john..test", "empty segment"),
        (validate_handle, "jo_hn.test", "disallowed characters"),
        (validate_handle, "john-.test", "hyphen"),
        (validate_handle, "john.0", "TLD must start with a letter"),
        (validate_did, "did:METHOD:val", "method must be lowercase"),
        (validate_did, "did:method:val:", "must not end with"),
        (validate_did, "DID:method:val", "must start with 'did:'"),
        (validate_did, "did:method:" + "v" * 2048, "DID too long"),
        (validate_nsid, "com.example", "at least three segments"),
        (validate_nsid, "com.example.fooBar.2", "NSID name"),
        (validate_nsid, "0two.example.foo", "first segment"),
        (validate_record_key, "..", "must not be '.' or '..'"),
        (validate_record_key, "o" * 513, "record key too long"),
        (validate_record_key, "any space", "disallowed characters"),
        (validate_tid, "3jzfcijpj2z2", "TID must be 13 chars"),
        (validate_tid, "kjzfcijpj2z2a", "high bit"),
        (validate_tid, "3JZFCIJPJ2Z2A", "alphabet"),
        (validate_datetime, "1985-04-12T23:20:50.123", "'Z' or a ±HH:MM offset"),
        (validate_datetime, "1985-13-12T23:20:50.123Z", "month out of range"),
        (validate_datetime, "1985-02-29T23:20:50.123Z", "day out of range"),
        (validate_datetime, "1985-04-12T23:20:60Z", "leap seconds"),
        (validate_datetime, "1985-04-12T23:20:50.123-00:00", "-00:00"),
        (validate_datetime, "9999-12-31T23:59:59-01:00", "after year 9999"),
        (validate_language, "jaja", "BCP-47"),
        (validate_cid_string, "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR", "CIDv0"),
        (validate_uri, "http:", "nothing after the scheme"),
        (validate_uri, "example.com", "scheme"),
        (validate_at_uri, "http://did:plc:asdf123", "must start with 'at://'"),
        (validate_at_uri, "at://did:plc:asdf123/", "trailing slash"),
        (validate_at_uri, "at://did:plc:asdf123/a.b.c/d/e", "more than two path segments"),
        (validate_at_uri, "at://did:plc:asdf123/short", "collection is not an NSID"),
        (validate_at_uri, "at://did:plc:asdf123/a.b.c/%23", "record key is invalid"),
        (validate_at_uri, "at://bsky", "authority is not a DID or handle"),
        (validate_at_identifier, "DID:plc:asdf123", "lowercase 'did:'"),
    ],
)
def test_error_message_names_problem(
    validate: Callable[[str], object], value: str, message: str
) -> None:
    with pytest.raises(InvalidSyntax, match=message):
        validate(value)


def test_invalid_syntax_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_did("nope")
    assert issubclass(InvalidSyntax, CoreError)


def test_error_message_truncates_long_input() -> None:
    with pytest.raises(InvalidSyntax) as info:
        validate_uri("https://example.com/" + "x" * 9000)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("validate", "valid"),
    [
        (validate_did, "did:plc:abc"),
        (validate_handle, "john.test"),
        (validate_nsid, "app.bsky.feed.post"),
        (validate_record_key, "self"),
        (validate_language, "en"),
        (validate_datetime, "1985-04-12T23:20:50.123Z"),
        (validate_uri, "https://example.com"),
        (validate_at_uri, "at://john.test"),
        (validate_cid_string, "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"),
    ],
)
def test_trailing_newline_is_rejected(validate: Callable[[str], object], valid: str) -> None:
    # Guards against `$`-anchored patterns, which also match before a final newline.
    assert validate(valid) == valid
    with pytest.raises(InvalidSyntax):
        validate(valid + "\n")
    if len(valid) > 1:
        with pytest.raises(InvalidSyntax):
            validate(valid[:-1] + "\n")


# --- identifiers ---------------------------------------------------------------------------


def test_did_method() -> None:
    assert did_method("did:plc:7iza6de2dwap2sbkpav7c6c6") == "plc"
    assert did_method("did:web:localhost%3A1234") == "web"
    with pytest.raises(InvalidSyntax):
        did_method("did:plc")


def test_normalize_handle() -> None:
    assert normalize_handle("Alice.Bsky.SOCIAL") == "alice.bsky.social"
    assert normalize_handle("alice.test") == "alice.test"
    with pytest.raises(InvalidSyntax):
        normalize_handle("alice")
    # U+212A KELVIN SIGN lowercases to an ASCII "k"; it must not sneak through.
    with pytest.raises(InvalidSyntax):
        normalize_handle("\u212a.test")


def test_disallowed_tlds_are_policy_not_syntax() -> None:
    for handle in ["laptop.local", "laptop.arpa", "x.onion", "a.example", INVALID_HANDLE]:
        assert validate_handle(handle) == handle
        assert is_disallowed_tld(handle)
    assert is_disallowed_tld("LAPTOP.LOCAL")
    assert not is_disallowed_tld("alice.test")
    assert not is_disallowed_tld("alice.bsky.social")
    assert not is_disallowed_tld("local.com")


def test_nsid_parts() -> None:
    assert nsid_authority("app.bsky.feed.post") == "feed.bsky.app"
    assert nsid_authority("Com.Example.fooBar") == "example.com"
    assert nsid_name("app.bsky.feed.getPostThread") == "getPostThread"
    with pytest.raises(InvalidSyntax):
        nsid_name("example.com")


def test_at_identifier() -> None:
    assert validate_at_identifier("did:plc:abc") == "did:plc:abc"
    assert validate_at_identifier("alice.test") == "alice.test"
    with pytest.raises(InvalidSyntax, match="DID"):
        validate_at_identifier("did:plc:")


# --- AT-URIs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "authority", "collection", "rkey"),
    [
        ("at://did:plc:asdf123", "did:plc:asdf123", None, None),
        ("at://alice.test/app.bsky.feed.post", "alice.test", "app.bsky.feed.post", None),
        ("at://did:plc:asdf123/app.bsky.feed.post/3jzfcijpj2z2a", "did:plc:asdf123",
         "app.bsky.feed.post", "3jzfcijpj2z2a"),
    ],
)  # fmt: skip
def test_at_uri_parse_and_str(
    text: str, authority: str, collection: str | None, rkey: str | None
) -> None:
    uri = AtUri.parse(text)
    assert (uri.authority, uri.collection, uri.rkey) == (authority, collection, rkey)
    assert str(uri) == text
    assert AtUri.make(authority, collection, rkey) == uri
    assert AtUri.parse(str(uri)) == uri


def test_at_uri_make_validates_parts() -> None:
    with pytest.raises(InvalidSyntax, match="needs a collection"):
        AtUri.make("did:plc:asdf123", None, "self")
    with pytest.raises(InvalidSyntax, match="collection"):
        AtUri.make("did:plc:asdf123", "post", "self")
    with pytest.raises(InvalidSyntax, match="record key"):
        AtUri.make("did:plc:asdf123", "app.bsky.feed.post", "a/b")
    with pytest.raises(InvalidSyntax, match="authority"):
        AtUri("not a handle")


def test_at_uri_is_frozen_and_hashable() -> None:
    uri = AtUri.make("alice.test", "app.bsky.feed.post", "self")
    with pytest.raises(AttributeError):
        uri.rkey = "other"  # type: ignore[misc]
    assert {uri, AtUri.parse("at://alice.test/app.bsky.feed.post/self")} == {uri}


# --- TIDs ----------------------------------------------------------------------------------


def test_tid_encoding_known_values() -> None:
    assert tid_from_parts(0, 0) == "2222222222222"
    assert tid_from_parts(0, 1) == "2222222222223"
    assert tid_from_parts((1 << 53) - 1, 1023) == "bzzzzzzzzzzzz"
    with pytest.raises(InvalidSyntax, match="timestamp"):
        tid_from_parts(1 << 53, 0)
    with pytest.raises(InvalidSyntax, match="clock id"):
        tid_from_parts(0, 1024)


@given(st.integers(0, (1 << 53) - 1), st.integers(0, 1023))
def test_tid_round_trip(micros: int, clock_id: int) -> None:
    tid = tid_from_parts(micros, clock_id)
    assert validate_tid(tid) == tid
    assert tid_timestamp_micros(tid) == micros


@given(
    st.tuples(st.integers(0, (1 << 53) - 1), st.integers(0, 1023)),
    st.tuples(st.integers(0, (1 << 53) - 1), st.integers(0, 1023)),
)
def test_tid_string_order_is_numeric_order(a: tuple[int, int], b: tuple[int, int]) -> None:
    assert (tid_from_parts(*a) < tid_from_parts(*b)) == (a < b)


def test_tid_clock_monotonic() -> None:
    clock = TidClock()
    tids = [clock.next() for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(tids))
    assert all(validate_tid(t) == t for t in tids[:100])


def _scripted(times: list[int]) -> Callable[[], int]:
    values: Iterator[int] = iter(times)
    return lambda: next(values)


def test_tid_clock_survives_wall_clock_going_backwards() -> None:
    clock = TidClock(_scripted([1_000, 2_000, 500, 500, 1_999, 5_000]), clock_id=7)
    tids = [clock.next() for _ in range(6)]
    assert all(a < b for a, b in itertools.pairwise(tids))
    assert [tid_timestamp_micros(t) for t in tids] == [1_000, 2_000, 2_001, 2_002, 2_003, 5_000]
    assert all(t.endswith(tid_from_parts(0, 7)[-2:]) for t in tids)


def test_tid_clock_same_microsecond() -> None:
    clock = TidClock(lambda: 1_700_000_000_000_000)
    tids = [clock.next() for _ in range(1_000)]
    assert len(set(tids)) == 1_000
    assert tids == sorted(tids)


def test_tid_clock_is_thread_safe() -> None:
    clock = TidClock(lambda: 42)
    results: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        out.extend(clock.next() for _ in range(500))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [tid for out in results for tid in out]
    assert len(set(every)) == len(every) == 4_000
    assert all(out == sorted(out) for out in results)


def test_tid_clock_ids() -> None:
    assert 0 <= TidClock().clock_id <= 1023
    with pytest.raises(InvalidSyntax):
        TidClock(clock_id=1024)


def test_next_tid_tracks_wall_clock() -> None:
    before = dt.datetime.now(dt.UTC).timestamp() * 1_000_000
    a, b = next_tid(), next_tid()
    assert validate_tid(a) == a
    assert a < b
    assert abs(tid_timestamp_micros(a) - before) < 60_000_000


# --- datetimes -----------------------------------------------------------------------------


def test_parse_datetime() -> None:
    parsed = parse_datetime("1985-04-12T23:20:50.123Z")
    assert parsed == dt.datetime(1985, 4, 12, 23, 20, 50, 123_000, tzinfo=dt.UTC)
    assert parsed.tzinfo is dt.UTC
    offset = parse_datetime("1985-04-12T23:20:50.123-07:00")
    assert offset.utcoffset() == dt.timedelta(hours=-7)
    assert offset == dt.datetime(1985, 4, 13, 6, 20, 50, 123_000, tzinfo=dt.UTC)
    assert parse_datetime("1985-04-12T23:20:50.123456789Z").microsecond == 123_456
    assert parse_datetime("1985-04-12T23:20:50Z").microsecond == 0
    assert parse_datetime("2000-02-29T00:00:00+00:00").tzinfo is dt.UTC


@pytest.mark.parametrize(
    "value",
    [
        "1985-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "1985-04-31T00:00:00Z",
        "1985-04-12T24:00:00Z",
        "1985-04-12T23:20:50.123+24:00",
        "1985-04-12T23:20:50.123+01:60",
        "0000-01-01T00:00:00.000Z",
    ],
)
def test_parse_datetime_rejects(value: str) -> None:
    with pytest.raises(InvalidSyntax):
        parse_datetime(value)


def test_datetime_edges() -> None:
    assert validate_datetime("2000-02-29T00:00:00Z")
    assert validate_datetime("0000-02-29T00:00:00Z")
    assert validate_datetime("0000-01-01T00:00:00-01:00")
    assert validate_datetime("9999-12-31T23:59:59Z")
    assert validate_datetime("9999-12-31T23:59:59+01:00")
    with pytest.raises(InvalidSyntax, match="before year 0000"):
        validate_datetime("0000-01-01T00:59:59+01:00")
    with pytest.raises(InvalidSyntax, match="too long"):
        validate_datetime("1985-04-12T23:20:50." + "1" * 50 + "Z")


def test_format_datetime() -> None:
    value = dt.datetime(1985, 4, 12, 23, 20, 50, 123_999, tzinfo=dt.UTC)
    assert format_datetime(value) == "1985-04-12T23:20:50.123Z"
    shifted = dt.datetime(2024, 1, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_datetime(shifted) == "2023-12-31T23:30:00.000Z"
    assert format_datetime(dt.datetime(9, 1, 2, tzinfo=dt.UTC)) == "0009-01-02T00:00:00.000Z"
    with pytest.raises(InvalidSyntax, match="timezone-aware"):
        format_datetime(dt.datetime(2024, 1, 1))
    too_early = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with pytest.raises(InvalidSyntax, match="out of range"):
        format_datetime(too_early)


@given(st.datetimes(timezones=st.just(dt.UTC)))
def test_format_then_parse_round_trip(value: dt.datetime) -> None:
    text = format_datetime(value)
    assert validate_datetime(text) == text
    assert parse_datetime(text) == value.replace(microsecond=value.microsecond // 1000 * 1000)


# --- languages -----------------------------------------------------------------------------


def test_parse_language() -> None:
    assert parse_language("hy-Latn-IT-arevela") == LanguageTag(
        "hy-Latn-IT-arevela", language="hy", script="Latn", region="IT", variants=("arevela",)
    )
    assert parse_language("en-GB-boont-r-extended-sequence-x-private") == LanguageTag(
        "en-GB-boont-r-extended-sequence-x-private",
        language="en",
        region="GB",
        variants=("boont",),
        extensions=("r-extended-sequence",),
        private_use="x-private",
    )
    assert parse_language("zh-yue-HK").extlang == ("yue",)
    assert parse_language("i-navajo").grandfathered == "i-navajo"
    assert parse_language("X-fr-CH").private_use == "X-fr-CH"
    assert parse_language("es-419").region == "419"


def test_language_regex_is_not_quadratic() -> None:
    hostile = "en" + "-aaaaa" * 20_000 + "-!"
    with pytest.raises(InvalidSyntax):
        validate_language(hostile)


# --- fuzzing: arbitrary text only ever raises InvalidSyntax --------------------------------

_INTERESTING = st.text(
    alphabet=st.sampled_from("abzAZ0279-._:~%/#?@ +=xXTZ\n\u212a\u00e9"), max_size=40
)


@pytest.mark.parametrize("validate", VALIDATORS, ids=lambda f: f.__qualname__)
@given(text=st.one_of(st.text(), _INTERESTING, _INTERESTING.map(lambda s: "at://" + s)))
def test_arbitrary_text_only_raises_invalid_syntax(
    validate: Callable[[str], object], text: str
) -> None:
    with contextlib.suppress(InvalidSyntax):
        validate(text)


@given(st.text())
def test_validators_return_input_unchanged(text: str) -> None:
    for validate in VALIDATORS[:11]:
        with contextlib.suppress(InvalidSyntax):
            assert validate(text) is text
