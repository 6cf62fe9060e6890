"""The PDS's email, end to end over HTTP: codes mailed through a real SMTP server on loopback
(aiosmtpd; plain, STARTTLS with a private CA, TLS from the start) or left in the outbox, and the
methods that use them (confirmEmail, updateEmail, resetPassword, signPlcOperation,
deleteAccount).

Every refusal is checked for the reference PDS's error name and status, and for changing
nothing: the account's email, its confirmation and its password stay as they were, and the
code still works afterwards where the reference keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client import REGISTRY

from strata.pds import mail
from strata.pds.accounts import EMAIL_TOKEN_LIFETIME_MS
from strata.pds.api.email import supported_email
from strata.pds.cli import pds_command
from strata.pds.mail import OUTBOX, SmtpServer, outbox_code
from strata.pds.service import Pds
from tests.pds.oauth_client import loopback_client_id, network_with_account
from tests.services import free_port, running_pds, running_plc

PASSWORD = "correct horse battery"
CODE = re.compile(r"code: ([A-Z2-7]{5}-[A-Z2-7]{5})\s")
SMTP_USER, SMTP_PASSWORD = "strata@mail", "s3cret:/pass"


# An SMTP server on loopback


@dataclass
class Received:
    """One mail as the SMTP server took it."""

    sender: str
    recipients: list[str]
    message: Message
    tls: bool
    login: bytes | None

    @property
    def text(self) -> str:
        assert isinstance(self.message, EmailMessage)
        return str(self.message.get_content())

    @property
    def code(self) -> str:
        found = CODE.search(self.text)
        assert found is not None, self.text
        return found.group(1)


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every mail it is given."""

    port: int = 0
    mails: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message_from_bytes(envelope.content, policy=policy.default),
                session.ssl is not None,
                session.auth_data.login if session.auth_data else None,
            )
        )
        return "250 Message accepted for delivery"

    def last(self) -> Received:
        assert self.mails, "no mail received"
        return self.mails[-1]


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, auth_data=data)


@contextlib.asynccontextmanager
async def smtp_server(**options: Any) -> AsyncIterator[Inbox]:
    """An SMTP server on 127.0.0.1 (options go to aiosmtpd's Controller)."""
    inbox = Inbox(port=free_port())
    controller = Controller(
        inbox, hostname="127.0.0.1", port=inbox.port, ready_timeout=5.0, **options
    )
    await asyncio.to_thread(controller.start)
    try:
        yield inbox
    finally:
        await asyncio.to_thread(controller.stop)


@dataclass
class Tls:
    ca_file: Path
    server: ssl.SSLContext


