"""The web client in headless Chromium against `strata up --demo`: sign in, post, follow, open
a thread, switch feeds, and a stale notice when the AppView is killed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from strata.node.demo import DEMO_PASSWORD, png
from tests.node.running import Node, xrpc

try:
    from playwright.sync_api import expect
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)


def did_of(node: Node, handle: str) -> str:
    return str(xrpc(node.url("pds"), "com.atproto.identity.resolveHandle", handle=handle)["did"])


def records(node: Node, handle: str, collection: str) -> list[dict[str, Any]]:
    """The account's records of `collection`, straight from its PDS."""
    answer = xrpc(
        node.url("pds"),
        "com.atproto.repo.listRecords",
        repo=did_of(node, handle),
        collection=collection,
        limit=100,
    )
    return list(answer["records"])


POST = "app.bsky.feed.post"


def post_saying(page: Any, text: str) -> Any:
    """The posts whose own text (not a quoted post's) contains `text`."""
    return page.locator("article.post").filter(has=page.locator("p.text", has_text=text))


def home(page: Any, node: Node) -> None:
    """The timeline, read anew (going to the page's own address would change nothing)."""
    url = f"{node.url('web')}/#/"
    if page.url == url:
        page.reload()
    else:
        page.goto(url)
    page.wait_for_selector("article.post")


def home_until_shown(page: Any, node: Node, text: str, seconds: float = 30) -> None:
    """Reloads the timeline until a post saying `text` is on it: the AppView indexes a new
    post a moment after the PDS took it."""
    deadline = time.monotonic() + seconds
    while True:
        home(page, node)
        if post_saying(page, text).count():
            return
        assert time.monotonic() < deadline, f"no post saying {text!r} reached the timeline"
        page.wait_for_timeout(500)


def test_sign_in_shows_the_timeline(page: Any, node: Node, screenshots: Path | None) -> None:
    home(page, node)
    expect(page.locator("article.post").first).to_be_visible()
    expect(page.get_by_text("Sunset from the balcony.").first).to_be_visible()
    expect(page.locator(".images img").first).to_be_visible()
    # Signed in as alice: the Profile link leads to her profile.
    page.click("a[data-nav=profile]")
    expect(page.locator(".profile h2")).to_have_text("Alice")
    if screenshots is not None:
        home(page, node)
        page.screenshot(path=str(screenshots / "timeline.png"))


def test_wrong_password_says_so(browser: Any, node: Node) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(node.url("web"))
        page.fill("#login-identifier", "alice.test")
        page.fill("#login-password", "not her password")
        page.click("form.login button[type=submit]")
        expect(page.locator("form.login .error")).to_contain_text("Invalid identifier or password")
    finally:
        context.close()


