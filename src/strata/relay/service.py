"""The relay: its upstreams, the ingest pipeline, the event log, and what an operator changes.

Changes from every upstream gather in the store's batch; a flusher commits it every few
milliseconds (or sooner under load) in one transaction, which also records each host's cursor,
then the batch is published. Old events leave the replay window in the background.

On Postgres several relay processes may share one database: each serves the firehose and the
API from the shared tables, and exactly one ingests (follows the upstream hosts) at a time, the
one holding a session-level advisory lock; its batches commit on that lock's connection, so a
process that lost the lock can commit nothing more. When the ingesting process dies, its
connection closes, another process takes the lock and follows every host again from the cursor
committed with that host's events: nothing is lost or repeated. What a crawl request or an
operator asks of a process that does not ingest is stored as a command, which the ingesting
process carries out and deletes in the transaction that records its effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Final

import aiohttp

from strata.database import Listener, PostgresDatabase, PostgresSession
from strata.identity import IdentityResolver
from strata.net.logs import log_event
from strata.net.public_fetch import guarded_session
from strata.relay.config import HostAddress, RelayConfig, load_admin_password
from strata.relay.events import RelayEvents
from strata.relay.ingest import Ingest
from strata.relay.resync import Resyncer
from strata.relay.store import COMMANDS, Account, Host, RelayStore, prune
from strata.relay.upstream import UpstreamStream

log = logging.getLogger("strata.relay")

FLUSH_INTERVAL: Final = 0.01
FLUSH_AT: Final = 500
"""Events pending after which the writer commits at once instead of waiting for the tick."""
PRUNE_INTERVAL: Final = 60.0
LEADER_INTERVAL: Final = 0.5
"""Seconds between attempts to take the right to ingest, and between checks that it is held."""
COMMAND_POLL: Final = 1.0
"""Seconds between reads of stored commands when no notification came."""
LEADER_LOCK: Final = (0x52454C, 2)
"""The session-level advisory lock (two-key form) of the process that ingests."""
ALL_HOSTS: Final = 10_000_000
TRUSTED_ACCOUNT_LIMIT: Final = 10_000_000
"""A trusted host's account cap, as the reference relay gives it."""
IDENTITY_CONNECTIONS: Final = 100
FETCH_CONNECTIONS: Final = 32
PEER_CONNECTIONS: Final = 8
USER_AGENT: Final = {"User-Agent": "strata-relay"}


def _now_ms() -> int:
    return int(time.time() * 1000)


