"""`com.atproto.identity.*`: handles, and the PLC operations that move or change an account."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strata.identity.errors import IdentityError
from strata.net.errors import XrpcError, invalid_request
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds import mail_templates
from strata.pds.auth import ACCESS, APP_PASS_PRIVILEGED, Credentials
from strata.pds.oauth.scopes import Need
from strata.pds.plc_client import atproto_services
from strata.pds.service import Pds

PLC_TOKEN_PURPOSE = "plc_operation"


def recommended_credentials(pds: Pds, did: str) -> dict[str, Any]:
    """What this PDS needs in the account's DID document to serve it."""
    account = pds.account_or_404(did)
    return {
        "rotationKeys": [pds.secrets.plc_rotation_key.did()],
        "alsoKnownAs": [f"at://{account.handle}"] if account.handle else [],
        "verificationMethods": {"atproto": pds.stores.open(did).keypair().did()},
        "services": atproto_services(pds.config.public_url),
    }


def register(router: XrpcRouter, pds: Pds) -> None:
    any_access = pds.auth.access(allow_deactivated=True, oauth=Need.ANY)
    privileged = pds.auth.access(scopes=(ACCESS, APP_PASS_PRIVILEGED), allow_deactivated=True)

    @router.query("com.atproto.identity.resolveHandle")
    async def resolve_handle(call: Call[None]) -> web.Response:
        handle = call.params["handle"].lower()
        account = pds.accounts.by_handle(handle)
        if account is not None:
            return json_response({"did": account.did})
        try:
            found = await pds.resolver.resolve_handle(handle)
        except IdentityError as exc:
            raise XrpcError(400, "HandleNotFound", f"Unable to resolve handle: {exc}") from exc
        if found is None:
            raise XrpcError(400, "HandleNotFound", "Unable to resolve handle")
        return json_response({"did": found.value})

    @router.procedure(
        "com.atproto.identity.updateHandle", auth=pds.auth.access(oauth=Need.IDENTITY)
    )
    async def update_handle(call: Call[Credentials]) -> web.Response:
        did = call.auth.did
        requested = str(call.body["handle"]).lower()
        account = pds.account_or_404(did)
        if requested != account.handle:
            handle = pds.check_new_handle(requested)
            if not pds.own_domain(handle) and not await pds.external_handle_points_to(handle, did):
                raise invalid_request("External handle did not resolve to DID")
        await pds.update_handle(did, requested)
        return web.Response(status=200)

    @router.query("com.atproto.identity.getRecommendedDidCredentials", auth=any_access)
    async def get_recommended(call: Call[Credentials]) -> web.Response:
        return json_response(recommended_credentials(pds, call.auth.did))

    @router.procedure("com.atproto.identity.requestPlcOperationSignature", auth=privileged)
    async def request_signature(call: Call[Credentials]) -> web.Response:
        account = pds.account_or_404(call.auth.did)
        await pds.mail_code(account, PLC_TOKEN_PURPOSE, mail_templates.plc_operation)
        return web.Response(status=200)

    @router.procedure("com.atproto.identity.signPlcOperation", auth=privileged)
    async def sign_plc_operation(call: Call[Credentials]) -> web.Response:
        did = call.auth.did
        body = call.body or {}
        token = body.get("token")
        if not token:
            raise invalid_request("email confirmation token required to sign PLC operations")
        refused = pds.accounts.take_email_token(PLC_TOKEN_PURPOSE, did, token)
        if refused is not None:
            raise XrpcError(
                400, "InvalidToken" if "invalid" in refused else "ExpiredToken", refused
            )
        fields = ("rotationKeys", "alsoKnownAs", "verificationMethods", "services")
        changes = {f: body[f] for f in fields if body.get(f) is not None}
        operation = await pds.sign_plc_update(did, changes)
        return json_response({"operation": operation})

    @router.procedure("com.atproto.identity.submitPlcOperation", auth=privileged)
    async def submit_plc_operation(call: Call[Credentials]) -> web.Response:
        did = call.auth.did
        op = call.body["operation"]
        wanted = recommended_credentials(pds, did)
        if not isinstance(op, dict) or op.get("type") != "plc_operation":
            raise invalid_request("Operation must be a plc_operation")
        if wanted["rotationKeys"][0] not in op.get("rotationKeys", []):
            raise invalid_request("Rotation keys do not include server's rotation key")
        pds_service = (op.get("services") or {}).get("atproto_pds") or {}
        if pds_service.get("endpoint") != pds.config.public_url:
            raise invalid_request("Incorrect endpoint on atproto_pds service")
        if (op.get("verificationMethods") or {}).get("atproto") != wanted["verificationMethods"][
            "atproto"
        ]:
            raise invalid_request("Incorrect signing key")
        if wanted["alsoKnownAs"] and wanted["alsoKnownAs"][0] not in op.get("alsoKnownAs", []):
            raise invalid_request("Incorrect handle in alsoKnownAs")
        await pds.submit_plc(did, op)
        pds.sequencer.identity(did, pds.account_or_404(did).handle)
        return web.Response(status=200)