def make_tls(folder: Path) -> Tls:
    """A private CA and a certificate it signed for localhost and 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: str, key: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
        else:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("Strata test CA", "Strata test CA", ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build("localhost", "Strata test CA", key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(leaf.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "server.pem", folder / "server.key")
    return Tls(folder / "ca.pem", server)


# The PDS and its client


@dataclass
class Reply:
    status: int
    json: Any

    @property
    def error(self) -> str | None:
        return self.json.get("error") if isinstance(self.json, dict) else None


@dataclass
class Env:
    http: aiohttp.ClientSession
    url: str
    pds: Pds
    data_dir: Path

    async def call(
        self, nsid: str, body: Any = None, token: str | None = None, query: bool = False
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.url}/xrpc/{nsid}"
        request = (
            self.http.get(url, headers=headers)
            if query
            else self.http.post(url, json=body, headers=headers)
        )
        async with request as resp:
            data = await resp.read()
            return Reply(resp.status, await resp.json() if data else None)

    async def ok(self, nsid: str, body: Any = None, token: str | None = None) -> Any:
        reply = await self.call(nsid, body, token)
        assert reply.status == 200, (nsid, reply)
        return reply.json

    async def create_account(self, handle: str, email: str) -> dict[str, Any]:
        return await self.ok(  # type: ignore[no-any-return]
            "com.atproto.server.createAccount",
            {"handle": handle, "email": email, "password": PASSWORD},
        )

    async def login(self, identifier: str, password: str = PASSWORD) -> Reply:
        return await self.call(
            "com.atproto.server.createSession", {"identifier": identifier, "password": password}
        )

    async def session(self, token: str) -> dict[str, Any]:
        reply = await self.call("com.atproto.server.getSession", token=token, query=True)
        assert reply.status == 200, reply
        return reply.json  # type: ignore[no-any-return]

    def tokens(self) -> int:
        return int(self.pds.accounts.conn.execute("SELECT count(*) FROM email_token").fetchone()[0])

    def age_tokens(self) -> None:
        """Make every code mailed so far older than its lifetime."""
        with self.pds.accounts.transaction() as conn:
            conn.execute(
                "UPDATE email_token SET requested_at = requested_at - ?",
                (EMAIL_TOKEN_LIFETIME_MS + 1000,),
            )


@contextlib.asynccontextmanager
async def pds_env(data_dir: Path, **config: Any) -> AsyncIterator[Env]:
    """A directory and a PDS (configured with `config`) on loopback, and an HTTP client."""
    async with (
        running_plc(data_dir / "plc") as plc,
        running_pds(data_dir / "pds", plc.url, **config) as pds,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
    ):
        yield Env(http, pds.url, pds.pds, data_dir / "pds")


def failures(transport: str, purpose: str) -> float:
    labels = {"transport": transport, "purpose": purpose}
    return REGISTRY.get_sample_value("strata_pds_mail_failures_total", labels) or 0.0


@contextlib.contextmanager
def mail_log() -> Iterator[list[logging.LogRecord]]:
    """The records the mail module logs meanwhile."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("strata.pds.mail")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# Confirming the address


async def test_confirm_email_by_smtp(tmp_path: Path) -> None:
    async with (
        smtp_server() as inbox,
        pds_env(tmp_path, smtp_url=f"smtp://127.0.0.1:{inbox.port}") as env,
    ):
        alice = await env.create_account("alice.test", "Alice@Example.com")
        assert (await env.session(alice["accessJwt"]))["emailConfirmed"] is False

        # Any session may ask, an app password's too.
        app = await env.ok(
            "com.atproto.server.createAppPassword", {"name": "phone"}, alice["accessJwt"]
        )
        phone = (await env.login("alice.test", app["password"])).json["accessJwt"]
        await env.ok("com.atproto.server.requestEmailConfirmation", None, phone)
        received = inbox.last()
        assert received.recipients == ["alice@example.com"]
        assert received.sender == "noreply@localhost"
        assert received.message["From"] == "noreply@localhost"
        assert received.message["To"] == "alice@example.com"
        assert received.message["Subject"] == "Email Confirmation"
        assert received.message["Message-ID"].endswith("@localhost>")
        assert not received.tls
        code = received.code

        no_auth = await env.call(
            "com.atproto.server.confirmEmail", {"email": "alice@example.com", "token": code}
        )
        assert (no_auth.status, no_auth.error) == (401, "AuthMissing")
        for body, status, error in [
            ({"email": "bob@example.com", "token": code}, 400, "InvalidEmail"),
            ({"email": "alice@example.com", "token": "AAAAA-BBBBB"}, 400, "InvalidToken"),
            ({"email": "alice@example.com"}, 400, "InvalidRequest"),
        ]:
            reply = await env.call("com.atproto.server.confirmEmail", body, alice["accessJwt"])
            assert (reply.status, reply.error) == (status, error), reply
        assert (await env.session(alice["accessJwt"]))["emailConfirmed"] is False

        # The address in any case, the code in lower case: as the reference takes them.
        await env.ok(
            "com.atproto.server.confirmEmail",
            {"email": "ALICE@example.com", "token": code.lower()},
            phone,
        )
        assert (await env.session(alice["accessJwt"]))["emailConfirmed"] is True
        assert (await env.login("alice@example.com")).json["emailConfirmed"] is True
        again = await env.call(
            "com.atproto.server.confirmEmail",
            {"email": "alice@example.com", "token": code},
            alice["accessJwt"],
        )
        assert (again.status, again.error) == (400, "InvalidToken")