class Relay:
    """One relay instance over its data directory."""

    def __init__(self, config: RelayConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.admin_password = load_admin_password(data_dir)
        self.hosts: dict[int, Host] = {}
        self.streams: dict[int, UpstreamStream] = {}
        self.leading = False
        """Whether this process ingests (always, on SQLite)."""
        self._session: PostgresSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        sqlite_path = self.data_dir / "relay.sqlite"
        self.store = await RelayStore.open(self.config.database_url, sqlite_path)
        self.store.writer = None
        self.events = RelayEvents(
            self.store, await self.store.last_seq(), self.config.firehose_window_bytes
        )
        self._flushing = asyncio.Lock()
        self._lost = asyncio.Event()
        self._commands = asyncio.Event()
        # One pool per use, so that a use that fills its pool (hundreds of hosts' firehoses, a
        # burst of resyncs) never makes another wait: identity lookups above all. What a host
        # or a crawl request names is reached only at public addresses, and no redirect is
        # followed, unless in development.
        public_only = not self.config.dev
        timeout = aiohttp.ClientTimeout(total=30)
        self.identity_http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=IDENTITY_CONNECTIONS),
            timeout=timeout,
            headers=USER_AGENT,
        )
        self.host_http = guarded_session(
            self.config.host_connections, public_only, timeout, USER_AGENT
        )
        self.fetch_http = guarded_session(FETCH_CONNECTIONS, public_only, timeout, USER_AGENT)
        # Siblings are the operator's own relays, perhaps on a private network.
        self.peer_http = guarded_session(PEER_CONNECTIONS, False, timeout, USER_AGENT)
        # did:web documents and handles are named by strangers, unlike the PLC directories.
        self.web_identity_http = guarded_session(
            IDENTITY_CONNECTIONS, public_only, timeout, USER_AGENT
        )
        self.resolver = IdentityResolver(
            self.identity_http,
            self.config.plc_urls,
            dev=self.config.dev,
            web_session=self.web_identity_http,
        )
        self.ingest = Ingest(
            self.store,
            self.events,
            self.resolver,
            self.hosts,
            self.config.dev,
            on_desync=lambda did: self.resyncer.schedule(did),
        )
        self.resyncer = Resyncer(self.ingest, self.resolver, self.fetch_http, self.flush)
        await self._try_to_lead()
        for url in self.config.crawl:
            await self.add_host(HostAddress.parse(url, self.config.dev), "pds")
        for url in self.config.upstreams:
            await self.add_host(HostAddress.parse(url, self.config.dev), "relay")
        self._tasks = [
            asyncio.create_task(self._flusher(), name="relay flusher"),
            asyncio.create_task(self._pruner(), name="relay pruner"),
            asyncio.create_task(self._leadership(), name="relay leadership"),
            asyncio.create_task(self._commander(), name="relay commands"),
        ]
        if self.store.shared:
            self._tasks.append(asyncio.create_task(self.events.follow(), name="relay tail"))
        log_event(
            log, "relay started", hosts=len(self.hosts), last_seq=self.events.last_seq,
            ingesting=self.leading,
        )  # fmt: skip

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.leading:
            await self._stop_ingesting(commit=True)
        for session in (
            self.identity_http,
            self.web_identity_http,
            self.host_http,
            self.fetch_http,
            self.peer_http,
        ):
            await session.close()
        await self.store.close()

    # Ingesting: in one process at a time

    async def _try_to_lead(self) -> None:
        """Take the right to ingest if no other process holds it, then follow every host."""
        if isinstance(self.store.db, PostgresDatabase):
            if self._session is None or self._session.is_closed():
                self._session = await self.store.db.session()
            if not await self._session.try_lock(LEADER_LOCK):
                return
            self.store.writer = self._session
        else:
            self.store.writer = self.store.db
        self.leading = True
        self._lost.clear()
        # Another process may have ingested since these were read.
        self.store.forget_accounts()
        self.hosts.clear()
        self.hosts.update({h.id: h for h in await self.store.hosts(0, ALL_HOSTS)})
        for host in self.hosts.values():
            self._apply_config(host)
            if host.status != "banned":
                self._subscribe(host)
        await self.flush()
        self._commands.set()
        log_event(log, "ingesting", hosts=len(self.hosts))

    async def _stop_ingesting(self, commit: bool) -> None:
        """Stop following hosts; commit what was accepted (a clean stop) or drop it (the right
        to ingest is lost: the next process to ingest reads it again from the hosts)."""
        for stream in list(self.streams.values()):
            await stream.stop()
        self.streams.clear()
        await self.resyncer.stop()
        if commit:
            try:
                await self.flush()
            except Exception as exc:
                log_event(log, "commit failed", logging.ERROR, error=str(exc) or repr(exc))
        async with self._flushing:
            self.leading = False
            self.store.take_batch()
            self.store.dropped()
            self.store.writer = None
            self.ingest.reset()
        self.hosts.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _leadership(self) -> None:
        while True:
            await asyncio.sleep(LEADER_INTERVAL)
            try:
                if not self.leading:
                    await self._try_to_lead()
                elif self._lost.is_set():
                    raise ConnectionError("a commit failed")
                elif self._session is not None:
                    await self._session.ping()
            except Exception as exc:
                log_event(log, "not ingesting", logging.WARNING, error=str(exc) or repr(exc))
                if self.leading:
                    await self._stop_ingesting(commit=False)
                elif self._session is not None:
                    await self._session.close()
                    self._session = None

    # Commands from processes that do not ingest

    async def _command(self, action: str, subject: str, **args: Any) -> None:
        """Leave a command for the ingesting process."""
        await self.store.add_command(action, subject, json.dumps(args))
        self._commands.set()

    async def _commander(self) -> None:
        listener: Listener | None = None
        try:
            while True:
                if self.store.shared and (listener is None or listener.is_closed()):
                    try:
                        listener = await self.store.listen(COMMANDS, self._commands.set)
                    except Exception as exc:
                        log_event(log, "cannot listen for commands; polling", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(COMMAND_POLL):
                        await self._commands.wait()
                self._commands.clear()
                if self.leading:
                    try:
                        await self._run_commands()
                    except Exception as exc:
                        log_event(log, "command failed", logging.WARNING, error=str(exc))
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def _run_commands(self) -> None:
        for command_id, action, subject, args in await self.store.commands():
            if not self.leading:
                return
            self.store.command_done(command_id)
            arguments = json.loads(args)
            host = await self.host(subject) if action != "takedown" else None
            if action == "follow" and host is not None:
                self.hosts.setdefault(host.id, host)
                self._apply_config(host)
                if host.status != "banned" and host.id not in self.streams:
                    self._subscribe(host)
            elif action == "ban" and host is not None:
                await self.ban_host(host, arguments["banned"])
            elif action == "limits" and host is not None:
                await self.change_limits(host, **arguments)
            elif action == "takedown":
                account = await self.account(subject)
                if account is not None:
                    await self.set_takedown(account, arguments["takedown"])
            await self.flush()
            log_event(log, "command carried out", action=action, subject=subject)

    # Writing

    async def flush(self) -> None:
        """Record host cursors and counts with the pending changes, commit, publish."""
        async with self._flushing:
            for host_id in self.ingest.dirty_hosts:
                host = self.hosts.get(host_id)
                if host is not None:
                    self.store.update_host(host)
            self.ingest.dirty_hosts.clear()
            await self.events.commit()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            if self.store.dirty or self.ingest.dirty_hosts:
                try:
                    await self.flush()
                except Exception as exc:
                    # What was accepted is dropped: ingest starts again from the committed
                    # cursors (see `_leadership`).
                    log_event(log, "commit failed", logging.ERROR, error=str(exc) or repr(exc))
                    self._lost.set()

    async def prune(self, before_ms: int) -> bool:
        """Drop a batch of the events sequenced before `before_ms` (the ingesting process does);
        whether any was."""
        writer = self.store.writer
        boundary = None if writer is None else await self.store.prune_boundary(before_ms)
        if writer is None or boundary is None:
            return False
        await writer.run_transaction(lambda tx: prune(tx, boundary))
        return True

    async def _pruner(self) -> None:
        while True:
            cutoff = _now_ms() - int(self.config.replay_hours * 3_600_000)
            try:
                while await self.prune(cutoff):
                    log_event(log, "pruned events", oldest=await self.store.oldest_seq())
                    await asyncio.sleep(0)
            except Exception as exc:
                log_event(log, "pruning failed", logging.WARNING, error=str(exc))
            await asyncio.sleep(PRUNE_INTERVAL)

    async def flush_if_full(self) -> None:
        """Commit at once when many events wait, so a burst costs few, large transactions (and
        the readers wait for it)."""
        if self.events.pending >= FLUSH_AT:
            await self.flush()

    # Hosts

    def _subscribe(self, host: Host) -> None:
        stream = UpstreamStream(
            host, self.ingest, self.host_http, self._host_changed, self.flush_if_full
        )
        self.streams[host.id] = stream
        stream.start()

    def _host_changed(self, host: Host) -> None:
        self.ingest.dirty_hosts.add(host.id)
        log_event(log, "host status", host=host.hostname, status=host.status)

    async def add_host(self, address: HostAddress, kind: str = "pds") -> Host:
        """Follow a host (idempotent); a banned host stays banned."""
        existing = await self.store.host(address.name)
        if existing is not None and not self.leading:
            return existing
        if existing is not None:
            host = self.hosts.setdefault(existing.id, existing)
        else:
            host = await self.store.add_host(
                address.name, address.no_ssl, kind, self.config.default_account_limit, _now_ms()
            )
            log_event(log, "host added", host=host.hostname, kind=kind)
            if not self.leading:
                await self._command("follow", host.hostname)
                return host
            self.hosts[host.id] = host
            self._apply_config(host)
            await self.flush()
        if host.status != "banned" and host.id not in self.streams:
            self._subscribe(host)
        return host

    def _apply_config(self, host: Host) -> None:
        """Hosts named by `--trusted` / `--lenient` get that treatment (the operator's changes
        through the admin API are kept otherwise)."""
        if _matches(host.hostname, self.config.trusted) and not host.trusted:
            host.trusted = True
            host.account_limit = max(host.account_limit, TRUSTED_ACCOUNT_LIMIT)
            self.store.update_host(host)
        if _matches(host.hostname, self.config.lenient) and not host.lenient:
            host.lenient = True
            self.store.update_host(host)

    async def host(self, hostname: str) -> Host | None:
        found = await self.store.host(hostname)
        return None if found is None else self.hosts.get(found.id, found)

    async def new_hosts_today(self) -> int:
        return await self.store.new_hosts_since(_now_ms() - 86_400_000)

    async def ban_host(self, host: Host, banned: bool) -> None:
        """Stop following a host (and refuse its requestCrawl), or follow it again."""
        if not self.leading:
            await self._command("ban", host.hostname, banned=banned)
            return
        host.status = "banned" if banned else "active"
        self.store.update_host(host)
        await self.flush()
        stream = self.streams.pop(host.id, None)
        if stream is not None:
            await stream.stop()
        if not banned:
            self._subscribe(host)
        log_event(log, "host banned" if banned else "host unbanned", host=host.hostname)

    async def change_limits(
        self,
        host: Host,
        account_limit: int | None = None,
        trusted: bool | None = None,
        lenient: bool | None = None,
    ) -> None:
        """Raise or lower a host's account cap (which scales its event limits), trust, leniency."""
        if not self.leading:
            await self._command(
                "limits", host.hostname, account_limit=account_limit, trusted=trusted,
                lenient=lenient,
            )  # fmt: skip
            return
        if account_limit is not None:
            host.account_limit = account_limit
        if trusted is not None:
            host.trusted = trusted
        if lenient is not None:
            host.lenient = lenient
        self.store.update_host(host)
        await self.flush()
        stream = self.streams.get(host.id)
        if stream is not None:
            stream.set_limits()
        log_event(
            log, "host limits changed", host=host.hostname, account_limit=host.account_limit,
            trusted=host.trusted, lenient=host.lenient,
        )  # fmt: skip

    # Accounts

    async def account(self, did: str) -> Account | None:
        return await self.store.account(did)

    async def set_takedown(self, account: Account, takedown: bool) -> None:
        """Take an account down (its events are no longer relayed) or restore it."""
        if not self.leading:
            await self._command("takedown", account.did, takedown=takedown)
            return
        self.ingest.local_status(account, "takendown" if takedown else "active")
        await self.flush()
        log_event(log, "account takedown" if takedown else "takedown reversed", did=account.did)


def _matches(hostname: str, patterns: tuple[str, ...]) -> bool:
    """Whether a host name is in a list of names and `*.suffix` patterns."""
    bare = hostname.split(":", 1)[0]
    for pattern in patterns:
        if pattern.startswith("*."):
            if bare.endswith(pattern[1:]):
                return True
        elif pattern.lower() in (hostname, bare):
            return True
    return False
