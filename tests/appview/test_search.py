"""Full-text search of posts and accounts on both engines: words, phrases, exclusions, `from:`,
the lexicon's filters, both sorts, cursors that walk every match in bounded pages, and `%` and
`_` taken as the punctuation they are, not as wildcards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from strata.appview import search
from strata.appview.records import delete_record, index_record
from strata.appview.schema import MIGRATIONS
from strata.appview.search import PostFilters, parse_post_query, search_actors, search_posts
from strata.core.syntax.dates import format_millis
from strata.database import Database, migrate, open_database
from tests.feedgen.firehose import did

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY_MS = 86_400_000
POST = "app.bsky.feed.post"


class Index:
    """An AppView index to write posts, likes and accounts into."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.n = 0

    async def account(
        self, name: str, display_name: str | None = None, status: str = "active"
    ) -> str:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO actor (did, handle, pds, status, indexed_at) VALUES (?, ?, ?, ?, ?)",
                did(name), f"{name}.test", "http://pds.example", status, format_millis(START_MS),
            )  # fmt: skip
            if display_name is not None:
                record = {"displayName": display_name, "createdAt": format_millis(START_MS)}
                await index_record(
                    tx, f"at://{did(name)}/app.bsky.actor.profile/self", "bafyprofile",
                    "app.bsky.actor.profile", record, format_millis(START_MS), set(),
                )  # fmt: skip
        return did(name)

    async def write(self, name: str, collection: str, record: dict[str, Any], day: int = 0) -> str:
        self.n += 1
        at = format_millis(START_MS + day * DAY_MS + self.n * 1000)
        uri = f"at://{did(name)}/{collection}/3k{self.n:011d}"
        async with self.db.transaction() as tx:
            await index_record(
                tx, uri, f"bafy{self.n}", collection, {"createdAt": at, **record}, at, set()
            )
        return uri

    async def post(self, name: str, text: str, day: int = 0, langs: list[str] | None = None) -> str:
        record: dict[str, Any] = {"text": text}
        if langs is not None:
            record["langs"] = langs
        return await self.write(name, POST, record, day)


@contextlib.asynccontextmanager
async def opened(tmp_path: Path, database_url: str | None) -> AsyncIterator[Index]:
    db = await open_database(database_url, tmp_path / "index.sqlite")
    await migrate(db, MIGRATIONS, "appview")
    try:
        yield Index(db)
    finally:
        await db.close()


async def find(
    index: Index, q: str, sort: str = "latest", limit: int = 25, **filters: Any
) -> list[str]:
    uris, _ = await search_posts(
        index.db, parse_post_query(q), PostFilters(**filters), sort, limit, None
    )
    return uris


async def everything(index: Index, q: str, sort: str, limit: int) -> list[list[str]]:
    """Every page of a search, following cursors (at most 50 pages)."""
    pages, cursor = [], None
    for _ in range(50):
        uris, cursor = await search_posts(
            index.db, parse_post_query(q), PostFilters(), sort, limit, cursor
        )
        pages.append(uris)
        if cursor is None:
            return pages
    raise AssertionError("the cursor never ended")


async def test_words_phrases_exclusions_and_punctuation(
    tmp_path: Path, database_url: str | None
) -> None:
    async with opened(tmp_path, database_url) as index:
        await index.account("alice")
        red_fox = await index.post("alice", "The quick red Fox jumps")
        fox_red = await index.post("alice", "a fox, red as the sun")
        percent = await index.post("alice", "I am 100% sure about snake_case")
        thousand = await index.post("alice", "1000 things about snakeXcase")
        accents = await index.post("alice", "Café ÜBER naïve 日本語")

        assert await find(index, "fox") == [fox_red, red_fox]  # newest first
        assert await find(index, "FOX Red") == [fox_red, red_fox]  # every word, any case
        assert await find(index, '"red fox"') == [red_fox]  # a phrase, in order
        assert await find(index, "fox -quick") == [fox_red]
        assert await find(index, 'fox -"red as"') == [red_fox]
        # % and _ are punctuation: "100%" is the word 100, "snake_case" the words snake case.
        assert await find(index, "100%") == [percent]
        assert await find(index, "snake_case") == [percent]
        assert await find(index, "%") == []
        assert await find(index, "_") == []
        assert await find(index, "1%0") == []
        assert thousand not in await find(index, "snake_case")
        # Letters beyond ASCII, folded to lower case.
        assert await find(index, "café über") == [accents]
        assert await find(index, "日本語") == [accents]
        assert await find(index, "cafe") == []
        # Query syntax of either engine is only text.
        for q in ('fox" OR "sun', "fox AND NOT sun", "fox*", "(fox)", "'fox' | sun", "fox:*"):
            assert set(await find(index, q)) <= {red_fox, fox_red}, q
        assert await find(index, "-fox") == []