async def test_expired_codes_change_nothing(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        alice = await env.create_account("alice.test", "alice@example.com")
        token = alice["accessJwt"]
        await env.ok("com.atproto.server.requestEmailConfirmation", None, token)
        await env.ok("com.atproto.server.requestPasswordReset", {"email": "alice@example.com"})
        confirm = outbox_code(env.data_dir, alice["did"], "confirm_email")
        reset = outbox_code(env.data_dir, alice["did"], "reset_password")
        env.age_tokens()

        reply = await env.call(
            "com.atproto.server.confirmEmail",
            {"email": "alice@example.com", "token": confirm},
            token,
        )
        assert (reply.status, reply.error) == (400, "ExpiredToken")
        assert reply.json["message"] == "Token is expired"
        reply = await env.call(
            "com.atproto.server.resetPassword", {"token": reset, "password": "new password"}
        )
        assert (reply.status, reply.error) == (400, "ExpiredToken")
        assert (await env.session(token))["emailConfirmed"] is False
        assert (await env.login("alice.test")).status == 200


# Changing the address


async def test_update_email(tmp_path: Path) -> None:
    async with (
        smtp_server() as inbox,
        pds_env(tmp_path, smtp_url=f"smtp://127.0.0.1:{inbox.port}") as env,
    ):
        alice = await env.create_account("alice.test", "alice@example.com")
        await env.create_account("bob.test", "bob@example.com")
        token = alice["accessJwt"]

        # Unconfirmed: no code is needed, and none is mailed.
        answer = await env.ok("com.atproto.server.requestEmailUpdate", None, token)
        assert answer == {"tokenRequired": False}
        assert inbox.mails == []
        await env.ok("com.atproto.server.updateEmail", {"email": "alice2@example.com"}, token)
        assert (await env.session(token))["email"] == "alice2@example.com"

        await env.ok("com.atproto.server.requestEmailConfirmation", None, token)
        await env.ok(
            "com.atproto.server.confirmEmail",
            {"email": "alice2@example.com", "token": inbox.last().code},
            token,
        )

        # Only a session of the account's password may change the address.
        app = await env.ok("com.atproto.server.createAppPassword", {"name": "phone"}, token)
        phone = (await env.login("alice.test", app["password"])).json["accessJwt"]
        for nsid, body in [
            ("com.atproto.server.requestEmailUpdate", None),
            ("com.atproto.server.updateEmail", {"email": "alice3@example.com"}),
        ]:
            reply = await env.call(nsid, body, phone)
            assert (reply.status, reply.error) == (400, "InvalidToken"), reply

        # Confirmed: the code goes to the current address.
        answer = await env.ok("com.atproto.server.requestEmailUpdate", None, token)
        assert answer == {"tokenRequired": True}
        received = inbox.last()
        assert received.recipients == ["alice2@example.com"]
        assert received.message["Subject"] == "Email Update Requested"
        code = received.code

        unsupported = "This email address is not supported, please use a different email."
        in_use = "This email address is already in use, please use a different email."
        for body, error, message in [
            ({"email": "alice3@example.com"}, "TokenRequired", "confirmation token required"),
            ({"email": "alice3@example.com", "token": "AAAAA-BBBBB"}, "InvalidToken", None),
            ({"email": "not-an-address", "token": code}, "InvalidRequest", unsupported),
            ({"email": "alice@localhost", "token": code}, "InvalidRequest", unsupported),
            ({"email": "a b@example.com", "token": code}, "InvalidRequest", unsupported),
            ({"email": "a@example.com\r\nBcc: x@example.com", "token": code}, None, unsupported),
            ({"email": "BOB@example.com", "token": code}, "InvalidRequest", in_use),
        ]:
            reply = await env.call("com.atproto.server.updateEmail", body, token)
            assert reply.status == 400, reply
            assert error is None or reply.error == error, reply
            assert message is None or reply.json["message"] == message, reply
        session = await env.session(token)
        assert (session["email"], session["emailConfirmed"]) == ("alice2@example.com", True)

        await env.ok(
            "com.atproto.server.updateEmail",
            {"email": "Alice3@Example.com", "token": code},
            token,
        )
        session = await env.session(token)
        assert (session["email"], session["emailConfirmed"]) == ("alice3@example.com", False)
        assert env.tokens() == 0


# Resetting the password


async def test_password_reset(tmp_path: Path) -> None:
    async with (
        smtp_server() as inbox,
        pds_env(tmp_path, smtp_url=f"smtp://127.0.0.1:{inbox.port}") as env,
    ):
        alice = await env.create_account("alice.test", "alice@example.com")

        # As the reference: an unknown address is refused, and nothing is mailed.
        reply = await env.call(
            "com.atproto.server.requestPasswordReset", {"email": "nobody@example.com"}
        )
        assert (reply.status, reply.error) == (400, "InvalidRequest")
        assert inbox.mails == [] and env.tokens() == 0

        await env.ok("com.atproto.server.requestPasswordReset", {"email": "ALICE@example.com"})
        received = inbox.last()
        assert received.recipients == ["alice@example.com"]
        assert received.message["Subject"] == "Password Reset Requested"
        assert "@alice.test." in received.text
        code = received.code

        for body, error in [
            ({"token": "AAAAA-BBBBB", "password": "new password"}, "InvalidToken"),
            ({"token": code, "password": "x" * 257}, "InvalidRequest"),
            ({"token": code, "password": ""}, "InvalidRequest"),
        ]:
            reply = await env.call("com.atproto.server.resetPassword", body)
            assert (reply.status, reply.error) == (400, error), reply
        assert (await env.login("alice.test")).status == 200

        await env.ok(
            "com.atproto.server.resetPassword", {"token": code.lower(), "password": "new one"}
        )
        # Every session ends, as in the reference.
        reply = await env.call("com.atproto.server.refreshSession", token=alice["refreshJwt"])
        assert (reply.status, reply.error) == (400, "ExpiredToken")
        assert (await env.login("alice.test")).status == 401
        assert (await env.login("alice.test", "new one")).status == 200
        reply = await env.call(
            "com.atproto.server.resetPassword", {"token": code, "password": "another"}
        )
        assert (reply.status, reply.error) == (400, "InvalidToken")


# The other codes, and where mail goes


async def test_plc_and_deletion_codes_by_smtp(tmp_path: Path) -> None:
    async with (
        smtp_server() as inbox,
        pds_env(tmp_path, smtp_url=f"smtp://127.0.0.1:{inbox.port}") as env,
    ):
        alice = await env.create_account("alice.test", "alice@example.com")
        token = alice["accessJwt"]
        await env.ok("com.atproto.identity.requestPlcOperationSignature", None, token)
        assert inbox.last().message["Subject"] == "PLC Update Operation Requested"
        signed = await env.ok(
            "com.atproto.identity.signPlcOperation", {"token": inbox.last().code}, token
        )
        assert signed["operation"]["type"] == "plc_operation"

        await env.ok("com.atproto.server.requestAccountDelete", None, token)
        assert inbox.last().message["Subject"] == "Account Deletion Requested"
        await env.ok(
            "com.atproto.server.deleteAccount",
            {"did": alice["did"], "password": PASSWORD, "token": inbox.last().code},
        )
        assert env.pds.accounts.get(alice["did"]) is None
        assert not list((env.data_dir / OUTBOX).glob("*"))


async def test_outbox_without_smtp(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        alice = await env.create_account("alice.test", "alice@example.com")
        did, token = alice["did"], alice["accessJwt"]

        await env.ok("com.atproto.identity.requestPlcOperationSignature", None, token)
        plc_code = outbox_code(env.data_dir, did)
        await env.ok("com.atproto.identity.signPlcOperation", {"token": plc_code}, token)

        await env.ok("com.atproto.server.requestEmailConfirmation", None, token)
        code = outbox_code(env.data_dir, did, "confirm_email")
        await env.ok(
            "com.atproto.server.confirmEmail", {"email": "alice@example.com", "token": code}, token
        )
        assert (await env.session(token))["emailConfirmed"] is True

        files = sorted((env.data_dir / OUTBOX).iterdir())
        assert [f.name.split("-", 1)[1] for f in files] == [
            f"plc_operation-{did.replace(':', '_')}.txt",
            f"confirm_email-{did.replace(':', '_')}.txt",
        ]
        text = files[0].read_text()
        assert text.startswith(
            "From: noreply@localhost\nTo: alice@example.com\n"
            "Subject: PLC Update Operation Requested\n\n"
        )
        assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)


async def test_account_without_an_address(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        alice = await env.create_account("alice.test", "alice@example.com")
        with env.pds.accounts.transaction() as conn:
            conn.execute("UPDATE account SET email = NULL")
        for nsid in (
            "com.atproto.server.requestEmailConfirmation",
            "com.atproto.server.requestEmailUpdate",
            "com.atproto.server.requestAccountDelete",
            "com.atproto.identity.requestPlcOperationSignature",
        ):
            reply = await env.call(nsid, None, alice["accessJwt"])
            assert (reply.status, reply.error) == (400, "InvalidRequest"), (nsid, reply)
            assert reply.json["message"] == "account does not have an email address"
        assert env.tokens() == 0


async def test_oauth_tokens_do_not_manage_the_email(tmp_path: Path) -> None:
    # As the reference: no transitional scope grants `account:email?action=manage`, and the
    # methods of a full session refuse OAuth altogether.
    async with network_with_account(tmp_path, "alice.test", "alice@example.com", PASSWORD) as net:
        scope = "atproto transition:generic transition:email"
        client = net.client(client_id=loopback_client_id(scope))
        access = (await client.sign_in_fully("alice.test", PASSWORD, scope=scope)).access
        for nsid, body, error in [
            ("com.atproto.server.requestEmailConfirmation", None, "ScopeMissingError"),
            (
                "com.atproto.server.confirmEmail",
                {"email": "alice@example.com", "token": "AAAAA-BBBBB"},
                "ScopeMissingError",
            ),
            ("com.atproto.server.requestEmailUpdate", None, "Forbidden"),
            ("com.atproto.server.updateEmail", {"email": "eve@example.com"}, "Forbidden"),
            ("com.atproto.server.requestAccountDelete", None, "Forbidden"),
        ]:
            answer = await client.call("POST", nsid, access, body)
            assert (answer.status, answer.json["error"]) == (403, error), (nsid, answer)
        assert net.pds.pds.accounts.get(net.did).email == "alice@example.com"  # type: ignore[union-attr]
        assert not (net.pds.pds.data_dir / OUTBOX).exists()


async def test_mail_requests_are_rate_limited(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        alice = await env.create_account("alice.test", "alice@example.com")
        for _ in range(5):
            await env.ok("com.atproto.server.requestEmailConfirmation", None, alice["accessJwt"])
        reply = await env.call(
            "com.atproto.server.requestEmailConfirmation", None, alice["accessJwt"]
        )
        assert (reply.status, reply.error) == (429, "RateLimitExceeded")


# TLS, and an SMTP server that fails


async def test_starttls_with_the_operators_ca(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    secured = {
        "tls_context": tls.server,
        "require_starttls": True,
        "auth_required": True,
        "authenticator": check_login,
    }
    async with smtp_server(**secured) as inbox:
        user = SMTP_USER.replace("@", "%40")
        password = SMTP_PASSWORD.replace(":", "%3A").replace("/", "%2F")
        url = f"smtp://{user}:{password}@127.0.0.1:{inbox.port}"
        async with pds_env(tmp_path / "trusted", smtp_url=url, smtp_ca_file=tls.ca_file) as env:
            alice = await env.create_account("alice.test", "alice@example.com")
            await env.ok("com.atproto.server.requestEmailConfirmation", None, alice["accessJwt"])
            received = inbox.last()
            assert received.tls and received.login == SMTP_USER.encode()

        # Without the CA, the certificate is not trusted: nothing is sent in the clear.
        async with pds_env(tmp_path / "untrusted", smtp_url=url) as env:
            alice = await env.create_account("alice.test", "alice@example.com")
            before = failures("smtp", "confirm_email")
            reply = await env.call(
                "com.atproto.server.requestEmailConfirmation", None, alice["accessJwt"]
            )
            assert (reply.status, reply.error) == (500, "InternalServerError")
            assert failures("smtp", "confirm_email") == before + 1
            assert len(inbox.mails) == 1


async def test_implicit_tls(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    async with smtp_server(ssl_context=tls.server) as inbox:
        url = f"smtps://localhost:{inbox.port}"
        async with pds_env(tmp_path / "pds", smtp_url=url, smtp_ca_file=tls.ca_file) as env:
            await env.create_account("alice.test", "alice@example.com")
            await env.ok("com.atproto.server.requestPasswordReset", {"email": "alice@example.com"})
            assert inbox.last().message["Subject"] == "Password Reset Requested"


async def test_smtp_server_down(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    async with pds_env(tmp_path, smtp_url=f"smtp://127.0.0.1:{port}") as env:
        alice = await env.create_account("alice.test", "alice@example.com")
        before = failures("smtp", "update_email")
        with env.pds.accounts.transaction() as conn:
            conn.execute("UPDATE account SET email_confirmed_at = 1")
        with mail_log() as records:
            reply = await env.call(
                "com.atproto.server.requestEmailUpdate", None, alice["accessJwt"]
            )
        assert (reply.status, reply.error) == (500, "InternalServerError")
        assert reply.json["message"] == "The email could not be sent; try again later"
        assert failures("smtp", "update_email") == before + 1
        (record,) = [r for r in records if r.getMessage() == "mail not delivered"]
        fields = record.fields  # type: ignore[attr-defined]
        assert fields["did"] == alice["did"] and fields["purpose"] == "update_email"
        assert f"127.0.0.1:{port}" in fields["error"]


async def test_smtp_server_that_never_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mail, "SEND_TIMEOUT", 1.0)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the PDS gives up and closes
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, pds_env(tmp_path, smtp_url=f"smtp://127.0.0.1:{port}") as env:
        alice = await env.create_account("alice.test", "alice@example.com")
        async with asyncio.timeout(10):
            reply = await env.call(
                "com.atproto.server.requestEmailConfirmation", None, alice["accessJwt"]
            )
        assert (reply.status, reply.error) == (500, "InternalServerError")


# Configuration


def test_smtp_urls() -> None:
    assert SmtpServer.parse("smtp://mail.example.com") == SmtpServer(
        "mail.example.com", 587, None, None, False
    )
    assert SmtpServer.parse("smtps://u%40x:p%3Aw@mail.example.com:2465") == SmtpServer(
        "mail.example.com", 2465, "u@x", "p:w", True
    )
    assert str(SmtpServer.parse("smtp://u:secret@127.0.0.1:25")) == "smtp://127.0.0.1:25"
    for bad in ("http://mail.example.com", "smtp://", "smtp://host:99999", "mail.example.com"):
        with pytest.raises(ValueError):
            SmtpServer.parse(bad)


def test_cli_refuses_a_bad_smtp_url(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        pds_command,
        ["--data-dir", str(tmp_path), "--smtp-url", "ftp://user:hunter2@mail.example.com"],
    )
    assert result.exit_code == 2
    assert "--smtp-url" in result.output and "hunter2" not in result.output


def test_supported_addresses() -> None:
    # As the reference takes them (checked against @atproto/pds 0.5.35), apart from its list
    # of disposable mail domains.
    for good in (
        "a@example.com",
        "first.last+tag@mail.example.co.uk",
        "ü@bücher.de",
        "a@b.test",
        "a@example.c",
        "a@xn--p1ai.xn--p1ai",
    ):
        assert supported_email(good), good
    for bad in (
        "",
        "a@b",
        "@example.com",
        "a@",
        "a..b@example.com",
        ".a@example.com",
        "a@-example.com",
        "a@exa_mple.com",
        "a@example.com.",
        "a@example.123",
        '"quoted"@example.com',
        "a@[127.0.0.1]",
        f"{'a' * 65}@example.com",
    ):
        assert not supported_email(bad), bad
