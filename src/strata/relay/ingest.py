"""Turning one upstream frame into zero or one relay event.

Each event is checked against what the relay knows: that its host may speak for the account
(a PDS only for accounts whose DID document names it; another relay for any account), that the
account is active, and for commits the signature, rev order, sizes and sync 1.1 inversion
(`strata.relay.verify`). A commit whose `prevData` is not the tree the relay last saw breaks the
account's chain: the account is marked `desynchronized` and fetched again from its PDS.

Everything between reading the account's state (from the store's batch, or the database
before it) and writing its new state runs without an await, so events for one account from two
upstreams cannot interleave there; the newer rev wins and the other copy is a duplicate. That
is how two relays that follow each other and the same PDSes give one stream.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import Counter

from strata.core.crypto import PublicKey
from strata.core.diddoc import DidDocument
from strata.core.errors import InvalidSyntax
from strata.core.frames import FrameError, decode_frame
from strata.core.syntax import validate_did
from strata.core.syntax.dates import format_millis
from strata.identity import IdentityResolver
from strata.identity.errors import IdentityNotFound
from strata.net.logs import log_event
from strata.relay.config import HostAddress, InvalidHost
from strata.relay.events import RelayEvents
from strata.relay.store import Account, Host, RelayStore
from strata.relay.verify import Rejected, check_commit, check_sync

log = logging.getLogger("strata.relay.ingest")

RECEIVED = Counter("strata_relay_events_received_total", "Upstream frames read", ["host"])
REJECTED = Counter(
    "strata_relay_events_rejected_total", "Upstream events dropped, by reason", ["reason"]
)
DUPLICATES = Counter(
    "strata_relay_duplicates_total", "Events already relayed, seen again from another upstream"
)
DEDUP_MEMORY: Final = 50_000
REJECTION_LOG_INTERVAL: Final = 10.0


class UpstreamError(Exception):
    """The host ended its stream with an error frame (for example `FutureCursor`)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


