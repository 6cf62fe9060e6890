"""A small Strata network of real processes on 127.0.0.1, a steady load through the Python
SDK, and the faults the chaos suite and `bench/chaos.py` inflict on it.

The network: a PLC directory and a mirror of it, two PDSes, two relays following both, two
AppViews reading both relays (in opposite orders), and a feed generator. The PDSes proxy to
both AppViews; the first is reached through a TCP proxy (`tests.chaos.proxy`) that can turn
slow or drop connections. Every service is its own `python -m strata` process, so a fault is
a real SIGKILL, SIGSTOP or a broken connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from atproto import AsyncClient
from atproto_client.exceptions import AtProtocolError

from tests.services import eventually, free_port, rss_kib, strata_argv, wait_healthy

PASSWORD: Final = "chaos-pw-1"
READS: Final = ("timeline", "feed", "profile", "thread")
ROOT: Final = Path(__file__).resolve().parents[2]


@dataclass
class Service:
    """One process of the network, on a fixed port so that it comes back where it was."""

    name: str
    argv: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=log,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        assert self.proc is not None
        wait_healthy(self.url, self.proc, timeout)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no chance to flush or say goodbye."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_kib(self) -> int:
        assert self.proc is not None
        return rss_kib(self.proc.pid)


def strata(command: str, data_dir: Path, port: int, *args: str) -> list[str]:
    """The command line of `strata <command> --dev` on 127.0.0.1:port."""
    return strata_argv(command, data_dir, port, "--dev", *args)


@dataclass
class Account:
    handle: str
    did: str
    pds: str
    token: str
    first_post: str = ""


@dataclass
class Network:
    """The processes, the accounts and the custom feed."""

    root: Path
    services: dict[str, Service] = field(default_factory=dict)
    accounts: list[Account] = field(default_factory=list)
    feed_uri: str = ""
    proxy_port: int = 0
    """Where the fault proxy in front of the first AppView listens."""
    control: int = 0
    """The fault proxy's control port (the `proxy` service's port)."""

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    @property
    def appview_dids(self) -> dict[str, str]:
        return {
            name: f"did:web:localhost%3A{self.services[name].port}"
            for name in ("appview1", "appview2")
        }

    def add(self, name: str, argv: list[str], port: int) -> Service:
        service = Service(name, argv, port, self.root / f"{name}.log")
        self.services[name] = service
        return service

    def stop(self) -> None:
        for service in reversed(self.services.values()):
            service.stop()

    async def proxy_mode(self, mode: str, delay: float = 0.0) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{self.control}/mode", json={"mode": mode, "delay": delay}
            ) as response,
        ):
            assert response.status == 200

    async def proxy_connections(self) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.control}/stats") as response,
        ):
            return int((await response.json())["connections"])


def start_network(root: Path, users: int = 8, max_in_flight: int = 512) -> Network:
    """Start every process and seed the accounts; the caller stops it (`Network.stop`)."""
    root.mkdir(parents=True, exist_ok=True)
    net = Network(root)
    ports = {
        name: free_port()
        for name in (
            "plc",
            "plc-mirror",
            "pds1",
            "pds2",
            "relay1",
            "relay2",
            "appview1",
            "appview2",
            "proxy",
            "feedgen",
        )
    }
    net.control = free_port()
    net.proxy_port = ports["proxy"]
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    dids = {n: f"did:web:localhost%3A{ports[n]}" for n in ("appview1", "appview2")}
    limit = ("--max-in-flight", str(max_in_flight))
    plcs = ("--plc-url", url["plc"], "--plc-url", url["plc-mirror"])

    def add(name: str, command: str, *args: str) -> None:
        net.add(name, strata(command, root / name, ports[name], *limit, *args), ports[name])

    add("plc", "plc")
    add("plc-mirror", "plc", "--mirror-of", url["plc"])
    for pds in ("pds1", "pds2"):
        add(
            pds,
            "pds",
            *plcs,
            "--hostname",
            "localhost",
            "--appview",
            f"{url['proxy']}#{dids['appview1']}",
            "--appview",
            f"{url['appview2']}#{dids['appview2']}",
            "--relay",
            url["relay1"],
            "--relay",
            url["relay2"],
            "--rate-limit-bypass-ip",
            "127.0.0.1",
        )
    for relay in ("relay1", "relay2"):
        add(relay, "relay", *plcs, "--crawl", url["pds1"], "--crawl", url["pds2"])
    for appview, first, second in (
        ("appview1", "relay1", "relay2"),
        ("appview2", "relay2", "relay1"),
    ):
        add(
            appview,
            "appview",
            *plcs,
            "--hostname",
            "localhost",
            "--relay",
            url[first],
            "--relay",
            url[second],
        )
    net.add(
        "proxy",
        [
            sys.executable,
            "-m",
            "tests.chaos.proxy",
            "--listen",
            str(ports["proxy"]),
            "--target",
            str(ports["appview1"]),
            "--control",
            str(net.control),
        ],
        net.control,
    )
    try:
        for group in (
            ("plc", "plc-mirror", "pds1", "pds2", "proxy"),
            ("relay1", "relay2"),
            ("appview1", "appview2"),
        ):
            for name in group:
                net[name].start()
            for name in group:
                net[name].wait_healthy()
        asyncio.run(_seed(net, users))
        add(
            "feedgen",
            "feedgen",
            *plcs,
            "--relay",
            url["relay1"],
            "--relay",
            url["relay2"],
            "--public-url",
            f"http://localhost:{ports['feedgen']}",
            "--publisher",
            net.accounts[0].did,
        )
        net["feedgen"].start()
        net["feedgen"].wait_healthy()
        asyncio.run(_publish_feed(net))
    except BaseException:
        net.stop()
        raise
    return net


@contextlib.contextmanager
def running_network(root: Path, users: int = 8, max_in_flight: int = 512) -> Iterator[Network]:
    net = start_network(root, users, max_in_flight)
    try:
        yield net
    finally:
        net.stop()


async def xrpc(
    http: aiohttp.ClientSession,
    base: str,
    nsid: str,
    token: str | None = None,
    body: dict[str, Any] | None = None,
    **params: Any,
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    method = "POST" if body is not None else "GET"
    async with http.request(
        method, f"{base}/xrpc/{nsid}", json=body, params=params or None, headers=headers
    ) as response:
        answer = await response.json(content_type=None)
        if response.status != 200:
            raise RuntimeError(f"{nsid} at {base}: {response.status} {answer}")
        return answer


async def _post(http: aiohttp.ClientSession, account: Account, text: str) -> dict[str, Any]:
    record = {"$type": "app.bsky.feed.post", "text": text, "createdAt": _now()}
    return dict(
        await xrpc(
            http,
            account.pds,
            "com.atproto.repo.createRecord",
            account.token,
            {"repo": account.did, "collection": "app.bsky.feed.post", "record": record},
        )
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


async def relays_follow(net: Network, hosts: int, http: aiohttp.ClientSession) -> None:
    """Wait until both relays follow `hosts` PDSes. A relay follows a new host from its live
    tail, so accounts created before that would be missed."""

    async def connected() -> bool:
        for relay in ("relay1", "relay2"):
            url = net[relay].url
            if await metric_sum(url, "strata_relay_upstreams_connected", http) < hosts:
                return False
        return True

    await eventually(connected, 30, f"both relays follow {hosts} PDSes")


async def seed_accounts(
    net: Network, http: aiohttp.ClientSession, pdses: list[str], prefix: str, count: int
) -> list[Account]:
    """`count` accounts spread over `pdses`, each following every account of the network and
    the new ones, with two posts each; returns once both AppViews have indexed them."""
    made: list[Account] = []
    for i in range(count):
        pds = pdses[i % len(pdses)]
        handle = f"{prefix}{i}.test"
        body = {"handle": handle, "email": f"{handle}@example.test", "password": PASSWORD}
        answer = await xrpc(http, pds, "com.atproto.server.createAccount", body=body)
        made.append(Account(handle, answer["did"], pds, answer["accessJwt"]))
    everyone = net.accounts + made
    for account in made:
        for other in everyone:
            if other is not account:
                follow = {"$type": "app.bsky.graph.follow", "subject": other.did,
                          "createdAt": _now()}  # fmt: skip
                await xrpc(http, account.pds, "com.atproto.repo.createRecord", account.token,
                            {"repo": account.did, "collection": "app.bsky.graph.follow",
                             "record": follow})  # fmt: skip
        account.first_post = (await _post(http, account, f"hello from {account.handle}"))["uri"]
        await _post(http, account, f"second post by {account.handle}")
    await eventually(lambda: _indexed(net, made, len(everyone) - 1, http), 90, "indexing the seed")
    return made


async def _seed(net: Network, users: int) -> None:
    async with aiohttp.ClientSession() as http:
        await relays_follow(net, 2, http)
        pdses = [net["pds1"].url, net["pds2"].url]
        net.accounts.extend(await seed_accounts(net, http, pdses, "user", users))


async def _indexed(
    net: Network, accounts: list[Account], follows: int, http: aiohttp.ClientSession
) -> bool:
    dids = [a.did for a in accounts]
    for name in ("appview1", "appview2"):
        try:
            answer = await xrpc(http, net[name].url, "app.bsky.actor.getProfiles", actors=dids)
        except (RuntimeError, aiohttp.ClientError):
            return False
        profiles = answer["profiles"]
        if len(profiles) != len(dids) or any(
            p.get("postsCount", 0) < 2 or p.get("followsCount", 0) < follows for p in profiles
        ):
            return False
    return True


async def _publish_feed(net: Network) -> None:
    publisher = net.accounts[0]
    feedgen_did = f"did:web:localhost%3A{net['feedgen'].port}"
    async with aiohttp.ClientSession() as http:
        record = {
            "$type": "app.bsky.feed.generator",
            "did": feedgen_did,
            "displayName": "Hot",
            "createdAt": _now(),
        }
        answer = await xrpc(
            http,
            publisher.pds,
            "com.atproto.repo.createRecord",
            publisher.token,
            {
                "repo": publisher.did,
                "rkey": "hot",
                "collection": "app.bsky.feed.generator",
                "record": record,
            },
        )
        net.feed_uri = answer["uri"]

        async def served() -> bool:
            for name in ("appview1", "appview2"):
                try:
                    await xrpc(
                        http, net[name].url, "app.bsky.feed.getFeedGenerator", feed=net.feed_uri
                    )
                except (RuntimeError, aiohttp.ClientError):
                    return False
            try:
                await xrpc(
                    http, publisher.pds, "app.bsky.feed.getFeed", publisher.token, feed=net.feed_uri
                )
            except (RuntimeError, aiohttp.ClientError):
                return False
            return True

        await eventually(served, 60, "the custom feed is served")


class RecordingClient(AsyncClient):
    """The SDK's client, keeping the headers of its last answer (to see stale markers)."""

    last_headers: dict[str, str]

    async def _invoke(self, invoke_type: Any, **kwargs: Any) -> Any:
        response = await super()._invoke(invoke_type, **kwargs)
        self.last_headers = {k.lower(): v for k, v in response.headers.items()}
        return response