def test_a_new_post_appears_in_the_timeline_with_its_facets(page: Any, node: Node) -> None:
    home(page, node)
    text = f"Hello @bob.test, see https://example.com/strata ({time.time_ns()}) ünïcode"
    page.click("#compose-button")
    page.fill("#compose-text", text)
    page.click("#compose-submit")
    post = post_saying(page, text)
    expect(post.first).to_be_visible(timeout=30_000)
    expect(post.first.locator("a", has_text="@bob.test")).to_have_attribute(
        "href", f"#/profile/{did_of(node, 'bob.test')}"
    )
    record = next(
        r["value"] for r in records(node, "alice.test", "app.bsky.feed.post")
        if r["value"]["text"] == text
    )  # fmt: skip
    encoded = text.encode()
    spans = {
        encoded[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(): f["features"][0]
        for f in record["facets"]
    }
    assert spans["@bob.test"]["did"] == did_of(node, "bob.test")
    assert spans["https://example.com/strata"]["uri"] == "https://example.com/strata"


def test_a_quote_with_an_image(page: Any, node: Node, tmp_path: Path) -> None:
    picture = tmp_path / "square.png"
    picture.write_bytes(png(32, 32, lambda x, y: (x * 8, y * 8, 200)))
    home(page, node)
    quoted = post_saying(page, "Coffee, then relay maintenance").first
    quoted.get_by_role("button", name="Quote").click()
    expect(page.locator("#compose-title")).to_have_text("Quote post")
    text = f"Quoting with a picture ({time.time_ns()})"
    page.fill("#compose-text", text)
    page.set_input_files("#compose-image", str(picture))
    page.fill("#compose-alt", "A blue square")
    page.click("#compose-submit")
    post = post_saying(page, text).first
    expect(post).to_be_visible(timeout=30_000)
    expect(post.locator(".images img")).to_have_attribute("alt", "A blue square")
    expect(post.locator(".quote")).to_contain_text("Coffee, then relay maintenance")
    record = next(
        r["value"] for r in records(node, "alice.test", "app.bsky.feed.post")
        if r["value"]["text"] == text
    )  # fmt: skip
    assert record["embed"]["$type"] == "app.bsky.embed.recordWithMedia"


def test_a_thread_opens_and_takes_a_reply(page: Any, node: Node) -> None:
    home(page, node)
    post_saying(page, "welcome! My relay follows").first.locator("p.text").click()
    focus = page.locator("article.post.focus")
    expect(focus).to_contain_text("welcome! My relay follows your PDS now.")
    expect(page.locator("article.post.reply").first).to_contain_text("Two relays, two AppViews")
    reply = f"A reply from the browser ({time.time_ns()})"
    focus.get_by_role("button", name="Reply").click()
    expect(page.locator("#compose-title")).to_have_text("Reply")
    page.fill("#compose-text", reply)
    page.click("#compose-submit")
    expect(page.locator("article.post.reply", has_text=reply)).to_be_visible(timeout=30_000)


def test_like_and_repost_toggle(page: Any, node: Node) -> None:
    home(page, node)
    post = post_saying(page, "Coffee, then relay maintenance").first
    like = post.locator("button.like")
    expect(like).to_have_attribute("aria-pressed", "false")
    like.click()
    expect(like).to_have_attribute("aria-pressed", "true")
    expect(like).to_have_text("Like 1")
    repost = post.locator("button.repost")
    repost.click()
    expect(repost).to_have_attribute("aria-pressed", "true")
    subjects = [
        r["value"]["subject"]["uri"] for r in records(node, "alice.test", "app.bsky.feed.like")
    ]
    coffee = next(
        r["uri"] for r in records(node, "bob.test", "app.bsky.feed.post")
        if r["value"]["text"].startswith("Coffee")
    )  # fmt: skip
    assert coffee in subjects
    like.click()
    expect(like).to_have_attribute("aria-pressed", "false")


def test_follow_and_block_from_a_profile(page: Any, node: Node) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "strata", "account", "create", "--pds", node.url("pds"),
            "--handle", "erin.test", "--password", "erin-password",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    erin = did_of(node, "erin.test")
    page.goto(f"{node.url('web')}/#/profile/erin.test")
    follow = page.get_by_role("button", name="Follow", exact=True)
    expect(follow).to_be_visible(timeout=30_000)
    follow.click()
    expect(page.get_by_role("button", name="Unfollow")).to_be_visible()
    follows = records(node, "alice.test", "app.bsky.graph.follow")
    assert erin in [r["value"]["subject"] for r in follows]
    page.get_by_role("button", name="Block", exact=True).click()
    expect(page.get_by_role("button", name="Unblock")).to_be_visible()
    blocks = records(node, "alice.test", "app.bsky.graph.block")
    assert erin in [r["value"]["subject"] for r in blocks]
    page.get_by_role("button", name="Unblock").click()
    expect(page.get_by_role("button", name="Block", exact=True)).to_be_visible()
    assert erin not in [
        r["value"]["subject"] for r in records(node, "alice.test", "app.bsky.graph.block")
    ]


def test_switching_feeds(page: Any, node: Node) -> None:
    home(page, node)
    hot = page.get_by_role("tab", name="What's Hot")
    with page.expect_response(lambda r: "app.bsky.feed.getFeed?" in r.url) as answer:
        hot.click()
    assert answer.value.status == 200
    assert "feed.generator%2Fhot" in answer.value.url
    expect(hot).to_have_attribute("aria-selected", "true")
    # Ranked by likes and reposts, not by time: the demo's most liked post comes before a
    # newer one nobody liked.
    expect(post_saying(page, "This one deserves a quote.")).to_be_visible()
    texts = page.locator("article.post p.text").all_inner_texts()
    liked = texts.index("Hello from my own node! Everything here runs locally.")
    assert liked < texts.index("This one deserves a quote.")
    with page.expect_response(lambda r: "app.bsky.feed.getFeed?" in r.url) as answer:
        page.get_by_role("tab", name="Follows (feed)").click()
    assert answer.value.status == 200
    expect(page.locator("article.post").first).to_be_visible()
    page.get_by_role("tab", name="Following", exact=True).click()
    expect(page.get_by_role("tab", name="Following", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )


def test_notifications(page: Any, node: Node) -> None:
    page.goto(f"{node.url('web')}/#/notifications")
    expect(page.locator(".notifications li", has_text="liked your post").first).to_be_visible()
    expect(page.locator(".notifications li", has_text="followed you").first).to_be_visible()


def test_keyboard_moves_between_posts(page: Any, node: Node) -> None:
    home(page, node)
    page.locator("body").press("j")
    first = page.locator("article.post").first
    expect(first).to_be_focused()
    page.keyboard.press("j")
    expect(page.locator("article.post").nth(1)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("article.post.focus")).to_be_visible()


def test_sign_in_with_oauth_and_post(browser: Any, node: Node) -> None:
    """From localhost the client moves to 127.0.0.1 (a loopback client's redirect), the
    password is typed on the PDS's own page, and the DPoP-bound token posts."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{node.url('web')}/#/login")
        page.fill("#login-identifier", "carol.test")
        page.click("#login-oauth")
        expect(page.locator("main h1")).to_contain_text("Sign in to", timeout=30_000)
        assert "/oauth/authorize" in page.url
        expect(page.locator("#identifier")).to_have_value("carol.test")
        page.fill("#password", DEMO_PASSWORD)
        page.click("button[value=allow]")
        expect(page.locator("article.post").first).to_be_visible(timeout=30_000)
        assert page.url.startswith("http://127.0.0.1:")
        assert "code=" not in page.url
        text = f"Posted with an OAuth token ({time.time_ns()})"
        page.click("#compose-button")
        page.fill("#compose-text", text)
        page.click("#compose-submit")
        expect(post_saying(page, text).first).to_be_visible(timeout=30_000)
        assert text in [r["value"]["text"] for r in records(node, "carol.test", POST)]
        page.click("#logout")
        expect(page.locator("#login-oauth")).to_be_visible()
    finally:
        context.close()


def test_providers_page(page: Any, node: Node, screenshots: Path | None) -> None:
    # A custom feed read through the AppView puts the feed generator on the list.
    home(page, node)
    page.get_by_role("tab", name="What's Hot").click()
    page.wait_for_selector("article.post")
    page.goto(f"{node.url('web')}/#/providers")
    for kind, url in (
        ("directory", node.url("plc")),
        ("appview", node.url("appview")),
        ("relay", node.url("relay")),
        ("feedgen", node.url("feedgen")),
    ):
        section = page.locator(f"section[data-kind={kind}]")
        expect(section.locator(".provider", has_text=url).first).to_contain_text("healthy")
        expect(section.locator(".pill", has_text="in use").first).to_be_visible()
    if screenshots is not None:
        page.screenshot(path=str(screenshots / "providers.png"), full_page=True)


def test_dashboard(page: Any, node: Node, screenshots: Path | None) -> None:
    page.goto(f"{node.url('web')}/#/dashboard")
    for service in ("plc", "pds", "relay", "appview", "feedgen"):
        row = page.locator(f"tr[data-service={service}]")
        expect(row.locator("td").first).to_have_text("ok")
    expect(page.locator(".breakers li").first).to_contain_text("closed")
    if screenshots is not None:
        # Some reads over a while, so that the charts have something to draw.
        for i in range(40):
            for _ in range(i % 7):
                xrpc(node.url("appview"), "app.bsky.actor.getProfile", actor="alice.test")
                xrpc(node.url("pds"), "com.atproto.server.describeServer")
            page.wait_for_timeout(500)
        page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)


def post_as_bob(node: Node, text: str, **fields: Any) -> str:
    """A new post by the demo's bob, straight to his PDS; its at:// URI."""

    def call(nsid: str, body: dict[str, Any], token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"{node.url('pds')}/xrpc/{nsid}", json.dumps(body).encode(), headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    session = call(
        "com.atproto.server.createSession",
        {"identifier": "bob.test", "password": DEMO_PASSWORD},
    )
    record = {
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **fields,
    }
    created = call(
        "com.atproto.repo.createRecord",
        {"repo": session["did"], "collection": "app.bsky.feed.post", "record": record},
        session["accessJwt"],
    )
    return str(created["uri"])


def label_from_the_dashboard(page: Any, node: Node, uri: str, value: str) -> None:
    secrets = json.loads((node.data_dir / "labeler" / "secrets.json").read_text())
    page.goto(f"{node.url('web')}/#/dashboard")
    page.fill("#label-uri", uri)
    page.fill("#label-val", value)
    page.fill("#label-password", secrets["admin_password"])
    page.get_by_role("button", name="Label", exact=True).click()
    expect(page.locator(".label-form [role=status]")).to_have_text(f"Labeled {uri}: {value}")


def test_labels_from_the_node_labeler_warn_and_hide(page: Any, node: Node) -> None:
    warned = post_as_bob(node, "Spoilers for the season finale ahead.")
    hidden = post_as_bob(node, "Buy followers cheap, click here.")
    home_until_shown(page, node, "Buy followers cheap")
    label_from_the_dashboard(page, node, warned, "!warn")
    label_from_the_dashboard(page, node, hidden, "!hide")
    # The AppView takes the labels from the labeler's stream; the timeline then shows the first
    # post behind a warning and leaves the second out.
    deadline = time.monotonic() + 30
    while True:
        home(page, node)
        warning = page.locator(f"article.post[data-uri='{warned}'] details.label-warning")
        if (
            warning.count()
            and page.locator(f"article.post.hidden-post[data-uri='{hidden}']").count()
        ):
            break
        assert time.monotonic() < deadline, "the labels did not reach the timeline"
        page.wait_for_timeout(500)
    expect(warning.locator("summary")).to_have_text("Content warning: !warn")
    text = warning.locator("p.text")
    expect(text).to_be_hidden()
    warning.locator("summary").click()
    expect(text).to_have_text("Spoilers for the season finale ahead.")
    expect(post_saying(page, "Buy followers cheap")).to_have_count(0)


def test_links_that_would_run_script_are_not_links(page: Any, node: Node) -> None:
    text = "A card and a link that both say javascript:"
    embed = {
        "$type": "app.bsky.embed.external",
        "external": {"uri": "javascript:alert(1)", "title": "Free prize", "description": ""},
    }
    facet = {
        "index": {"byteStart": 0, "byteEnd": 6},
        "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "javascript:alert(2)"}],
    }
    post_as_bob(node, text, embed=embed, facets=[facet])
    home_until_shown(page, node, text)
    post = post_saying(page, text)
    expect(post.locator("a.external")).to_contain_text("Free prize")
    assert post.locator("a.external").get_attribute("href") is None
    assert post.locator("p.text a").count() == 0


def test_mute_from_a_profile_and_unmute_on_the_moderation_page(page: Any, node: Node) -> None:
    page.goto(f"{node.url('web')}/#/profile/dan.test")
    page.get_by_role("button", name="Mute", exact=True).click()
    expect(page.get_by_role("button", name="Unmute", exact=True)).to_be_visible()
    page.goto(f"{node.url('web')}/#/moderation")
    muted = page.locator("section", has_text="Muted accounts").locator("li", has_text="Dan")
    expect(muted).to_be_visible()
    muted.get_by_role("button", name="Unmute").click()
    expect(page.get_by_text("You mute nobody.")).to_be_visible()
    page.fill("#list-name", "Spammers")
    page.select_option("#list-purpose", "app.bsky.graph.defs#modlist")
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_role("status")).to_contain_text('List "Spammers" created')
    lists = records(node, "alice.test", "app.bsky.graph.list")
    assert [r["value"]["purpose"] for r in lists if r["value"]["name"] == "Spammers"] == [
        "app.bsky.graph.defs#modlist"
    ]


@contextlib.contextmanager
def port_held(port: int) -> Iterator[None]:
    """Listen on the port and drop every connection: the AppView stays dead, because its
    restarted process cannot bind the port, until the block ends."""
    server = socket.socket()
    # Past the killed process's connections in TIME_WAIT; a listener still keeps every other
    # socket off the port.
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.bind(("127.0.0.1", port))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    server.listen(64)
    server.settimeout(0.2)
    stop = threading.Event()

    def drop() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                connection, _ = server.accept()
                connection.close()

    thread = threading.Thread(target=drop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_stale_notice_when_the_appview_is_killed(page: Any, node: Node) -> None:
    home(page, node)
    expect(page.locator("#notice")).to_be_hidden()
    (pid,) = node.pids("appview")
    os.kill(pid, signal.SIGKILL)
    with port_held(node.config.ports["appview"]):
        page.reload()
        notice = page.locator("#notice")
        expect(notice).to_be_visible(timeout=30_000)
        expect(notice).to_contain_text("Showing your feed from")
        expect(notice).to_contain_text("the AppView is unreachable")
        expect(page.locator("article.post").first).to_be_visible()
    # The supervisor brings the AppView back once its port is free again.
    deadline = time.monotonic() + 60
    while True:
        try:
            xrpc(node.url("appview"), "_health")
            break
        except OSError:
            assert time.monotonic() < deadline, "the AppView did not come back"
            time.sleep(0.5)
    assert any("appview exited" in line for line in node.output)
    # Fresh answers again once the PDS's breaker lets a call through to it.
    deadline = time.monotonic() + 30
    while True:
        page.reload()
        page.wait_for_selector("article.post")
        if page.locator("#notice").is_hidden():
            break
        assert time.monotonic() < deadline, "the notice stayed after the AppView came back"
        page.wait_for_timeout(1000)
