"""`strata pds`: run a Personal Data Server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from strata.pds.app import create_pds_app
from strata.pds.config import AppView, PdsConfig
from strata.pds.mail import SmtpServer
from strata.pds.service import Pds
from strata.serve import (
    FIREHOSE_WINDOW,
    PLC_URLS,
    SERVE_STALE_FOR,
    http_urls,
    options_from,
    public_url,
    run_service,
    service_options,
)


@click.command("pds")
@service_options(default_port=2583, default_dir="pds")
@click.option(
    "--hostname",
    envvar="STRATA_HOSTNAME",
    default="localhost",
    show_default=True,
    help="The public hostname of this PDS.",
)
@PLC_URLS
@click.option(
    "--handle-domain",
    "handle_domains",
    multiple=True,
    envvar="STRATA_HANDLE_DOMAIN",
    default=(".test",),
    show_default=True,
    help="Domains under which this PDS gives out handles (repeat the option).",
)
@click.option(
    "--appview",
    "appviews",
    multiple=True,
    envvar="STRATA_APPVIEW",
    metavar="URL[#DID]",
    help="AppViews to proxy app.bsky calls to, in order of preference; without #DID, the "
    "DID an AppView answers as is read from its /.well-known/did.json when first needed.",
)
@click.option(
    "--relay",
    "relays",
    multiple=True,
    envvar="STRATA_RELAY",
    metavar="URL",
    help="Relays to ask to crawl this PDS on start and on new accounts.",
)
@click.option(
    "--invite-required",
    envvar="STRATA_INVITE_REQUIRED",
    is_flag=True,
    default=False,
    help="New accounts need an invite code.",
)
@click.option(
    "--blob-upload-limit",
    # The option's earlier name still works, for existing command lines and environments.
    "--blob-max-bytes",
    envvar=["STRATA_BLOB_UPLOAD_LIMIT", "STRATA_BLOB_MAX_BYTES"],
    type=click.IntRange(min=1),
    default=5 * 1024 * 1024,
    show_default=True,
    help="Largest blob an account may upload, in bytes.",
)
@click.option(
    "--report-service",
    envvar="STRATA_REPORT_SERVICE",
    default=None,
    metavar="URL#DID",
    help="Where reports (com.atproto.moderation.createReport) go when the client names no "
    "service in its atproto-proxy header: a labeler or moderation service and its DID.",
)
@click.option(
    "--rate-limits/--no-rate-limits",
    envvar="STRATA_RATE_LIMITS",
    default=True,
    show_default=True,
    help="Limit requests per client address and writes per account, as the reference PDS does.",
)
@click.option(
    "--rate-limit-bypass-ip",
    "rate_limit_bypass_ips",
    multiple=True,
    envvar="STRATA_RATE_LIMIT_BYPASS_IP",
    metavar="ADDRESS",
    help="Client addresses the rate limits do not apply to (a trusted proxy, a load test).",
)
@SERVE_STALE_FOR
@click.option(
    "--smtp-url",
    envvar="STRATA_SMTP_URL",
    default=None,
    metavar="URL",
    help="Send mail through this SMTP server: smtp://user:password@host:port (STARTTLS when "
    "the server offers it) or smtps://... (TLS from the start). Without it, mail is left in "
    "mail/outbox/ in the data directory.",
)
@click.option(
    "--smtp-ca-file",
    envvar="STRATA_SMTP_CA_FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Check the SMTP server's certificate against these CA certificates only (PEM) "
    "instead of the system's, for a server with a private CA.",
)
@click.option(
    "--email-from",
    envvar="STRATA_EMAIL_FROM",
    default=None,
    metavar="ADDRESS",
    help="The sender of the PDS's mail.  [default: noreply@<hostname>]",
)
@FIREHOSE_WINDOW
def pds_command(
    hostname: str,
    plc_urls: tuple[str, ...],
    handle_domains: tuple[str, ...],
    appviews: tuple[str, ...],
    relays: tuple[str, ...],
    invite_required: bool,
    blob_upload_limit: int,
    report_service: str | None,
    rate_limits: bool,
    rate_limit_bypass_ips: tuple[str, ...],
    serve_stale_for: float,
    smtp_url: str | None,
    smtp_ca_file: Path | None,
    email_from: str | None,
    firehose_window_mib: int,
    **kwargs: Any,
) -> None:
    """Run a PDS: accounts, their repositories and blobs, and their firehose."""
    options = options_from(kwargs)
    try:
        parsed_appviews = tuple(AppView.parse(a) for a in appviews)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--appview") from exc
    try:
        parsed_report_service = (
            AppView.parse(report_service, did_required=True) if report_service else None
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--report-service") from exc
    if smtp_url is not None:
        try:
            SmtpServer.parse(smtp_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--smtp-url") from exc
    config = PdsConfig(
        hostname=hostname,
        public_url=public_url(options, hostname),
        plc_urls=http_urls("--plc-url", plc_urls),
        handle_domains=tuple(d if d.startswith(".") else f".{d}" for d in handle_domains),
        appviews=parsed_appviews,
        relays=http_urls("--relay", relays),
        dev=options.dev,
        invite_required=invite_required,
        blob_upload_limit=blob_upload_limit,
        report_service=parsed_report_service,
        rate_limits=rate_limits,
        rate_limit_bypass_ips=rate_limit_bypass_ips,
        serve_stale_for=serve_stale_for,
        smtp_url=smtp_url,
        smtp_ca_file=smtp_ca_file,
        email_from=email_from or "",
        firehose_window_bytes=firehose_window_mib << 20,
    )
    pds = Pds(config, options.data_dir)
    run_service("pds", options, lambda: create_pds_app(pds))
