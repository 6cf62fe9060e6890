"""What a PDS is configured with, and the secrets it creates on first start."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from joserfc.jwk import ECKey

from strata.core.crypto import K256Keypair
from strata.net.firehose import WINDOW_BYTES
from strata.storage import write_private

SECRETS_FILE = "secrets.json"


@dataclass(frozen=True)
class AppView:
    """A service the PDS passes calls on to (an AppView for `app.bsky.*`, the report service):
    where it is and the DID it answers as (None: learned from the document it serves at
    `/.well-known/did.json` when first needed)."""

    url: str
    did: str | None = None

    @classmethod
    def parse(cls, text: str, did_required: bool = False) -> AppView:
        """`URL` or `URL#DID`, as `--appview` takes it, for example `http://127.0.0.1:2585` or
        `http://127.0.0.1:2585#did:web:localhost%3A2585` (`did_required`: only the latter)."""
        url, sep, did = text.partition("#")
        if (
            not url.startswith(("http://", "https://"))
            or (sep and not did.startswith("did:"))
            or (did_required and not sep)
        ):
            shape = "URL#DID" if did_required else "URL or URL#DID"
            raise ValueError(f"a service is given as {shape} (the DID it answers as), not {text!r}")
        return cls(url.rstrip("/"), did if sep else None)


@dataclass(frozen=True)
class PdsConfig:
    """Everything a PDS needs to know besides its data."""

    hostname: str
    public_url: str
    plc_urls: tuple[str, ...]
    handle_domains: tuple[str, ...] = (".test",)
    appviews: tuple[AppView, ...] = ()
    relays: tuple[str, ...] = ()
    dev: bool = False
    invite_required: bool = False
    blob_upload_limit: int = 5 * 1024 * 1024
    """The largest blob an account may upload, in bytes (the reference's default, 5 MiB)."""
    report_service: AppView | None = None
    """Where reports (`createReport`) go when the client names no service: a labeler or
    moderation service, with the DID it answers as."""
    rate_limits: bool = True
    rate_limit_bypass_ips: tuple[str, ...] = ()
    serve_stale_for: float = 6 * 3600.0
    """How old a remembered AppView answer may be when it is served because no AppView
    answers."""
    smtp_url: str | None = None
    """The SMTP server mail goes through; None: mail is left in the data directory's outbox."""
    smtp_ca_file: Path | None = None
    """The only CA certificates the SMTP server's TLS certificate is checked against (None:
    the system's)."""
    email_from: str = ""
    firehose_window_bytes: int = WINDOW_BYTES
    """Bytes of recent firehose frames kept in memory for consumers that are behind."""
    service_did: str = field(default="")

    def __post_init__(self) -> None:
        if not self.service_did:
            object.__setattr__(self, "service_did", f"did:web:{self.hostname}")
        if not self.email_from:
            object.__setattr__(self, "email_from", f"noreply@{self.hostname}")


@dataclass(frozen=True)
class Secrets:
    """Generated on first start and kept in the data directory, readable by the owner only."""

    jwt_secret: bytes
    admin_password: str
    plc_rotation_key: K256Keypair
    oauth_key: ECKey
    """Signs OAuth access tokens (ES256)."""

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Secrets:
        """The secrets in `data_dir`, created there with mode 0600 when missing (and any
        missing from an older file added)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        path = data_dir / SECRETS_FILE
        raw = json.loads(path.read_text()) if path.exists() else {}
        made = cls(
            jwt_secret=bytes.fromhex(raw["jwt_secret"]) if raw else secrets.token_bytes(32),
            admin_password=raw.get("admin_password") or secrets.token_urlsafe(18),
            plc_rotation_key=K256Keypair.from_private_bytes(bytes.fromhex(raw["plc_rotation_key"]))
            if raw
            else K256Keypair.generate(),
            oauth_key=ECKey.import_key(raw["oauth_key"])
            if "oauth_key" in raw
            else ECKey.generate_key("P-256"),
        )
        body = {
            "jwt_secret": made.jwt_secret.hex(),
            "admin_password": made.admin_password,
            "plc_rotation_key": made.plc_rotation_key.private_bytes().hex(),
            "oauth_key": made.oauth_key.as_dict(private=True),
        }
        if body != raw:
            write_private(path, json.dumps(body, indent=2))
        return made