class Ingest:
    """Checks and sequences events from every upstream of one relay."""

    def __init__(
        self,
        store: RelayStore,
        events: RelayEvents,
        resolver: IdentityResolver,
        hosts: dict[int, Host],
        dev: bool,
        on_desync: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.events = events
        self.resolver = resolver
        self.hosts = hosts
        self.dev = dev
        self.on_desync = on_desync
        self.clock = clock
        self.dirty_hosts: set[int] = set()
        self._keys: dict[str, tuple[DidDocument, PublicKey]] = {}
        self._seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._logged: dict[int, float] = {}
        # Bound once per host: a labelled lookup on every frame is measurable at this rate.
        self._received: dict[int, Counter] = {}

    def reset(self) -> None:
        """Forget what was seen but not committed (this process stops ingesting): another
        process may relay it, or this one again from the committed cursors."""
        self.dirty_hosts.clear()
        self._seen.clear()

    async def handle(self, host: Host, data: bytes) -> None:
        """Process one frame from `host`. Raises `UpstreamError` for an error frame, and lets
        identity-resolution failures through so the stream retries from the same cursor."""
        received = self._received.get(host.id)
        if received is None:
            received = self._received[host.id] = RECEIVED.labels(host.hostname)
        received.inc()
        try:
            frame = decode_frame(data)
        except FrameError as exc:
            self._reject(host, Rejected("malformed-frame", str(exc)))
            return
        if frame.op == -1:
            error, message = frame.body.get("error"), frame.body.get("message")
            raise UpstreamError(str(error), str(message))
        seq = frame.body.get("seq")
        if frame.t == "#info" or not isinstance(seq, int) or isinstance(seq, bool):
            log_event(log, "upstream info", host=host.hostname, type=frame.t, body=str(frame.body))
            return
        if seq <= host.last_seq:
            return
        try:
            if frame.t == "#commit":
                await self._commit(host, frame.body)
            elif frame.t == "#sync":
                await self._sync(host, frame.body)
            elif frame.t == "#identity":
                await self._identity(host, frame.body)
            elif frame.t == "#account":
                await self._account(host, frame.body)
            else:
                raise Rejected("unknown-type", f"unknown event type {frame.t}")
        except Rejected as exc:
            self._reject(host, exc)
        host.last_seq = seq
        self.dirty_hosts.add(host.id)

    def _reject(self, host: Host, exc: Rejected) -> None:
        REJECTED.labels(exc.reason).inc()
        # One line per host every few seconds at most: a host sending garbage must not
        # flood the log; the counter has the totals.
        now = self.clock()
        quiet = now - self._logged.get(host.id, 0.0) < REJECTION_LOG_INTERVAL
        if not quiet:
            self._logged[host.id] = now
        log_event(
            log,
            "event rejected",
            logging.DEBUG if quiet else logging.WARNING,
            host=host.hostname,
            reason=exc.reason,
            error=str(exc),
        )

    # Accounts and identities

    def _names_host(self, document: DidDocument, host: Host) -> bool:
        endpoint = document.pds_endpoint
        if endpoint is None:
            return False
        try:
            return HostAddress.parse(endpoint, self.dev).name == host.hostname
        except InvalidHost:
            return False

    async def _document(self, did: str) -> DidDocument:
        try:
            return (await self.resolver.resolve_did(did)).value
        except IdentityNotFound as exc:
            raise Rejected("unknown-did", str(exc)) from exc

    async def _account_for(self, host: Host, did: str) -> Account:
        """The account `host` speaks for; created on first sight, moved when its document now
        names this host. Raises `Rejected` when the host may not speak for it."""
        try:
            validate_did(did)
        except (InvalidSyntax, TypeError) as exc:
            raise Rejected("invalid-did", f"not a DID: {did!r}") from exc
        account = await self.store.account(did)
        if account is not None and (account.host_id == host.id or host.kind == "relay"):
            return account
        document = await self._document(did)
        if host.kind != "relay" and not self._names_host(document, host):
            # The account may have just moved here: look again past the cache, once.
            self.resolver.forget(did)
            document = await self._document(did)
            if not self._names_host(document, host):
                raise Rejected("wrong-host", f"{host.hostname} is not the PDS of {did}")
        account = await self.store.account(did)
        if account is None:
            throttled = host.kind != "relay" and host.account_count >= host.account_limit
            account = self.store.add_account(
                did, host.id, "host-throttled" if throttled else "active"
            )
            self._count_account(host, 1)
            return account
        if account.host_id != host.id and host.kind != "relay":
            previous = self.hosts.get(account.host_id)
            if previous is not None:
                self._count_account(previous, -1)
            self._count_account(host, 1)
            account.host_id = host.id
            self.store.save_account(account)
            log_event(log, "account moved", did=did, host=host.hostname)
        return account

    def _count_account(self, host: Host, change: int) -> None:
        host.account_count += change
        self.dirty_hosts.add(host.id)

    async def _key(self, did: str, fresh: bool = False) -> PublicKey:
        if fresh:
            self.resolver.forget(did)
        document = await self._document(did)
        cached = self._keys.get(did)
        if cached is not None and cached[0] is document:
            return cached[1]
        key = document.signing_key()
        if key is None:
            raise Rejected("no-signing-key", f"{did} has no usable atproto signing key")
        self._keys[did] = (document, key)
        if len(self._keys) > DEDUP_MEMORY:
            self._keys.pop(next(iter(self._keys)))
        return key

    def _first_time(self, key: tuple[Any, ...]) -> bool:
        """False when an equal event was already relayed (it came by another upstream)."""
        if key in self._seen:
            DUPLICATES.inc()
            return False
        self._seen[key] = None
        if len(self._seen) > DEDUP_MEMORY:
            self._seen.popitem(last=False)
        return True

    def iso_now(self) -> str:
        """Now, as event times are written."""
        return format_millis(int(self.clock() * 1000))

    def _now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def _older(self, host: Host, account: Account, rev: Any) -> bool:
        """Whether a commit or sync is at or behind what the relay has: a duplicate from another
        upstream relay, or (from a PDS) a rev going backwards."""
        if account.rev is None or not isinstance(rev, str) or rev > account.rev:
            return False
        if host.kind == "relay":
            DUPLICATES.inc()
            return True
        raise Rejected("rev-not-increasing", f"rev {rev} is not after {account.rev}")

    # Event types

    async def _commit(self, host: Host, body: dict[str, Any]) -> None:
        did = body.get("repo")
        account = await self._account_for(host, did)  # type: ignore[arg-type]
        if not account.active:
            raise Rejected(account.status_field or "inactive", f"{did} is not active")
        key = await self._key(account.did)
        if self._older(host, account, body.get("rev")):
            return
        try:
            checked = check_commit(body, key, account.rev, self._now_us(), strict=not host.lenient)
        except Rejected as exc:
            if exc.reason != "bad-signature":
                raise
            # The key may have rotated since the document was cached: look once more.
            key = await self._key(account.did, fresh=True)
            checked = check_commit(body, key, account.rev, self._now_us(), strict=not host.lenient)
        if checked.warnings:
            log_event(
                log, "lenient commit", host=host.hostname, did=did, warning=checked.warnings[0]
            )
        prev_data = body.get("prevData")
        if (
            account.data_cid is not None
            and prev_data is not None
            and str(prev_data) != account.data_cid
        ):
            account.status = "desynchronized"
            self.store.save_account(account)
            self.on_desync(account.did)
            raise Rejected("chain-break", f"{did}: prevData is not the tree the relay last saw")
        account.rev = checked.commit.rev
        account.commit_cid = str(checked.cid)
        account.data_cid = str(checked.commit.data)
        self.store.save_account(account)
        self.events.append(account.did, "#commit", body)

    async def _sync(self, host: Host, body: dict[str, Any]) -> None:
        did = body.get("did")
        account = await self._account_for(host, did)  # type: ignore[arg-type]
        if account.upstream_status != "active" or account.status not in (
            "active",
            "desynchronized",
        ):
            raise Rejected(account.status_field or "inactive", f"{did} is not active")
        key = await self._key(account.did)
        if host.kind == "relay" and self._older(host, account, body.get("rev")):
            return
        checked = check_sync(body, key, account.rev, self._now_us())
        self.apply_sync(
            account, checked.commit.rev, str(checked.cid), str(checked.commit.data), body
        )

    def apply_sync(
        self, account: Account, rev: str, commit_cid: str, data_cid: str, body: dict[str, Any]
    ) -> None:
        """The account's repository is now this commit, whatever came before; relay a `#sync`."""
        account.rev, account.commit_cid, account.data_cid = rev, commit_cid, data_cid
        if account.status == "desynchronized":
            account.status = "active"
        self.store.save_account(account)
        self.events.append(account.did, "#sync", body)

    async def _identity(self, host: Host, body: dict[str, Any]) -> None:
        did = body.get("did")
        if not isinstance(did, str):
            raise Rejected("invalid-did", "identity event without a DID")
        self.resolver.forget(did)
        await self._account_for(host, did)
        document = await self._document(did)
        # Only the account's own PDS (as its current DID document names it) or an upstream
        # relay may announce an identity change, as for commits: a host cannot make consumers
        # refresh, or appear to vouch for, identities it does not serve.
        if host.kind != "relay" and not self._names_host(document, host):
            raise Rejected("wrong-host", f"{host.hostname} is not the PDS of {did}")
        handle = body.get("handle")
        if handle is not None and document.handle != handle:
            handle = None
        if not self._first_time(("#identity", did, body.get("time"))):
            return
        out: dict[str, Any] = {"did": did, "time": body.get("time") or self.iso_now()}
        if handle is not None:
            out["handle"] = handle
        self.events.append(did, "#identity", out)

    async def _account(self, host: Host, body: dict[str, Any]) -> None:
        did, active, status = body.get("did"), body.get("active"), body.get("status")
        account = await self._account_for(host, did)  # type: ignore[arg-type]
        if not isinstance(active, bool) or (status is not None and not isinstance(status, str)):
            raise Rejected("invalid-account-event", "account event needs active and a status")
        upstream = "active" if active else (status or "inactive")
        if host.kind == "relay" and upstream == account.upstream_status:
            DUPLICATES.inc()
            return
        if upstream != account.upstream_status:
            account.upstream_status = upstream
            self.store.save_account(account)
        out: dict[str, Any] = {
            "did": did,
            "active": account.active,
            "time": body.get("time") or self.iso_now(),
        }
        if account.status_field is not None:
            out["status"] = account.status_field
        self.events.append(account.did, "#account", out)

    def local_status(self, account: Account, status: str) -> None:
        """The operator's verdict (`takendown` or back to `active`), relayed as `#account`."""
        account.status = status
        self.store.save_account(account)
        out: dict[str, Any] = {
            "did": account.did,
            "active": account.active,
            "time": self.iso_now(),
        }
        if account.status_field is not None:
            out["status"] = account.status_field
        self.events.append(account.did, "#account", out)
