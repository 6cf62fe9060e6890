"""Running one service as a process: the options every service shares, and serving until a
signal arrives.

Every option can also be given as an environment variable `STRATA_<OPTION>`, so that a service
runs the same way from a shell, a container or a process supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import click
from aiohttp import web

from strata.database import WrongDatabase
from strata.net.firehose import WINDOW_BYTES
from strata.net.logs import configure_logging, log_event
from strata.net.server import ADMISSION_KEY, DEFAULT_MAX_IN_FLIGHT

log = logging.getLogger("strata.serve")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ServiceOptions:
    """The options shared by every service."""

    host: str
    port: int
    data_dir: Path
    dev: bool
    log_level: str
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT


def service_options(default_port: int, default_dir: str) -> Callable[[F], F]:
    """Add `--host --port --data-dir --dev --log-level --max-in-flight` to a click command."""

    def decorate(command: F) -> F:
        options = [
            click.option(
                "--host",
                envvar="STRATA_HOST",
                default="127.0.0.1",
                show_default=True,
                help="Address to listen on.",
            ),
            click.option(
                "--port",
                envvar="STRATA_PORT",
                type=int,
                default=default_port,
                show_default=True,
                help="Port to listen on.",
            ),
            click.option(
                "--data-dir",
                envvar="STRATA_DATA_DIR",
                type=click.Path(path_type=Path),
                default=Path("data") / default_dir,
                show_default=True,
                help="Where this service keeps its state.",
            ),
            click.option(
                "--dev",
                envvar="STRATA_DEV",
                is_flag=True,
                default=False,
                help="Development mode: allow plain http:// and loopback addresses.",
            ),
            click.option(
                "--log-level",
                envvar="STRATA_LOG_LEVEL",
                default="info",
                show_default=True,
                type=click.Choice(["debug", "info", "warning", "error"]),
            ),
            click.option(
                "--max-in-flight",
                envvar="STRATA_MAX_IN_FLIGHT",
                type=click.IntRange(min=1),
                default=DEFAULT_MAX_IN_FLIGHT,
                show_default=True,
                help="Requests handled at once; beyond it (sooner for reads, streams and bulk "
                "sync) requests get 503 with Retry-After.",
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


PLC_URLS = click.option(
    "--plc-url",
    "plc_urls",
    multiple=True,
    envvar="STRATA_PLC_URL",
    default=("http://127.0.0.1:2582",),
    show_default=True,
    metavar="URL",
    help="PLC directories, in order of preference (repeat the option).",
)
"""`--plc-url`, for every service that resolves identities."""


RELAYS = click.option(
    "--relay",
    "relays",
    multiple=True,
    envvar="STRATA_RELAY",
    metavar="URL",
    help="Relays to read the network from, in order of preference (repeat the option).",
)
"""`--relay`, for every service that reads the firehose."""


def relay_urls(relays: tuple[str, ...]) -> tuple[str, ...]:
    """Relay URLs as http(s) (ws:// and wss:// are accepted too: they name the same host)."""
    schemes = {"ws://": "http://", "wss://": "https://"}
    normal = []
    for url in relays:
        scheme = next((s for s in schemes if url.startswith(s)), None)
        normal.append(url if scheme is None else schemes[scheme] + url[len(scheme) :])
    return http_urls("--relay", tuple(normal))


FIREHOSE_WINDOW = click.option(
    "--firehose-window-mib",
    "firehose_window_mib",
    envvar="STRATA_FIREHOSE_WINDOW_MIB",
    type=click.IntRange(min=1),
    default=WINDOW_BYTES >> 20,
    show_default=True,
    help="MiB of recent firehose frames kept in memory for consumers that fall behind; the "
    "oldest leave first, and a consumer behind them is closed with ConsumerTooSlow.",
)
"""`--firehose-window-mib`, for the services that serve a repository firehose."""


SERVE_STALE_FOR = click.option(
    "--serve-stale-for",
    envvar="STRATA_SERVE_STALE_FOR",
    type=click.FloatRange(min=0),
    default=6 * 3600.0,
    show_default=True,
    help="Seconds a remembered answer may be served, marked stale, while its upstream fails.",
)
"""`--serve-stale-for`, for the services that remember answers of their upstreams."""


def _postgres_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise click.BadParameter("must be a postgresql:// URL")
    return value


DATABASE_URL = click.option(
    "--database-url",
    envvar="STRATA_DATABASE_URL",
    metavar="postgresql://...",
    callback=_postgres_url,
    help="Keep this service's tables in Postgres instead of SQLite in --data-dir.",
)
"""`--database-url`, for the services that can keep their data in Postgres."""


def http_urls(option: str, urls: tuple[str, ...]) -> tuple[str, ...]:
    """`urls` without trailing slashes, or a usage error naming `option` if one is not http(s)."""
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint=option)
    return tuple(url.rstrip("/") for url in urls)


def public_url(options: ServiceOptions, hostname: str) -> str:
    """Where clients reach a service: https on its hostname, or in dev mode plain http with the
    port, so that clients on loopback can follow its DID documents."""
    if options.dev:
        return f"http://{hostname}:{options.port}"
    return f"https://{hostname}"


def options_from(kwargs: dict[str, Any]) -> ServiceOptions:
    """Take the shared options out of a click command's keyword arguments."""
    return ServiceOptions(
        host=kwargs.pop("host"),
        port=kwargs.pop("port"),
        data_dir=kwargs.pop("data_dir"),
        dev=kwargs.pop("dev"),
        log_level=kwargs.pop("log_level"),
        max_in_flight=kwargs.pop("max_in_flight"),
    )


IDLE_TIMEOUT: Final = 20.0
"""Seconds a connection may stay without a complete request: idle between requests, or still
sending its headers (a client trickling them is closed). Longer than the 15 s an aiohttp client
keeps an idle connection, so the two do not race."""


@contextlib.asynccontextmanager
async def listening(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve `app` on host:port for the duration of the block; yields the bound port."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=2.0,
        keepalive_timeout=IDLE_TIMEOUT,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def run_service(
    name: str,
    options: ServiceOptions,
    app: Callable[[], web.Application | Awaitable[web.Application]],
) -> None:
    """Build the app (a factory may be async, to open a database first), serve it until SIGINT
    or SIGTERM, then shut down cleanly."""
    configure_logging(options.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            built = app()
            application = await built if inspect.isawaitable(built) else built
            application[ADMISSION_KEY].policy.capacity = options.max_in_flight
            async with listening(application, options.host, options.port) as port:
                log_event(log, "listening", service=name, url=f"http://{options.host}:{port}")
                await stop.wait()
        except WrongDatabase as exc:
            raise click.ClickException(f"{exc} (--database-url)") from exc
        except OSError as exc:
            raise click.ClickException(
                f"{name} cannot listen on {options.host}:{options.port}: {exc.strerror}. "
                "Choose another port with --port or STRATA_PORT."
            ) from exc
        log_event(log, "stopped", service=name)

    asyncio.run(main())
