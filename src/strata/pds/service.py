"""The PDS as one object: its stores, its firehose, and what happens to accounts over time.

Request handlers (`strata.pds.api`) translate XRPC calls into the operations here; this module
keeps the rules that span several stores: creating an account touches the directory, the
service database, a new account store and the firehose; deleting one removes all of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from strata.core.crypto import K256Keypair
from strata.core.diddoc import DidDocument
from strata.core.errors import CoreError
from strata.core.jwt import sign_service_jwt
from strata.core.lexicon import Catalog
from strata.core.plc import next_operation
from strata.core.syntax import is_disallowed_tld, normalize_handle, validate_handle
from strata.identity import IdentityResolver
from strata.identity.errors import IdentityError
from strata.net.errors import XrpcError, invalid_request
from strata.net.logs import log_event
from strata.net.public_fetch import outward_session
from strata.pds.accounts import Account, AccountStore
from strata.pds.actor_store import ActorStore, ActorStores
from strata.pds.auth import Authenticator, LoginLimiter, Tokens
from strata.pds.blobs import UPLOAD_TTL, BlobStore
from strata.pds.config import PdsConfig, Secrets
from strata.pds.mail import MailError, create_mailer
from strata.pds.mail_templates import Mail
from strata.pds.oauth.clients import Clients
from strata.pds.oauth.dpop import DpopVerifier, Nonces, ReplayCache
from strata.pds.oauth.provider import AuthorizationServer
from strata.pds.oauth.store import OAuthStore
from strata.pds.oauth.tokens import AccessTokens
from strata.pds.plc_client import PlcClient, PlcRejected, PlcUnavailable
from strata.pds.ratelimit import RateLimits
from strata.pds.sequencer import Sequencer
from strata.pds.writer import RepoWriter
from strata.resilience import Backoff

log = logging.getLogger("strata.pds")

UPLOAD_SWEEP_INTERVAL: Final = 600.0

CRAWL_ATTEMPTS = 5

HANDLE_MIN, HANDLE_MAX = 3, 18
"""Length limits of the first label of a handle under one of the PDS's own domains."""


