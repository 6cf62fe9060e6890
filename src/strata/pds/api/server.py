"""`com.atproto.server.*`: accounts, sessions, app passwords, service auth, invite codes."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import Any

from aiohttp import web

from strata.core.jwt import JwtError, service_jwt_issuer, verify_service_jwt
from strata.core.syntax.dates import format_millis, parse_millis
from strata.net.errors import XrpcError, invalid_request
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds import mail_templates
from strata.pds.accounts import Account, now_ms
from strata.pds.api.email import mail_limits
from strata.pds.auth import ACCESS, APP_PASS, APP_PASS_PRIVILEGED, OAUTH, Credentials, bearer
from strata.pds.oauth.scopes import EMAIL, Need, ScopeRefused, check
from strata.pds.passwords import (
    MAX_PASSWORD_LENGTH,
    hash_password,
    new_app_password,
    verify_password,
)
from strata.pds.service import Pds

APP_PASSWORD_SHAPE = re.compile(r"^[a-z2-7]{4}(-[a-z2-7]{4}){3}$")
SERVICE_AUTH_MAX_LIFETIME = 3600


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or not password:
        raise invalid_request("Password is required")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise invalid_request("Password too long")
    return password


def _status_fields(account: Account) -> dict[str, Any]:
    out: dict[str, Any] = {"active": account.active}
    if account.status is not None:
        out["status"] = account.status
    return out


async def session_answer(
    pds: Pds,
    account: Account,
    scope: str,
    app_password: str | None = None,
    jti: str | None = None,
) -> dict[str, Any]:
    """What createAccount, createSession and refreshSession answer: tokens and the account."""
    session = pds.tokens.issue(account.did, scope, jti)
    pds.accounts.store_refresh_token(
        session.jti, account.did, session.refresh_expires_at, app_password
    )
    return {
        "accessJwt": session.access_jwt,
        "refreshJwt": session.refresh_jwt,
        **await account_answer(pds, account),
    }


async def account_answer(pds: Pds, account: Account) -> dict[str, Any]:
    """The account as getSession describes it, with its DID document when resolvable."""
    out: dict[str, Any] = {
        "handle": account.handle or "handle.invalid",
        "did": account.did,
        "email": account.email,
        "emailConfirmed": account.email_confirmed_at is not None,
        "emailAuthFactor": False,
        **_status_fields(account),
    }
    doc = await pds.did_document_json(account.did)
    if doc is not None:
        out["didDoc"] = doc
    return out


def register(router: XrpcRouter, pds: Pds) -> None:
    auth = pds.auth
    full_access = auth.access(scopes=(ACCESS,), allow_deactivated=True)
    any_access = auth.access(allow_deactivated=True, oauth=Need.ANY)
    service_auth = auth.access(allow_deactivated=True, oauth=Need.RPC)
    session_access = auth.access(allow_deactivated=True, oauth=Need.NONE)

    @router.query("com.atproto.server.describeServer")
    async def describe_server(call: Call[None]) -> web.Response:
        return json_response(
            {
                "did": pds.config.service_did,
                "availableUserDomains": list(pds.config.handle_domains),
                "inviteCodeRequired": pds.config.invite_required,
                "phoneVerificationRequired": False,
                "blobUploadLimit": pds.config.blob_upload_limit,
                "links": {},
                "contact": {},
            }
        )

    async def migrating_did(call: Call[None], did: str) -> str:
        """The DID of an account moving here, proven by a service token its key signed."""
        try:
            token = bearer(call.request)
            issuer = service_jwt_issuer(token)
            if issuer != did:
                raise XrpcError(401, "AuthenticationRequired", "Requester does not match DID")
            doc = await pds.did_document(did)
            key = doc.signing_key() if doc is not None else None
            if key is None:
                raise XrpcError(401, "AuthenticationRequired", "could not resolve iss did")
            verify_service_jwt(
                token, key, pds.config.service_did, "com.atproto.server.createAccount", time.time()
            )
        except JwtError as exc:
            raise XrpcError(401, exc.name, str(exc)) from exc
        return did

    @router.procedure("com.atproto.server.createAccount")
    async def create_account(call: Call[None]) -> web.Response:
        body = call.body
        did = body.get("did")
        if did is not None:
            await migrating_did(call, did)
        email = body.get("email")
        if did is None and not email:
            raise invalid_request("Email is required")
        if email and pds.accounts.by_email(email) is not None:
            raise invalid_request(f"Email already taken: {email}")
        password = _check_password(body.get("password"))
        invite = body.get("inviteCode")
        if pds.config.invite_required:
            if not invite:
                raise XrpcError(400, "InvalidInviteCode", "No invite code provided")
            if not pds.accounts.invite_available(invite):
                raise XrpcError(400, "InvalidInviteCode", "Provided invite code not available")
        handle = pds.check_new_handle(body["handle"])
        if not pds.own_domain(handle) and (
            did is None or not await pds.external_handle_points_to(handle, did)
        ):
            raise XrpcError(400, "UnsupportedDomain", "External handle did not resolve to DID")
        password_hash = await asyncio.to_thread(hash_password, password)
        did = await pds.create_account(
            handle, email, password_hash, did, invite if pds.config.invite_required else None
        )
        account = pds.account_or_404(did)
        answer = await session_answer(pds, account, ACCESS)
        return json_response(
            {
                k: answer[k]
                for k in ("accessJwt", "refreshJwt", "handle", "did", "didDoc")
                if k in answer
            }
        )

    @router.procedure("com.atproto.server.createSession")
    async def create_session(call: Call[None]) -> web.Response:
        identifier = str(call.body["identifier"]).strip().lower()
        password = _check_password(call.body.get("password"))
        ip = call.request.remote or "unknown"
        pds.login_limiter.check(identifier, ip)
        account = pds.accounts.lookup(identifier)
        scope: str | None = None
        app_password: str | None = None
        if account is not None:
            if await asyncio.to_thread(verify_password, password, account.password_hash):
                scope = ACCESS
            elif APP_PASSWORD_SHAPE.match(password):
                for name, stored, is_privileged in pds.accounts.app_password_hashes(account.did):
                    if await asyncio.to_thread(verify_password, password, stored):
                        scope = APP_PASS_PRIVILEGED if is_privileged else APP_PASS
                        app_password = name
                        break
        if account is None or scope is None:
            pds.login_limiter.failed(ip)
            raise XrpcError(401, "AuthenticationRequired", "Invalid identifier or password")
        if account.takedown_ref is not None and not call.body.get("allowTakendown"):
            raise XrpcError(401, "AccountTakedown", "Account has been taken down")
        return json_response(await session_answer(pds, account, scope, app_password))

    @router.query("com.atproto.server.getSession", auth=any_access)
    async def get_session(call: Call[Credentials]) -> web.Response:
        answer = await account_answer(pds, pds.account_or_404(call.auth.did))
        if call.auth.scope == OAUTH and EMAIL not in call.auth.oauth_scopes:
            for private in ("email", "emailConfirmed", "emailAuthFactor"):
                answer.pop(private, None)
        return json_response(answer)

    @router.procedure("com.atproto.server.refreshSession", auth=auth.refresh)
    async def refresh_session(call: Call[Credentials]) -> web.Response:
        assert call.auth.token_id is not None
        stored = pds.accounts.refresh_token(call.auth.token_id)
        if stored is None or stored.expires_at <= now_ms():
            raise XrpcError(400, "ExpiredToken", "Token has been revoked")
        account = pds.account_or_404(stored.did)
        if account.takedown_ref is not None:
            raise XrpcError(400, "AccountTakedown", "Account has been taken down")
        scope = ACCESS
        if stored.app_password_name is not None:
            scope = APP_PASS_PRIVILEGED if stored.privileged else APP_PASS
        next_id = pds.accounts.rotate_refresh_token(stored, secrets.token_urlsafe(24))
        return json_response(
            await session_answer(pds, account, scope, stored.app_password_name, jti=next_id)
        )

    @router.procedure("com.atproto.server.deleteSession", auth=auth.refresh)
    async def delete_session(call: Call[Credentials]) -> web.Response:
        assert call.auth.token_id is not None
        pds.accounts.revoke_refresh_token(call.auth.token_id)
        return web.Response(status=200)

    @router.procedure("com.atproto.server.createAppPassword", auth=full_access)
    async def create_app_password(call: Call[Credentials]) -> web.Response:
        name = call.body["name"]
        is_privileged = bool(call.body.get("privileged", False))
        if any(p.name == name for p in pds.accounts.list_app_passwords(call.auth.did)):
            raise invalid_request("could not create app-specific password")
        password = new_app_password()
        password_hash = await asyncio.to_thread(hash_password, password)
        created = pds.accounts.add_app_password(call.auth.did, name, password_hash, is_privileged)
        return json_response(
            {
                "name": name,
                "password": password,
                "createdAt": format_millis(created),
                "privileged": is_privileged,
            }
        )

    @router.query("com.atproto.server.listAppPasswords", auth=full_access)
    async def list_app_passwords(call: Call[Credentials]) -> web.Response:
        return json_response(
            {
                "passwords": [
                    {
                        "name": p.name,
                        "createdAt": format_millis(p.created_at),
                        "privileged": p.privileged,
                    }
                    for p in pds.accounts.list_app_passwords(call.auth.did)
                ]
            }
        )

    @router.procedure("com.atproto.server.revokeAppPassword", auth=full_access)
    async def revoke_app_password(call: Call[Credentials]) -> web.Response:
        pds.accounts.revoke_app_password(call.auth.did, call.body["name"])
        return web.Response(status=200)

    @router.query("com.atproto.server.getServiceAuth", auth=service_auth)
    async def get_service_auth(call: Call[Credentials]) -> web.Response:
        now = int(time.time())
        exp = call.params.get("exp")
        lxm = call.params.get("lxm")
        if exp is not None:
            if exp <= now:
                raise XrpcError(400, "BadExpiration", "expiration is in past")
            if exp - now > SERVICE_AUTH_MAX_LIFETIME:
                raise XrpcError(
                    400,
                    "BadExpiration",
                    "cannot request a token with an expiration more than an hour in the future",
                )
        if lxm is None and call.auth.app_password:
            raise XrpcError(400, "InvalidRequest", "App passwords must name the method (lxm)")
        if call.auth.scope == OAUTH:
            try:
                check(call.auth.oauth_scopes, Need.RPC, lxm or "*")
            except ScopeRefused as exc:
                raise XrpcError(403, exc.error, exc.message) from exc
        if call.auth.scope in (APP_PASS, OAUTH) and lxm in PRIVILEGED_METHODS:
            raise XrpcError(
                400, "InvalidRequest", f"insufficient access to request a token for {lxm}"
            )
        token = pds.service_jwt(call.auth.did, call.params["aud"], lxm, exp)
        return json_response({"token": token})

    @router.query("com.atproto.server.checkAccountStatus", auth=any_access)
    async def check_account_status(call: Call[Credentials]) -> web.Response:
        did = call.auth.did
        account = pds.account_or_404(did)
        store = pds.stores.open(did)
        root = store.root()
        expected, imported = store.blob_counts()
        valid_did = pds.document_problem(did, await pds.did_document(did)) is None
        return json_response(
            {
                "activated": account.deactivated_at is None,
                "validDid": valid_did,
                "repoCommit": str(root[0]) if root else "",
                "repoRev": root[1] if root else "",
                "repoBlocks": len(store.blocks),
                "indexedRecords": store.record_count(),
                "privateStateValues": len(store.preferences()),
                "expectedBlobs": expected,
                "importedBlobs": imported,
            }
        )

    @router.procedure("com.atproto.server.activateAccount", auth=full_access)
    async def activate_account(call: Call[Credentials]) -> web.Response:
        did = call.auth.did
        pds.resolver.forget(did)
        problem = pds.document_problem(did, await pds.did_document(did))
        if problem is not None:
            raise invalid_request(problem)
        pds.activate(did)
        return web.Response(status=200)

    @router.procedure("com.atproto.server.deactivateAccount", auth=full_access)
    async def deactivate_account(call: Call[Credentials]) -> web.Response:
        delete_after = (call.body or {}).get("deleteAfter")
        pds.deactivate(call.auth.did, parse_millis(delete_after) if delete_after else None)
        return web.Response(status=200)

    @router.procedure("com.atproto.server.requestAccountDelete", auth=full_access)
    async def request_account_delete(call: Call[Credentials]) -> web.Response:
        pds.rate_limits.charge(call.request, mail_limits("requestAccountDelete"), call.auth.did)
        account = pds.account_or_404(call.auth.did)
        await pds.mail_code(account, "delete_account", mail_templates.delete_account)
        return web.Response(status=200)

    @router.procedure("com.atproto.server.deleteAccount")
    async def delete_account(call: Call[None]) -> web.Response:
        did = call.body["did"]
        account = pds.accounts.get(did)
        password = _check_password(call.body.get("password"))
        if account is None or not await asyncio.to_thread(
            verify_password, password, account.password_hash
        ):
            raise XrpcError(401, "AuthenticationRequired", "Invalid did or password")
        refused = pds.accounts.take_email_token("delete_account", did, call.body["token"])
        if refused is not None:
            raise XrpcError(
                400, "InvalidToken" if "invalid" in refused else "ExpiredToken", refused
            )
        pds.delete_account(did)
        return web.Response(status=200)

    @router.procedure("com.atproto.server.createInviteCode", auth=auth.admin)
    async def create_invite_code(call: Call[Any]) -> web.Response:
        for_account = call.body.get("forAccount") or "admin"
        (code,) = pds.accounts.create_invite_codes(
            for_account, "admin", 1, call.body["useCount"], pds.config.hostname
        )
        return json_response({"code": code})

    @router.procedure("com.atproto.server.createInviteCodes", auth=auth.admin)
    async def create_invite_codes(call: Call[Any]) -> web.Response:
        accounts = call.body.get("forAccounts") or ["admin"]
        out = [
            {
                "account": account,
                "codes": pds.accounts.create_invite_codes(
                    account,
                    "admin",
                    call.body["codeCount"],
                    call.body["useCount"],
                    pds.config.hostname,
                ),
            }
            for account in accounts
        ]
        return json_response({"codes": out})

    @router.query("com.atproto.server.getAccountInviteCodes", auth=session_access)
    async def get_account_invite_codes(call: Call[Credentials]) -> web.Response:
        return json_response(
            {"codes": [invite_view(c) for c in pds.accounts.invite_codes(call.auth.did)]}
        )


PRIVILEGED_METHODS = frozenset(
    {
        "com.atproto.server.createAccount",
        "com.atproto.identity.requestPlcOperationSignature",
        "com.atproto.identity.signPlcOperation",
        "com.atproto.server.deactivateAccount",
    }
)


def invite_view(code: Any) -> dict[str, Any]:
    """`com.atproto.server.defs#inviteCode`."""
    return {
        "code": code.code,
        "available": code.available_uses,
        "disabled": code.disabled,
        "forAccount": code.for_account,
        "createdBy": code.created_by,
        "createdAt": format_millis(code.created_at),
        "uses": [{"usedBy": by, "usedAt": format_millis(at)} for by, at in code.uses],
    }
