"""`strata account migrate`: an account moves to another PDS one recorded step at a time.

The order keeps the account usable at every point: the new PDS holds a deactivated copy until
the copy is checked against the old one, only then does the DID document change, and the old
account is deactivated last. A re-run skips the steps the state file lists as done; the
identity steps are never repeated (a signed operation is kept and submitted once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from strata.core.crypto import K256Keypair, Keypair
from strata.core.jwt import sign_service_jwt
from strata.core.plc import next_operation, operation_cid
from strata.migration.backup import BackupSource
from strata.migration.rotation import RotationKeyError, last_operation, with_user_keys
from strata.migration.state import MigrationState, StateMismatch
from strata.migration.transfer import (
    TRANSFER_ERRORS,
    PdsSource,
    Source,
    TransferFailed,
    copy_blobs,
    copy_preferences,
    copy_repo,
)
from strata.net.client import Session, XrpcClient, XrpcFailed
from strata.pds.plc_client import PlcClient, PlcRejected, PlcUnavailable

CREATE_ACCOUNT = "com.atproto.server.createAccount"

# What a step can fail with; each becomes a `MigrationError` naming the step.
STEP_ERRORS = (
    *TRANSFER_ERRORS,
    TransferFailed,
    PlcRejected,
    PlcUnavailable,
    RotationKeyError,
)


@dataclass(frozen=True)
class Step:
    name: str
    title: str


STEPS = (
    Step("create-account", "create the account on the new PDS (deactivated, same DID)"),
    Step("import-repo", "copy the repository"),
    Step("blobs", "copy the blobs its records use"),
    Step("preferences", "copy the preferences"),
    Step("verify", "compare records, blobs and the repository root on both sides"),
    Step("sign-plc", "sign the DID's move to the new PDS"),
    Step("submit-plc", "point the DID at the new PDS"),
    Step("activate", "activate the account on the new PDS"),
    Step("deactivate-old", "deactivate the account on the old PDS"),
)


class MigrationError(Exception):
    """The migration stopped; the message says why and what to do next."""


class NeedsToken(MigrationError):
    """The old PDS sent a confirmation code to the account's email; the move continues once
    it is given (`--plc-token`)."""


@dataclass(frozen=True)
class MigrationOptions:
    destination: str
    password: str
    state_path: Path
    plc_urls: tuple[str, ...]
    source_url: str | None = None
    identifier: str | None = None
    backup: Path | None = None
    handle: str | None = None
    email: str | None = None
    invite_code: str | None = None
    plc_token: str | None = None
    rotation_key: Keypair | None = None


class Migration:
    """One account's move. `prepare()` signs in and opens the state; `run()` does the rest."""

    def __init__(
        self, http: aiohttp.ClientSession, options: MigrationOptions, echo: Callable[[str], None]
    ) -> None:
        self.options = options
        self.echo = echo
        self.old = XrpcClient(http, options.source_url) if options.source_url else None
        self.new = XrpcClient(http, options.destination)
        self.plc = PlcClient(http, options.plc_urls)
        self.source: Source
        self.did = ""
        self.handle = ""
        self.email: str | None = options.email
        self.server_did = ""
        self.state: MigrationState

    @property
    def recovering(self) -> bool:
        """Moving from a backup, without the old PDS."""
        return self.old is None

    async def prepare(self) -> None:
        """Sign in to the old PDS (or read the backup), find the new PDS, open the state."""
        options = self.options
        if self.old is not None:
            session = await self._reach(self.old.login(options.identifier or "", options.password))
            self.did = session.did
            self.handle = options.handle or session.handle
            if self.email is None:
                info = await self.old.query("com.atproto.server.getSession")
                self.email = info.get("email")
            self.source = PdsSource(self.old, self.did)
            source_label = self.old.base
        else:
            if options.backup is None or options.rotation_key is None:
                raise MigrationError("moving from a backup needs --backup and --rotation-key")
            backup = BackupSource(options.backup)
            self.did = backup.did
            self.handle = options.handle or backup.handle or ""
            self.source = backup
            source_label = str(options.backup)
        server = await self._reach(self.new.query("com.atproto.server.describeServer"))
        self.server_did = server["did"]
        try:
            self.state = MigrationState.open(
                options.state_path, self.did, source_label, self.new.base
            )
        except StateMismatch as exc:
            raise MigrationError(f"{exc}; pass --state with another file") from exc
        if self.state.is_done("create-account"):
            await self._reach(self.new.login(self.did, options.password))

    async def _reach(self, call: Any) -> Any:
        try:
            return await call
        except XrpcFailed as exc:
            raise MigrationError(str(exc)) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            hint = (
                " If the old PDS is gone for good, move from your backup instead: "
                "--backup DIR --rotation-key FILE (see `strata account export`)."
                if self.old is not None
                else ""
            )
            raise MigrationError(f"cannot reach a PDS: {exc}.{hint}") from exc

    def _skips(self, step: Step) -> bool:
        # The comparison runs again on every run until the identity moves: the old account
        # may have changed since the last run.
        if step.name == "verify":
            return self.state.is_done("submit-plc")
        if step.name == "deactivate-old" and self.recovering:
            return True
        return self.state.is_done(step.name)

    async def explain(self) -> None:
        """What a run would do (`--dry-run`); changes nothing."""
        source = self.old.base if self.old is not None else f"the backup in {self.options.backup}"
        self.echo(f"Moving {self.did} ({self.handle}) from {source} to {self.new.base}.")
        if self.old is not None:
            status = await self._reach(self.old.query("com.atproto.server.checkAccountStatus"))
            self.echo(
                f"The old PDS holds {status.get('indexedRecords')} records and "
                f"{status.get('expectedBlobs')} blobs (root {status.get('repoCommit')})."
            )
        self.echo(f"State file: {self.state.path}")
        for n, step in enumerate(STEPS, 1):
            if step.name == "deactivate-old" and self.recovering:
                status = "skipped (no old PDS)"
            else:
                status = "done" if self._skips(step) else "to do"
            self.echo(f"  [{n}/{len(STEPS)}] {step.title}: {status}")
        how = (
            "with your rotation key"
            if self.options.rotation_key is not None
            else "by the old PDS after a code it emails to the account"
        )
        self.echo(f"The DID's change is signed {how}.")
        self.echo("Nothing was changed (--dry-run).")

    async def run(self) -> None:
        """Every step not done yet, in order; raises `MigrationError` at the first failure."""
        for n, step in enumerate(STEPS, 1):
            prefix = f"[{n}/{len(STEPS)}] {step.title}"
            if self._skips(step):
                self.echo(f"{prefix}: already done")
                continue
            self.echo(f"{prefix} ...")
            try:
                await getattr(self, "_" + step.name.replace("-", "_"))()
            except MigrationError:
                raise
            except STEP_ERRORS as exc:
                raise MigrationError(
                    f"{step.title} failed: {exc}\nWhat is done is recorded in "
                    f"{self.state.path}; run the same command again to continue."
                ) from exc
            self.state.mark_done(step.name)

    async def _create_account(self) -> None:
        token = await self._service_auth()
        body = {"did": self.did, "handle": self.handle, "password": self.options.password}
        if self.email:
            body["email"] = self.email
        if self.options.invite_code:
            body["inviteCode"] = self.options.invite_code
        try:
            answer = await self.new.procedure(CREATE_ACCOUNT, body, bearer=token)
        except XrpcFailed:
            # An earlier run may have created it and been cut off before recording that.
            if await self._signs_in_to_new():
                self.echo("  the account was already there (created by an earlier run)")
                return
            raise
        self.new.session = Session(answer["did"], answer["handle"], answer["accessJwt"])

    async def _signs_in_to_new(self) -> bool:
        try:
            session = await self.new.login(self.did, self.options.password)
        except XrpcFailed:
            return False
        return session.did == self.did

    async def _service_auth(self) -> str:
        """A token from the account to the new PDS for createAccount: from the old PDS, or,
        in recovery, signed here with an interim key the DID document is first pointed at."""
        if self.old is not None:
            grant = await self.old.query(
                "com.atproto.server.getServiceAuth", aud=self.server_did, lxm=CREATE_ACCOUNT
            )
            return str(grant["token"])
        assert self.options.rotation_key is not None
        if self.state.interim_key is None:
            self.state.interim_key = K256Keypair.generate().private_bytes().hex()
            self.state.save()
        interim = K256Keypair.from_private_bytes(bytes.fromhex(self.state.interim_key))
        last = await self._last_operation_for(self.options.rotation_key)
        methods = dict(last.get("verificationMethods", {}))
        if methods.get("atproto") != interim.did():
            self.echo("  pointing the DID's signing key at an interim key held here")
            change = {"verificationMethods": {**methods, "atproto": interim.did()}}
            await self.plc.submit(self.did, next_operation(last, change, self.options.rotation_key))
        return sign_service_jwt(interim, self.did, self.server_did, CREATE_ACCOUNT, time.time())

    async def _last_operation_for(self, key: Keypair) -> dict[str, Any]:
        last = await last_operation(self.plc, self.did)
        if key.did() not in last.get("rotationKeys", []):
            raise RotationKeyError(f"{key.did()} is not a rotation key of {self.did}")
        return last

    async def _import_repo(self) -> None:
        summary, size = await copy_repo(self.source, self.new, self.did)
        self.state.imported = {
            "root": summary.root,
            "rev": summary.rev,
            "records": summary.records,
            "blobs": len(summary.blobs),
        }
        self.echo(
            f"  {summary.records} records, {len(summary.blobs)} blobs, "
            f"{size / 1024:.1f} KiB, root {summary.root}"
        )

    async def _blobs(self) -> None:
        def progress(n: int, total: int, cid: str, size: int) -> None:
            self.state.blobs_copied += 1
            self.state.save()
            self.echo(f"  blob {n}/{total} {cid} ({size / 1024:.1f} KiB)")

        if await copy_blobs(self.source, self.new, progress) == 0:
            self.echo("  no blob missing")

    async def _preferences(self) -> None:
        self.state.preferences_copied = await copy_preferences(self.source, self.new)
        self.echo(f"  {self.state.preferences_copied} preferences")

    async def _verify(self) -> None:
        imported = self.state.imported
        assert imported is not None
        if isinstance(self.source, PdsSource):
            current = await self.source.latest_root()
            if current != imported["root"]:
                self.state.undo("import-repo", "blobs", "verify")
                raise MigrationError(
                    f"the account changed on the old PDS since its repository was copied "
                    f"(its root is now {current}). Run again to copy it afresh."
                )
        status = await self.new.query("com.atproto.server.checkAccountStatus")
        problems = []
        if status.get("repoCommit") != imported["root"]:
            problems.append(f"root {status.get('repoCommit')} instead of {imported['root']}")
        if status.get("indexedRecords") != imported["records"]:
            problems.append(f"{status.get('indexedRecords')} records, not {imported['records']}")
        if status.get("expectedBlobs") != imported["blobs"]:
            problems.append(f"{status.get('expectedBlobs')} blobs named, not {imported['blobs']}")
        if status.get("importedBlobs") != status.get("expectedBlobs"):
            problems.append(
                f"{status.get('importedBlobs')} of {status.get('expectedBlobs')} blobs present"
            )
        if problems:
            self.state.undo("import-repo", "blobs", "verify")
            raise MigrationError(
                "the new PDS's copy does not match, so the identity was not moved: "
                + "; ".join(problems)
                + ". Run again to copy it afresh."
            )
        self.echo(
            f"  both sides: {imported['records']} records, {imported['blobs']} blobs, "
            f"root {imported['root']}"
        )

    async def _sign_plc(self) -> None:
        wanted = await self.new.query("com.atproto.identity.getRecommendedDidCredentials")
        key = self.options.rotation_key
        last = (
            await self._last_operation_for(key)
            if key is not None
            else await last_operation(self.plc, self.did)
        )
        # Keys the user holds stay, ahead of the new PDS's; the old PDS's key goes.
        held: list[str] = [key.did()] if key is not None else []
        if self.old is not None:
            old_keys = (
                await self.old.query("com.atproto.identity.getRecommendedDidCredentials")
            ).get("rotationKeys", [])
            held += [k for k in last.get("rotationKeys", []) if k not in old_keys]
        changes = {
            "rotationKeys": with_user_keys(list(wanted.get("rotationKeys", [])), held),
            "alsoKnownAs": wanted.get("alsoKnownAs", []),
            "verificationMethods": wanted.get("verificationMethods", {}),
            "services": wanted.get("services", {}),
        }
        if key is not None:
            operation = next_operation(last, changes, key)
        else:
            operation = await self._signed_by_old_pds(changes)
        self.state.signed_operation = operation

    async def _signed_by_old_pds(self, changes: dict[str, Any]) -> dict[str, Any]:
        assert self.old is not None
        token = self.options.plc_token
        if not token:
            if not self.state.token_requested:
                await self.old.procedure("com.atproto.identity.requestPlcOperationSignature")
                self.state.token_requested = True
                self.state.save()
            raise NeedsToken(
                f"{self.old.base} has emailed a confirmation code to the account's address "
                f"({self.email or 'unknown'})."
            )
        try:
            answer = await self.old.procedure(
                "com.atproto.identity.signPlcOperation", {"token": token, **changes}
            )
        except XrpcFailed as exc:
            if exc.error in ("InvalidToken", "ExpiredToken"):
                self.state.token_requested = False
                self.state.save()
                raise MigrationError(
                    f"the old PDS refused the code ({exc.error}). Run again without "
                    "--plc-token to be sent a new one."
                ) from exc
            raise
        operation: dict[str, Any] = answer["operation"]
        return operation

    async def _submit_plc(self) -> None:
        operation = self.state.signed_operation
        assert operation is not None
        last = await last_operation(self.plc, self.did)
        if operation_cid(last) == operation_cid(operation):
            self.echo("  the directory already has it")
            return
        try:
            await self.new.procedure(
                "com.atproto.identity.submitPlcOperation", {"operation": operation}
            )
        except XrpcFailed as exc:
            if exc.status != 400:
                raise
            # The code was used up by the signature: the next run asks for a new one.
            self.state.signed_operation = None
            self.state.token_requested = False
            self.state.undo("sign-plc")
            raise MigrationError(
                f"the new PDS refused the signed operation ({exc}). Run again to sign a new one."
            ) from exc
        self.echo(f"  operation {operation_cid(operation)}")

    async def _activate(self) -> None:
        await self.new.procedure("com.atproto.server.activateAccount")

    async def _deactivate_old(self) -> None:
        assert self.old is not None
        await self.old.procedure("com.atproto.server.deactivateAccount", {})

    def report(self) -> list[str]:
        """The final report: what moved, and where the account lives now."""
        imported = self.state.imported or {}
        old = self.old.base if self.old is not None else f"backup {self.options.backup}"
        operation = self.state.signed_operation
        return [
            f"Moved {self.did} ({self.handle}).",
            f"  from         {old}",
            f"  to           {self.new.base}",
            f"  records      {imported.get('records', '?')} (root {imported.get('root', '?')})",
            f"  blobs        {imported.get('blobs', '?')} ({self.state.blobs_copied} uploaded)",
            f"  preferences  {self.state.preferences_copied}",
            "  identity     the DID document names the new PDS"
            + (f" (operation {operation_cid(operation)})" if operation else ""),
            "  old account  "
            + ("deactivated" if self.old is not None else "not touched (moved from a backup)"),
        ]