class Pds:
    """A running PDS's state. Create it, `await start()`, serve, then `await stop()`."""

    def __init__(self, config: PdsConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.secrets = Secrets.load_or_create(data_dir)
        self.accounts = AccountStore(data_dir / "service.sqlite")
        self.sequencer = Sequencer(self.accounts, config.firehose_window_bytes)
        self.stores = ActorStores(data_dir / "actors", on_open=self._reconcile)
        self.blobs = BlobStore(data_dir / "blobs")
        self.writer = RepoWriter(self.stores, self.blobs, self.sequencer)
        self.tokens = Tokens(self.secrets.jwt_secret, config.service_did)
        replay = ReplayCache()
        self.oauth = AuthorizationServer(
            OAuthStore(self.accounts.conn),
            Clients(config.public_url, config.dev, replay),
            DpopVerifier(Nonces(self.secrets.jwt_secret), replay),
            AccessTokens(self.secrets.oauth_key, config.public_url, config.service_did),
            config.public_url,
        )
        self.auth = Authenticator(
            self.tokens,
            self.accounts,
            self.secrets.admin_password,
            self.oauth,
            lambda did: self.stores.open(did).keypair().public_key,
        )
        self.login_limiter = LoginLimiter()
        self.rate_limits = RateLimits(config.rate_limits, config.rate_limit_bypass_ips)
        self.catalog = Catalog.bundled()
        self.mailer = create_mailer(
            config.smtp_url, config.email_from, config.hostname, data_dir, config.smtp_ca_file
        )
        self._session: aiohttp.ClientSession | None = None
        self._outward: aiohttp.ClientSession | None = None
        self._resolver: IdentityResolver | None = None
        self._plc: PlcClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _reconcile(self, store: ActorStore) -> None:
        """Announce a commit that reached the account's store but not the firehose.

        The store commits before the event is sequenced; a crash in between leaves the two
        apart, and the first time the store is opened afterwards a `#sync` closes the gap.
        """
        root = store.root()
        announced = self.accounts.root(store.did)
        if root is None or announced is None or announced[0] == str(root[0]):
            return
        self.sequencer.sync(store.did, root[0], store.blocks[root[0]], root[1])
        log_event(log, "unannounced commit synced", did=store.did, rev=root[1])

    # Lifecycle

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._outward = outward_session(self.config.dev, timeout=10)
        dev_hosts = {}
        if self.config.dev:
            host = self.config.public_url.split("://", 1)[1]
            dev_hosts = {domain: host for domain in self.config.handle_domains}
        self._resolver = IdentityResolver(
            self._session,
            self.config.plc_urls,
            dev=self.config.dev,
            dev_hosts=dev_hosts,
            web_session=self._outward,
        )
        self._plc = PlcClient(self._session, self.config.plc_urls)
        await self.oauth.clients.start()
        self.background(self.request_crawl())
        self.background(self._sweep_uploads_every(UPLOAD_SWEEP_INTERVAL))
        log_event(log, "pds started", url=self.config.public_url, accounts=self.accounts.count())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._outward is not None:
            await self._outward.close()
        await self.oauth.clients.close()
        self.stores.close()
        self.accounts.close()

    def background(self, coro: Any) -> None:
        """Run `coro` alongside the server; it is cancelled on stop."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Pds.start() has not run"
        return self._session

    @property
    def outward_session(self) -> aiohttp.ClientSession:
        """The session for services that strangers name (in DID documents, handles): it
        reaches public addresses only, but in development."""
        assert self._outward is not None, "Pds.start() has not run"
        return self._outward

    @property
    def resolver(self) -> IdentityResolver:
        assert self._resolver is not None, "Pds.start() has not run"
        return self._resolver

    @property
    def plc(self) -> PlcClient:
        assert self._plc is not None, "Pds.start() has not run"
        return self._plc

    def sweep_uploads(self, older_than: float = UPLOAD_TTL) -> int:
        """Delete the uploads no record referenced within `older_than` seconds; how many."""
        expired = self.blobs.expired_uploads(time.time() - older_than)
        for did, key in expired:
            if did is not None and self.accounts.get(did) is not None:
                self.stores.open(did).forget_upload(key)
            self.blobs.discard_upload(key)
        if expired:
            log_event(log, "expired uploads deleted", count=len(expired))
        return len(expired)

    async def _sweep_uploads_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.sweep_uploads()

    async def request_crawl(self) -> None:
        """Ask every configured relay to subscribe to this PDS. A relay checks that the PDS
        answers first, so on start (before the server listens) a refusal is retried."""
        # The public URL's host, with its port when it has one (dev mode on loopback).
        hostname = urlsplit(self.config.public_url).netloc
        await asyncio.gather(*(self._ask_relay(relay, hostname) for relay in self.config.relays))

    async def _ask_relay(self, relay: str, hostname: str) -> None:
        url = f"{relay.rstrip('/')}/xrpc/com.atproto.sync.requestCrawl"
        backoff = Backoff(base=0.5, cap=10.0)
        for attempt in range(1, CRAWL_ATTEMPTS + 1):
            try:
                async with self.session.post(url, json={"hostname": hostname}) as r:
                    log_event(log, "requested crawl", relay=relay, status=r.status)
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log_event(
                    log, "crawl request failed", logging.WARNING, relay=relay, attempt=attempt,
                    error=str(exc),
                )  # fmt: skip
            await asyncio.sleep(backoff.next_delay())

    # Identity

    def check_new_handle(self, handle: str) -> str:
        """A handle this PDS may give out: valid, under one of its domains, not taken."""
        try:
            handle = normalize_handle(validate_handle(handle))
        except CoreError as exc:
            raise XrpcError(400, "InvalidHandle", "Input/handle must be a valid handle") from exc
        if is_disallowed_tld(handle):
            raise XrpcError(400, "InvalidHandle", "Handle TLD is invalid or disallowed")
        domain = next((d for d in self.config.handle_domains if handle.endswith(d)), None)
        if domain is not None:
            front = handle[: -len(domain)]
            if "." in front:
                raise XrpcError(400, "InvalidHandle", "Invalid characters in handle")
            if len(front) < HANDLE_MIN:
                raise XrpcError(400, "InvalidHandle", "Handle too short")
            if len(front) > HANDLE_MAX:
                raise XrpcError(400, "InvalidHandle", "Handle too long")
        if self.accounts.by_handle(handle) is not None:
            raise XrpcError(400, "HandleNotAvailable", f"Handle already taken: {handle}")
        return handle

    def own_domain(self, handle: str) -> bool:
        return any(handle.endswith(d) for d in self.config.handle_domains)

    async def external_handle_points_to(self, handle: str, did: str) -> bool:
        try:
            found = await self.resolver.resolve_handle(handle)
        except IdentityError:
            return False
        return found is not None and found.value == did

    async def did_document(self, did: str) -> DidDocument | None:
        try:
            return (await self.resolver.resolve_did(did)).value
        except IdentityError:
            return None

    def document_problem(self, did: str, doc: DidDocument | None) -> str | None:
        """Why `doc` does not let this PDS serve the account (None when it does): it must
        name this PDS as the service endpoint and hold the account's signing key here."""
        if doc is None or doc.pds_endpoint != self.config.public_url:
            return "DID document does not name this PDS as the account's service endpoint yet"
        key = doc.signing_key()
        if key is None or key.did_key() != self.stores.open(did).keypair().did():
            return "DID document's signing key is not this PDS's key for the account"
        return None

    async def did_document_json(self, did: str) -> dict[str, Any] | None:
        """The account's DID document as JSON, for session answers; None if unresolvable."""
        doc = await self.did_document(did)
        return doc.raw if doc is not None else None

    # Accounts

    async def create_account(
        self,
        handle: str,
        email: str | None,
        password_hash: str,
        did: str | None = None,
        invite_code: str | None = None,
    ) -> str:
        """Create an account: a new did:plc when `did` is None, otherwise an existing DID
        moving here (created deactivated until it is activated)."""
        signing_key = K256Keypair.generate()
        migrating = did is not None
        if did is None:
            try:
                did = await self.plc.create_did(
                    self.secrets.plc_rotation_key, signing_key, handle, self.config.public_url
                )
            except PlcRejected as exc:
                raise invalid_request(f"The directory refused the new DID: {exc}") from exc
            except PlcUnavailable as exc:
                raise XrpcError(
                    502, "UpstreamFailure", f"No PLC directory answered: {exc}"
                ) from exc
        if self.accounts.get(did) is not None:
            raise invalid_request(f"Account already exists: {did}")
        store = self.stores.create(did, signing_key)
        result = self.writer.create_repo(did, store)
        with self.accounts.transaction() as conn:
            self.accounts.create(conn, did, handle, email, password_hash, deactivated=migrating)
            if invite_code is not None:
                self.accounts.use_invite(conn, invite_code, did)
        self.sequencer.identity(did, handle)
        self.sequencer.account(did, not migrating, "deactivated" if migrating else None)
        self.sequencer.commit(did, result, [])
        self.sequencer.sync(did, result.cid, result.new_blocks[result.cid], result.commit.rev)
        self.stores.release(did)
        log_event(log, "account created", did=did, handle=handle, migrating=migrating)
        if not migrating:
            self.background(self.request_crawl())
        return did

    def account_or_404(self, did: str) -> Account:
        account = self.accounts.get(did)
        if account is None:
            raise XrpcError(400, "AccountNotFound", f"Account not found: {did}")
        return account

    def activate(self, did: str) -> None:
        """Activate an account; a repository imported from elsewhere, still signed with the
        old host's key, is first re-signed with this PDS's key (an empty commit)."""
        self.accounts.set_deactivated(did, False)
        store = self.stores.open(did)
        repo = store.repo()
        if repo is not None and not repo.commit.verify(store.keypair().public_key):
            self.writer.apply(did, [])
        root = store.root()
        if root is not None:
            self.sequencer.sync(did, root[0], store.blocks[root[0]], root[1])
        self.sequencer.identity(did, self.account_or_404(did).handle)
        self.sequencer.account(did, True, None)
        log_event(log, "account activated", did=did)

    def deactivate(self, did: str, delete_after: int | None) -> None:
        self.accounts.set_deactivated(did, True, delete_after)
        self.sequencer.account(did, False, "deactivated")
        log_event(log, "account deactivated", did=did)

    def set_takedown(self, did: str, ref: str | None) -> None:
        account = self.account_or_404(did)
        self.accounts.set_takedown(did, ref)
        if ref is not None:
            self.sequencer.account(did, False, "takendown")
        else:
            still = account.deactivated_at is not None
            self.sequencer.account(did, not still, "deactivated" if still else None)
        log_event(log, "takedown" if ref else "takedown reversed", did=did)

    def delete_account(self, did: str) -> None:
        """Remove an account and everything it stored, and tell the firehose."""
        self.stores.destroy(did)
        self.blobs.delete_account(did)
        self.accounts.delete(did)
        self.oauth.store.delete_account_tokens(did)
        self.sequencer.account(did, False, "deleted")
        log_event(log, "account deleted", did=did)

    async def update_handle(self, did: str, handle: str) -> None:
        """Point the account at a new handle: in its DID document and in the firehose."""
        account = self.account_or_404(did)
        if account.handle == handle:
            self.sequencer.identity(did, handle)
            return
        if did.startswith("did:plc:"):
            op = await self.sign_plc_update(did, {"alsoKnownAs": [f"at://{handle}"]})
            await self.submit_plc(did, op)
        self.accounts.set_handle(did, handle)
        self.resolver.forget(did)
        self.sequencer.identity(did, handle)
        log_event(log, "handle updated", did=did, handle=handle)

    async def sign_plc_update(self, did: str, changes: dict[str, Any]) -> dict[str, Any]:
        """The DID's next PLC operation: `changes` applied to the last one, signed with the
        PDS's rotation key (which the DID must list)."""
        try:
            last = await self.plc.last_operation(did)
        except PlcUnavailable as exc:
            raise XrpcError(502, "UpstreamFailure", str(exc)) from exc
        if last is None or last.get("type") == "plc_tombstone":
            raise invalid_request(f"DID is not active in the directory: {did}")
        if self.secrets.plc_rotation_key.did() not in last.get("rotationKeys", []):
            raise invalid_request("This PDS holds no rotation key of this DID")
        return next_operation(last, changes, self.secrets.plc_rotation_key)

    async def submit_plc(self, did: str, operation: dict[str, Any]) -> None:
        """Send an operation to the directory, answering refusals as XRPC errors."""
        try:
            await self.plc.submit(did, operation)
        except PlcRejected as exc:
            raise invalid_request(f"The directory refused the operation: {exc}") from exc
        except PlcUnavailable as exc:
            raise XrpcError(502, "UpstreamFailure", str(exc)) from exc
        self.resolver.forget(did)

    def service_jwt(self, did: str, aud: str, lxm: str | None, exp: int | None = None) -> str:
        """A token signed by the account's repo key, for calling another service as it."""
        return sign_service_jwt(self.stores.open(did).keypair(), did, aud, lxm, time.time(), exp)

    async def mail_code(
        self, account: Account, purpose: str, compose: Callable[[str], Mail]
    ) -> None:
        """Mail the account a new one-time code for `purpose`, in the words of `compose(code)`:
        400 when the account has no email address, 500 when the mail could not be delivered
        (the failure is logged and counted)."""
        if not account.email:
            raise invalid_request("account does not have an email address")
        mail = compose(self.accounts.new_email_token(purpose, account.did))
        try:
            await self.mailer.send(
                account.email, mail.subject, mail.text, did=account.did, purpose=purpose
            )
        except MailError as exc:
            raise XrpcError(
                500, "InternalServerError", "The email could not be sent; try again later"
            ) from exc
