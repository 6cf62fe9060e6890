"""Views of lists and starter packs (`app.bsky.graph.defs`), built on the hydration of
`strata.appview.views`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import orjson

from strata.appview.suggestions import known_followers
from strata.appview.views import FeedViews
from strata.database import Row

SAMPLE_SIZE: Final = 12
"""Members a starter pack's view shows."""
PACK_FEEDS: Final = 3
"""Feeds a starter pack's view shows."""
KNOWN_SHOWN: Final = 5
"""Known followers a profile's viewer state names (it counts them all)."""


class GraphViews(FeedViews):
    """Views of lists, their members and starter packs, for one request."""

    async def lists(self, uris: Iterable[str]) -> dict[str, dict[str, Any]]:
        """listViews of indexed lists whose creator is active."""
        wanted = list(uris)
        entries, _, _ = await self._resolve(
            self._lists(wanted), self._list_viewer(wanted), self._labels(wanted)
        )
        creators = await self.profiles([e.creator for e in entries.values()], "view")
        views: dict[str, dict[str, Any]] = {}
        for uri, entry in entries.items():
            if entry.creator not in creators:
                continue
            view = self._list_basic(entry)
            view["creator"] = creators[entry.creator]
            for key in ("description", "descriptionFacets"):
                if key in entry.record:
                    view[key] = entry.record[key]
            views[uri] = view
        return views

    async def known_followers(self, profiles: dict[str, dict[str, Any]]) -> None:
        """Add to each profile's viewer state the followers of the account whom the viewer
        follows (`knownFollowers`: how many, and the first few), as the reference's
        suggestions show them ("followed by ...")."""
        if self.viewer is None or not profiles:
            return
        known = await known_followers(self.db, self.viewer, list(profiles))
        shown = await self.profiles(list({d for dids in known.values() for d in dids}))
        rel = self._relations
        for did, view in profiles.items():
            followers = [shown[d] for d in known[did] if d in shown and not rel.blocks(d)]
            view["viewer"]["knownFollowers"] = {
                "count": len(known[did]),
                "followers": followers[:KNOWN_SHOWN],
            }

    async def members(self, rows: Sequence[Row]) -> list[dict[str, Any]]:
        """listItemViews of `(list item uri, subject)` rows whose subject is active."""
        profiles = await self.profiles([r[1] for r in rows], "view")
        return [{"uri": r[0], "subject": profiles[r[1]]} for r in rows if r[1] in profiles]

    async def starter_packs(
        self, uris: Iterable[str], detailed: bool = False
    ) -> dict[str, dict[str, Any]]:
        """starterPackViewBasic (or starterPackView, `detailed`) of indexed starter packs whose
        creator is active."""
        rows = await self.db.fetch(
            "SELECT s.uri, r.cid, s.creator, r.json, r.indexed_at, s.list_uri FROM starter_pack s "
            "JOIN record r ON r.uri = s.uri WHERE s.uri = ANY(?)",
            list(dict.fromkeys(uris)),
        )
        creators = await self.profiles([r[2] for r in rows])
        lists = await self.list_basics(r[5] for r in rows)
        await self._resolve(self._labels(r[0] for r in rows))
        records = {r[0]: orjson.loads(r[3]) for r in rows}
        samples: dict[str, list[dict[str, Any]]] = {}
        feeds: dict[str, dict[str, Any]] = {}
        if detailed:
            for row in rows:
                members = await self.db.fetch(
                    "SELECT uri, subject FROM list_item WHERE list_uri = ? "
                    "ORDER BY sort_at DESC, uri DESC LIMIT ?",
                    row[5], SAMPLE_SIZE,
                )  # fmt: skip
                samples[row[0]] = await self.members(members)
            wanted = [
                feed["uri"]
                for record in records.values()
                for feed in (record.get("feeds") or [])[:PACK_FEEDS]
                if isinstance(feed, dict) and isinstance(feed.get("uri"), str)
            ]
            feeds = await self.generators(wanted)
        views: dict[str, dict[str, Any]] = {}
        for uri, cid, creator, _raw, indexed_at, list_uri in rows:
            if creator not in creators:
                continue
            record = records[uri]
            view: dict[str, Any] = {
                "uri": uri,
                "cid": cid,
                "record": record,
                "creator": creators[creator],
                "labels": self._labels_on(uri),
                "indexedAt": indexed_at,
            }
            if detailed:
                if list_uri in lists:
                    view["list"] = lists[list_uri]
                view["listItemsSample"] = samples[uri]
                view["feeds"] = [
                    feeds[f["uri"]]
                    for f in (record.get("feeds") or [])[:PACK_FEEDS]
                    if isinstance(f, dict) and f.get("uri") in feeds
                ]
            elif list_uri in lists:
                view["listItemCount"] = lists[list_uri]["listItemCount"]
            views[uri] = view
        return views