@dataclass
class Sample:
    at: float
    pds: str
    kind: str
    outcome: str  # ok, stale, fail
    stale_seconds: float
    latency: float
    error: str = ""


@dataclass
class Write:
    at: float
    account: Account
    uri: str
    latency: float


@dataclass
class Load:
    """Reads (timeline, feed, profile, thread) and posts through the SDK at a steady rate."""

    net: Network
    accounts: list[Account]
    reads_per_second: float = 16.0
    writes_per_second: float = 2.0
    samples: list[Sample] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    write_failures: list[tuple[float, str]] = field(default_factory=list)
    clients: dict[str, RecordingClient] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def login(self) -> None:
        for account in self.accounts:
            client = RecordingClient(base_url=account.pds)
            await client.login(account.handle, PASSWORD)
            self.clients[account.did] = client

    def token(self, account: Account) -> str:
        """The account's current access token, as the SDK holds it."""
        session = self.clients[account.did]._session
        assert session is not None
        return str(session.access_jwt)

    def start(self) -> None:
        per_user = self.reads_per_second / len(self.accounts)
        for i, account in enumerate(self.accounts):
            self._tasks.append(asyncio.create_task(self._reader(account, per_user, i)))
        self._tasks.append(asyncio.create_task(self._writer()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def close(self) -> None:
        """Close the SDK clients' connections."""
        for client in self.clients.values():
            await client.request.close()

    async def _read(self, account: Account, kind: str) -> None:
        client = self.clients[account.did]
        client.last_headers = {}
        if kind == "timeline":
            await client.get_timeline(limit=20)
        elif kind == "feed":
            await client.app.bsky.feed.get_feed({"feed": self.net.feed_uri, "limit": 20})
        elif kind == "profile":
            other = self.accounts[(self.accounts.index(account) + 1) % len(self.accounts)]
            await client.get_profile(other.did)
        else:
            await client.get_post_thread(account.first_post)

    async def _reader(self, account: Account, rate: float, offset: int) -> None:
        interval = 1.0 / rate
        turn = offset
        await asyncio.sleep(random.uniform(0, interval))
        while True:
            kind = READS[turn % len(READS)]
            turn += 1
            started = time.monotonic()
            try:
                async with asyncio.timeout(10):
                    await self._read(account, kind)
                stale = self.clients[account.did].last_headers.get("strata-stale-seconds")
                outcome, age = ("stale", float(stale)) if stale is not None else ("ok", 0.0)
                error = ""
            except (AtProtocolError, TimeoutError, OSError) as exc:
                outcome, age, error = "fail", 0.0, f"{type(exc).__name__}: {exc}"[:300]
            latency = time.monotonic() - started
            self.samples.append(Sample(started, account.pds, kind, outcome, age, latency, error))
            await asyncio.sleep(max(0.0, interval - latency))

    async def _writer(self) -> None:
        interval = 1.0 / self.writes_per_second
        n = 0
        while True:
            account = self.accounts[n % len(self.accounts)]
            n += 1
            started = time.monotonic()
            try:
                async with asyncio.timeout(10):
                    created = await self.clients[account.did].com.atproto.repo.create_record(
                        {
                            "repo": account.did,
                            "collection": "app.bsky.feed.post",
                            "record": {
                                "$type": "app.bsky.feed.post",
                                "text": f"chaos post {n}",
                                "createdAt": _now(),
                            },
                        }
                    )
                self.writes.append(Write(started, account, created.uri, time.monotonic() - started))
            except (AtProtocolError, TimeoutError, OSError) as exc:
                # Not acknowledged: the client knows it did not happen (its PDS is down).
                self.write_failures.append((started, f"{type(exc).__name__}: {exc}"[:200]))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def caught_up(net: Network, writes: list[Write], http: aiohttp.ClientSession) -> bool:
    """Every acknowledged write is in its PDS, in both AppViews, and both relays hold every
    account's latest commit."""
    uris = [w.uri for w in writes]
    for name in ("appview1", "appview2"):
        for i in range(0, len(uris), 25):
            try:
                answer = await xrpc(
                    http, net[name].url, "app.bsky.feed.getPosts", uris=uris[i : i + 25]
                )
            except (RuntimeError, aiohttp.ClientError, OSError):
                return False
            if len(answer["posts"]) != len(uris[i : i + 25]):
                return False
    for account in net.accounts:
        try:
            head = await xrpc(
                http, account.pds, "com.atproto.sync.getLatestCommit", did=account.did
            )
            for relay in ("relay1", "relay2"):
                seen = await xrpc(
                    http, net[relay].url, "com.atproto.sync.getLatestCommit", did=account.did
                )
                if seen["rev"] != head["rev"]:
                    return False
        except (RuntimeError, aiohttp.ClientError, OSError):
            return False
    return True


async def lost_writes(net: Network, writes: list[Write], http: aiohttp.ClientSession) -> int:
    """Acknowledged writes that their PDS no longer has."""
    lost = 0
    for write in writes:
        _, _, did, collection, rkey = write.uri.split("/")
        try:
            await xrpc(
                http,
                write.account.pds,
                "com.atproto.repo.getRecord",
                repo=did,
                collection=collection,
                rkey=rkey,
            )
        except RuntimeError:
            lost += 1
    return lost


async def metric_sum(url: str, name: str, http: aiohttp.ClientSession) -> float:
    """The sum of a Prometheus metric's samples at `url/metrics` (0 when unreachable)."""
    try:
        async with http.get(f"{url}/metrics", timeout=aiohttp.ClientTimeout(total=3)) as response:
            text = await response.text()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def flood(url: str, token: str, rate: float, seconds: float) -> subprocess.Popen[bytes]:
    """Start `tests.chaos.flood` against `url`; read its JSON result from stdout when done."""
    argv = [
        sys.executable,
        "-m",
        "tests.chaos.flood",
        "--url",
        url,
        "--token",
        token,
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT)


def flood_result(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=60)
    result: dict[str, Any] = json.loads(out)
    return result