async def test_filters_and_from(tmp_path: Path, database_url: str | None) -> None:
    async with opened(tmp_path, database_url) as index:
        alice, bob = await index.account("alice"), await index.account("bob")
        await index.account("gone", status="takendown")
        early = await index.post("alice", "news of the day", day=1, langs=["en"])
        middle = await index.post("bob", "news of the day", day=2, langs=["pt-BR"])
        late = await index.post("alice", "news of the day", day=3, langs=["pt", "en"])
        await index.post("gone", "news of the day", day=3)

        assert await find(index, "news") == [late, middle, early]  # no taken-down author
        assert await find(index, "news", author=alice) == [late, early]
        assert await find(index, "news", lang="pt") == [late, middle]
        assert await find(index, "news", lang="en") == [late, early]
        since = search.search_time("2026-01-03", "since")
        assert since == "2026-01-03T00:00:00.000Z"
        assert await find(index, "news", since=since) == [late, middle]
        until = search.search_time("2026-01-03T12:00:00+12:00", "until")
        assert await find(index, "news", until=until) == [early]
        query = parse_post_query("from:bob.test news")
        assert query.author == "bob.test" and query.include == [["news"]]
        assert parse_post_query("from:me -x").author == "me"
        assert await find(index, "news", author=bob) == [middle]
        with pytest.raises(search.BadQuery):
            search.search_time("2026-02-30", "since")


async def test_cursors_walk_every_match_in_bounded_pages(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "CANDIDATES", 4)
    async with opened(tmp_path, database_url) as index:
        alice = await index.account("alice")
        await index.account("bob")
        posts = [
            await index.post(
                "alice" if n % 2 else "bob", f"word {n}", langs=["pt" if n % 3 else "en"]
            )
            for n in range(12)
        ]
        newest_first = posts[::-1]

        pages = await everything(index, "word", "latest", 3)
        assert [u for page in pages for u in page] == newest_first
        assert all(len(page) <= 3 for page in pages)

        async def walk(filters: PostFilters) -> list[list[str]]:
            pages, cursor = [], None
            for _ in range(20):
                page, cursor = await search_posts(
                    index.db, parse_post_query("word"), filters, "latest", 3, cursor
                )
                pages.append(page)
                if cursor is None:
                    return pages
            raise AssertionError("the cursor never ended")

        # A filter that keeps few matches: each page reads at most 4 of them, so some pages
        # come back short, and the cursor still reaches the last match.
        english = await walk(PostFilters(lang="en"))
        assert [u for page in english for u in page] == newest_first[2::3]
        assert any(len(page) < 3 for page in english[:-1])
        # An author's posts are walked on their own: full pages.
        mine = await walk(PostFilters(author=alice))
        assert [u for page in mine for u in page] == [u for u in newest_first if alice in u]
        assert [len(page) for page in mine] == [3, 3, 0]  # the last, empty, page ends it

        # Top: the most liked first, ties newest first, in pages.
        for n, target in enumerate(posts[:3]):
            for _ in range(n + 1):
                await index.write(
                    "alice", "app.bsky.feed.like", {"subject": {"uri": target, "cid": "x"}}
                )
        monkeypatch.setattr(search, "CANDIDATES", 100)
        top = [u for page in await everything(index, "word", "top", 5) for u in page]
        assert top[:3] == [posts[2], posts[1], posts[0]]
        assert sorted(top) == sorted(posts)


async def test_deleted_posts_leave_the_index(tmp_path: Path, database_url: str | None) -> None:
    async with opened(tmp_path, database_url) as index:
        await index.account("alice")
        kept = await index.post("alice", "ephemeral thought")
        removed = await index.post("alice", "ephemeral words")
        async with index.db.transaction() as tx:
            await delete_record(tx, removed, POST, set())
        assert await find(index, "ephemeral") == [kept]
        replaced = await index.write("alice", POST, {"text": "brand new"})
        async with index.db.transaction() as tx:
            await index_record(
                tx,
                replaced,
                "bafynew",
                POST,
                {"text": "edited", "createdAt": "2026-01-05T00:00:00.000Z"},
                "2026-01-05T00:00:00.000Z",
                set(),
            )
        assert await find(index, "brand") == []
        assert await find(index, "edited") == [replaced]


async def test_accounts_by_handle_and_name(tmp_path: Path, database_url: str | None) -> None:
    async with opened(tmp_path, database_url) as index:
        alice = await index.account("alice", "Alice Liddell")
        alicia = await index.account("alicia", "Ali")
        bob = await index.account("bob", "Bob_the %Builder")
        await index.account("allie", "Allie", status="takendown")
        await index.write("bob", "app.bsky.graph.follow", {"subject": alicia})

        assert await search_actors(index.db, "ali", 10, 0) == [alicia, alice]  # followers first
        assert await search_actors(index.db, "alice.test", 10, 0) == [alice]  # the exact handle
        assert await search_actors(index.db, "@alice", 10, 0) == [alice]
        assert await search_actors(index.db, "liddell", 10, 0) == [alice]
        assert await search_actors(index.db, "ali lid", 10, 0) == [alice]
        assert await search_actors(index.db, "builder", 10, 0) == [bob]
        assert await search_actors(index.db, "bob_the", 10, 0) == [bob]
        assert await search_actors(index.db, "%", 10, 0) == []
        assert await search_actors(index.db, "al", 1, 1) == [alice]
        # A new handle and a new name are found at once; the old ones are gone.
        async with index.db.transaction() as tx:
            await tx.execute("UPDATE actor SET handle = 'zed.test' WHERE did = ?", bob)
        assert await search_actors(index.db, "zed", 10, 0) == [bob]
        assert await search_actors(index.db, "bob.test", 10, 0) == []
        async with index.db.transaction() as tx:
            await delete_record(
                tx, f"at://{bob}/app.bsky.actor.profile/self", "app.bsky.actor.profile", set()
            )
        assert await search_actors(index.db, "builder", 10, 0) == []
