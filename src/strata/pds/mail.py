"""Delivering the mail the PDS sends its accounts (confirmation codes).

With an SMTP server configured (`--smtp-url`), each mail is sent through it, upgraded with
STARTTLS when the server offers it (`smtps://` for TLS from the first byte). Without one, each
mail is left as a file in the data directory's outbox for the operator to deliver, where the
node's own tools also read codes back (`outbox_code`). What the mails say is in
`strata.pds.mail_templates`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

import aiosmtplib
from prometheus_client import Counter

from strata.net.logs import log_event
from strata.storage import write_private

log = logging.getLogger("strata.pds.mail")

OUTBOX: Final = Path("mail") / "outbox"
_CODE = re.compile(r"code: (\S+)")

COMMAND_TIMEOUT: Final = 10.0
"""Seconds the SMTP server has to answer each command."""
SEND_TIMEOUT: Final = 30.0
"""Seconds one whole delivery may take, connection and TLS included."""
DEFAULT_PORTS: Final = {"smtp": 587, "smtps": 465}

SENT = Counter("strata_pds_mail_sent_total", "Mails delivered", ["transport", "purpose"])
FAILURES = Counter(
    "strata_pds_mail_failures_total", "Mails that could not be delivered", ["transport", "purpose"]
)


class MailError(Exception):
    """A mail could not be delivered."""


class NoCode(LookupError):
    """No mail with a code was written to the account."""


def outbox_code(pds_data_dir: Path, did: str, purpose: str = "plc_operation") -> str:
    """The code the PDS with `pds_data_dir` last mailed to `did` for `purpose`."""
    mails = sorted((pds_data_dir / OUTBOX).glob(f"*{purpose}-{did.replace(':', '_')}*"))
    found = _CODE.search(mails[-1].read_text()) if mails else None
    if found is None:
        raise NoCode(f"no {purpose} code for {did} in {pds_data_dir / OUTBOX}")
    return found.group(1)


class Mailer(ABC):
    """Delivers mail; every attempt is logged and counted by transport and purpose."""

    transport: str

    async def send(self, to: str, subject: str, text: str, *, did: str, purpose: str) -> None:
        """Deliver one plain-text mail to `to` for the account `did`; MailError when it could
        not be delivered."""
        try:
            where = await self._deliver(to, subject, text, did, purpose)
        except MailError as exc:
            FAILURES.labels(self.transport, purpose).inc()
            log_event(
                log, "mail not delivered", logging.ERROR, did=did, purpose=purpose,
                transport=self.transport, error=str(exc),
            )  # fmt: skip
            raise
        SENT.labels(self.transport, purpose).inc()
        log_event(log, "mail sent", did=did, purpose=purpose, transport=self.transport, to=where)

    @abstractmethod
    async def _deliver(self, to: str, subject: str, text: str, did: str, purpose: str) -> str:
        """Deliver the mail; where it went, for the log."""


class OutboxMailer(Mailer):
    """Leaves each mail as a file in a folder, named `<ms>-<purpose>-<did>.txt`."""

    transport = "outbox"

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    async def _deliver(self, to: str, subject: str, text: str, did: str, purpose: str) -> str:
        name = f"{int(time.time() * 1000)}-{purpose}-{did.replace(':', '_')}.txt"
        body = f"From: {self.sender}\nTo: {to}\nSubject: {subject}\n\n{text}"
        try:
            # The codes in it are secrets: owner-only, like the rest of the data directory.
            await asyncio.to_thread(write_private, self.folder / name, body)
        except OSError as exc:
            raise MailError(f"could not write {name}: {exc}") from exc
        return name


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to reach an SMTP server, from an `smtp://` or `smtps://` URL."""

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """`smtp://[user:password@]host[:port]` (STARTTLS when offered, port 587 by default) or
        `smtps://...` (TLS from the start, port 465); user and password percent-encoded."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            # The URL itself is not repeated: it may hold a password.
            raise ValueError("an SMTP server is given as smtp[s]://[user:password@]host[:port]")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise ValueError(f"bad port in SMTP URL: {exc}") from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            implicit_tls=parts.scheme == "smtps",
        )

    def __str__(self) -> str:
        # Never the credentials: this is what logs show.
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


class SmtpMailer(Mailer):
    """Sends each mail through an SMTP server, one connection per mail."""

    transport = "smtp"

    def __init__(
        self, server: SmtpServer, sender: str, local_hostname: str, ca_file: Path | None = None
    ) -> None:
        self.server = server
        self.sender = sender
        self.local_hostname = local_hostname
        # Checked against the system's CAs, or only against the operator's own CA when given.
        self.tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    async def _deliver(self, to: str, subject: str, text: str, did: str, purpose: str) -> str:
        try:
            message = EmailMessage()
            message["From"] = self.sender
            message["To"] = to
            message["Subject"] = subject
            message["Date"] = formatdate(usegmt=True)
            # With the domain given, make_msgid does not look up this machine's name.
            message["Message-ID"] = make_msgid(domain=self.local_hostname)
            message.set_content(text)
        except ValueError as exc:  # an address or subject that cannot be a header
            raise MailError(f"malformed mail: {exc}") from exc
        server = self.server
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await aiosmtplib.send(
                    message,
                    hostname=server.host,
                    port=server.port,
                    username=server.username,
                    password=server.password,
                    local_hostname=self.local_hostname,
                    use_tls=server.implicit_tls,
                    start_tls=False if server.implicit_tls else None,
                    tls_context=self.tls,
                    timeout=COMMAND_TIMEOUT,
                )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(f"{server}: {exc or type(exc).__name__}") from exc
        return str(server)


def create_mailer(
    smtp_url: str | None,
    sender: str,
    local_hostname: str,
    data_dir: Path,
    ca_file: Path | None = None,
) -> Mailer:
    """The SMTP mailer when `smtp_url` is set, else the outbox in `data_dir`."""
    if smtp_url is None:
        return OutboxMailer(data_dir / OUTBOX, sender)
    return SmtpMailer(SmtpServer.parse(smtp_url), sender, local_hostname, ca_file)
