"""`com.atproto.admin.*`: the operator's tools, behind HTTP basic auth with the admin password."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from strata.core.syntax.dates import format_millis
from strata.net.errors import invalid_request
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds.accounts import Account
from strata.pds.api.server import invite_view
from strata.pds.passwords import hash_password
from strata.pds.service import Pds


def account_view(pds: Pds, account: Account) -> dict[str, Any]:
    """`com.atproto.admin.defs#accountView`."""
    out: dict[str, Any] = {
        "did": account.did,
        "handle": account.handle or "handle.invalid",
        "indexedAt": format_millis(account.created_at),
        "invitesDisabled": account.invites_disabled,
        "invites": [invite_view(c) for c in pds.accounts.invite_codes(account.did)],
    }
    if account.email:
        out["email"] = account.email
    if account.email_confirmed_at is not None:
        out["emailConfirmedAt"] = format_millis(account.email_confirmed_at)
    if account.deactivated_at is not None:
        out["deactivatedAt"] = format_millis(account.deactivated_at)
    return out


def _subject_did(subject: dict[str, Any]) -> str:
    if "did" in subject:
        return str(subject["did"])
    uri = str(subject.get("uri", ""))
    if uri.startswith("at://"):
        return uri[5:].split("/", 1)[0]
    raise invalid_request("subject must name a repository, a record or a blob")


def register(router: XrpcRouter, pds: Pds) -> None:
    admin = pds.auth.admin

    @router.query("com.atproto.admin.getAccountInfo", auth=admin)
    async def get_account_info(call: Call[Any]) -> web.Response:
        return json_response(account_view(pds, pds.account_or_404(call.params["did"])))

    @router.query("com.atproto.admin.getAccountInfos", auth=admin)
    async def get_account_infos(call: Call[Any]) -> web.Response:
        found = [pds.accounts.get(did) for did in call.params["dids"]]
        return json_response({"infos": [account_view(pds, a) for a in found if a is not None]})

    @router.query("com.atproto.admin.getSubjectStatus", auth=admin)
    async def get_subject_status(call: Call[Any]) -> web.Response:
        did = call.params.get("did")
        blob = call.params.get("blob")
        if did is None:
            raise invalid_request("Currently, only repositories and blobs are supported")
        account = pds.account_or_404(did)
        if blob is not None:
            row = pds.stores.open(did).blob(blob)
            ref = row.takedown_ref if row is not None else None
            subject: dict[str, Any] = {
                "$type": "com.atproto.admin.defs#repoBlobRef",
                "did": did,
                "cid": blob,
            }
        else:
            ref = account.takedown_ref
            subject = {"$type": "com.atproto.admin.defs#repoRef", "did": did}
        takedown: dict[str, Any] = {"applied": ref is not None}
        if ref is not None:
            takedown["ref"] = ref
        return json_response({"subject": subject, "takedown": takedown})

    @router.procedure("com.atproto.admin.updateSubjectStatus", auth=admin)
    async def update_subject_status(call: Call[Any]) -> web.Response:
        subject = call.body["subject"]
        takedown = call.body.get("takedown")
        did = _subject_did(subject)
        if takedown is not None:
            ref = (takedown.get("ref") or "takedown") if takedown.get("applied") else None
            if subject.get("$type", "").endswith("#repoBlobRef"):
                pds.stores.open(did).set_blob_takedown(subject["cid"], ref)
            else:
                pds.set_takedown(did, ref)
        return json_response({"subject": subject, "takedown": takedown})

    @router.query("com.atproto.admin.getInviteCodes", auth=admin)
    async def get_invite_codes(call: Call[Any]) -> web.Response:
        limit = call.params.get("limit", 100)
        codes = pds.accounts.invite_codes()
        cursor = call.params.get("cursor")
        if cursor is not None:
            codes = [c for c in codes if c.code > cursor]
        page = codes[:limit]
        out: dict[str, Any] = {"codes": [invite_view(c) for c in page]}
        if len(page) == limit:
            out["cursor"] = page[-1].code
        return json_response(out)

    @router.procedure("com.atproto.admin.disableInviteCodes", auth=admin)
    async def disable_invite_codes(call: Call[Any]) -> web.Response:
        accounts = call.body.get("accounts") or []
        if "admin" in accounts:
            raise invalid_request("cannot disable admin invite codes")
        pds.accounts.disable_invite_codes(call.body.get("codes") or [], accounts)
        return web.Response(status=200)

    @router.procedure("com.atproto.admin.disableAccountInvites", auth=admin)
    async def disable_account_invites(call: Call[Any]) -> web.Response:
        pds.accounts.set_invites_disabled(call.body["account"], True)
        return web.Response(status=200)

    @router.procedure("com.atproto.admin.enableAccountInvites", auth=admin)
    async def enable_account_invites(call: Call[Any]) -> web.Response:
        pds.accounts.set_invites_disabled(call.body["account"], False)
        return web.Response(status=200)

    @router.procedure("com.atproto.admin.deleteAccount", auth=admin)
    async def delete_account(call: Call[Any]) -> web.Response:
        pds.account_or_404(call.body["did"])
        pds.delete_account(call.body["did"])
        return web.Response(status=200)

    @router.procedure("com.atproto.admin.updateAccountHandle", auth=admin)
    async def update_account_handle(call: Call[Any]) -> web.Response:
        did, handle = call.body["did"], str(call.body["handle"]).lower()
        if pds.account_or_404(did).handle != handle:
            pds.check_new_handle(handle)
        await pds.update_handle(did, handle)
        return web.Response(status=200)

    @router.procedure("com.atproto.admin.updateAccountPassword", auth=admin)
    async def update_account_password(call: Call[Any]) -> web.Response:
        did = call.body["did"]
        pds.account_or_404(did)
        pds.accounts.set_password(
            did, await asyncio.to_thread(hash_password, call.body["password"])
        )
        return web.Response(status=200)
