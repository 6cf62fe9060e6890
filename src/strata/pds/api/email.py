"""`com.atproto.server.*` methods about the account's email: confirming the address, changing
it, and resetting a forgotten password with a code mailed to it.

Each code is a one-time token (`XXXXX-XXXXX`, 15 minutes) mailed by `Pds.mail_code`. As in
the reference PDS, confirming works with any session (app passwords included) but with no OAuth
token (the transitional scopes do not grant managing the email), changing the address needs a
session of the account's own password, and the password reset needs none; the methods that send
mail have rate limits of their own.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Final

from aiohttp import web

from strata.net.errors import XrpcError, invalid_request
from strata.net.logs import log_event
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds import mail_templates
from strata.pds.auth import ACCESS, Credentials
from strata.pds.oauth.scopes import Need
from strata.pds.passwords import MAX_PASSWORD_LENGTH, hash_password
from strata.pds.ratelimit import Limit
from strata.pds.service import Pds

log = logging.getLogger("strata.pds")

CONFIRM_EMAIL: Final = "confirm_email"
UPDATE_EMAIL: Final = "update_email"
RESET_PASSWORD: Final = "reset_password"

HOUR: Final = 3600
DAY: Final = 86400
# Per client address: the caller has no session.
PASSWORD_RESET_REQUESTS: Final = (
    Limit("requestPasswordReset-hour", 15, HOUR),
    Limit("requestPasswordReset-day", 50, DAY),
)
PASSWORD_RESETS: Final = (Limit("resetPassword", 50, 300),)

UNSUPPORTED_EMAIL: Final = "This email address is not supported, please use a different email."
EMAIL_IN_USE: Final = "This email address is already in use, please use a different email."

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u00a0-\U0010ffff-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(\.{_ATOM})*")
_LABEL_CHAR = r"A-Za-z0-9\u00a0-\U0010ffff"
_DOMAIN_LABEL = re.compile(rf"[{_LABEL_CHAR}]([{_LABEL_CHAR}-]*[{_LABEL_CHAR}])?")


def mail_limits(method: str) -> tuple[Limit, Limit]:
    """The limits of a method that mails the caller a code, per account: 5 an hour, 15 a day."""
    return Limit(f"{method}-hour", 5, HOUR), Limit(f"{method}-day", 15, DAY)


def supported_email(address: str) -> bool:
    """Whether `address` is one the PDS takes: `local@domain` within SMTP's sizes, a dot-atom
    local part, and a domain name of two labels or more under an alphabetic top level (no
    quoted local parts, no address literals)."""
    local, at, domain = address.rpartition("@")
    if not at or len(address) > 254 or len(local) > 64:
        return False
    labels = domain.split(".")
    tld = labels[-1]
    return (
        _LOCAL_PART.fullmatch(local) is not None
        and len(labels) >= 2
        and all(len(label) <= 63 and _DOMAIN_LABEL.fullmatch(label) for label in labels)
        and (tld.isalpha() or tld.lower().startswith("xn--"))
    )


def token_refused(reason: str) -> XrpcError:
    """The reference's error for a token `check_email_token` refused."""
    return XrpcError(400, "ExpiredToken" if "expired" in reason else "InvalidToken", reason)


def register(router: XrpcRouter, pds: Pds) -> None:
    any_session = pds.auth.access(allow_deactivated=True, oauth=Need.ACCOUNT)
    full_access = pds.auth.access(scopes=(ACCESS,), allow_deactivated=True)

    @router.procedure("com.atproto.server.requestEmailConfirmation", auth=any_session)
    async def request_email_confirmation(call: Call[Credentials]) -> web.Response:
        did = call.auth.did
        pds.rate_limits.charge(call.request, mail_limits("requestEmailConfirmation"), did)
        await pds.mail_code(pds.account_or_404(did), CONFIRM_EMAIL, mail_templates.confirm_email)
        return web.Response(status=200)

    @router.procedure("com.atproto.server.confirmEmail", auth=any_session)
    async def confirm_email(call: Call[Credentials]) -> web.Response:
        did = call.auth.did
        account = pds.account_or_404(did)
        if account.email != call.body["email"].lower():
            raise XrpcError(400, "InvalidEmail", "invalid email")
        refused = pds.accounts.check_email_token(CONFIRM_EMAIL, did, call.body["token"])
        if refused is not None:
            raise token_refused(refused)
        pds.accounts.confirm_email(did, CONFIRM_EMAIL)
        log_event(log, "email confirmed", did=did)
        return web.Response(status=200)

    @router.procedure("com.atproto.server.requestPasswordReset")
    async def request_password_reset(call: Call[None]) -> web.Response:
        pds.rate_limits.charge(call.request, PASSWORD_RESET_REQUESTS, call.request.remote or "")
        account = pds.accounts.by_email(call.body["email"])
        # Refused, not answered as if sent: the reference does the same.
        if account is None or not account.email:
            raise invalid_request("account does not have an email address")
        handle = account.handle or account.email
        await pds.mail_code(
            account, RESET_PASSWORD, lambda code: mail_templates.reset_password(code, handle)
        )
        return web.Response(status=200)

    @router.procedure("com.atproto.server.resetPassword")
    async def reset_password(call: Call[None]) -> web.Response:
        pds.rate_limits.charge(call.request, PASSWORD_RESETS, call.request.remote or "")
        token, password = call.body["token"], call.body["password"]
        if not password or len(password) > MAX_PASSWORD_LENGTH:
            raise invalid_request("Invalid password length.")
        did = pds.accounts.email_token_did(RESET_PASSWORD, token)
        if did is None:
            raise token_refused("Token is invalid")
        refused = pds.accounts.check_email_token(RESET_PASSWORD, did, token)
        if refused is not None:
            raise token_refused(refused)
        password_hash = await asyncio.to_thread(hash_password, password)
        pds.accounts.reset_password(did, password_hash, RESET_PASSWORD)
        log_event(log, "password reset", did=did)
        return web.Response(status=200)

    @router.procedure("com.atproto.server.requestEmailUpdate", auth=full_access)
    async def request_email_update(call: Call[Credentials]) -> web.Response:
        did = call.auth.did
        pds.rate_limits.charge(call.request, mail_limits("requestEmailUpdate"), did)
        account = pds.account_or_404(did)
        if not account.email:
            raise invalid_request("account does not have an email address")
        # A confirmed address is changed only with a code mailed to it.
        token_required = account.email_confirmed_at is not None
        if token_required:
            await pds.mail_code(account, UPDATE_EMAIL, mail_templates.update_email)
        return json_response({"tokenRequired": token_required})

    @router.procedure("com.atproto.server.updateEmail", auth=full_access)
    async def update_email(call: Call[Credentials]) -> web.Response:
        did = call.auth.did
        email: str = call.body["email"]
        if not supported_email(email):
            raise invalid_request(UNSUPPORTED_EMAIL)
        account = pds.account_or_404(did)
        token = call.body.get("token")
        if not token and account.email_confirmed_at is not None:
            raise XrpcError(400, "TokenRequired", "confirmation token required")
        if token:
            refused = pds.accounts.check_email_token(UPDATE_EMAIL, did, token)
            if refused is not None:
                raise token_refused(refused)
        holder = pds.accounts.by_email(email)
        if holder is not None and holder.did != did:
            raise invalid_request(EMAIL_IN_USE)
        pds.accounts.set_email(did, email)
        log_event(log, "email updated", did=did)
        return web.Response(status=200)
