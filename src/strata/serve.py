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
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import multiprocessing.synchronize
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar

import click
from aiohttp import web

from strata.database import WrongDatabase
from strata.net.firehose import WINDOW_BYTES
from strata.net.logs import configure_logging, log_event
from strata.net.server import ADMISSION_KEY, DEFAULT_MAX_IN_FLIGHT, WORKER_KEY
from strata.net.worker_metrics import share_metrics, worker_exited

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
async def listening(
    app: web.Application, host: str, port: int, reuse_port: bool = False
) -> AsyncIterator[int]:
    """Serve `app` on host:port for the duration of the block; yields the bound port. With
    `reuse_port`, other processes may listen on the same port (SO_REUSEPORT), and the kernel
    spreads connections between them."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=2.0,
        keepalive_timeout=IDLE_TIMEOUT,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    try:
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


AppFactory = Callable[[], web.Application | Awaitable[web.Application]]
"""Builds a service's app (a factory may be async, to open a database first)."""


def run_service(name: str, options: ServiceOptions, app: AppFactory) -> None:
    """Build the app, serve it in this process until SIGINT or SIGTERM, then shut down
    cleanly."""
    configure_logging(options.log_level)
    asyncio.run(_serve(name, options, app))


async def _serve(
    name: str,
    options: ServiceOptions,
    app: AppFactory,
    worker: int | None = None,
    on_listening: Callable[[], None] | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    orphaned = None
    if worker is not None:
        orphaned = asyncio.create_task(_watch_parent(os.getppid(), stop))
    details: dict[str, Any] = {} if worker is None else {"worker": worker}
    try:
        built = app()
        application = await built if inspect.isawaitable(built) else built
        application[ADMISSION_KEY].policy.capacity = options.max_in_flight
        if worker is not None:
            application[WORKER_KEY] = worker
        async with listening(
            application, options.host, options.port, reuse_port=worker is not None
        ) as port:
            url = f"http://{options.host}:{port}"
            log_event(log, "listening", service=name, url=url, **details)
            if on_listening is not None:
                on_listening()
            await stop.wait()
    except WrongDatabase as exc:
        raise click.ClickException(f"{exc} (--database-url)") from exc
    except OSError as exc:
        raise click.ClickException(
            f"{name} cannot listen on {options.host}:{options.port}: {exc.strerror}. "
            "Choose another port with --port or STRATA_PORT."
        ) from exc
    finally:
        if orphaned is not None:
            orphaned.cancel()
    log_event(log, "stopped", service=name, **details)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    # A worker whose supervisor is gone (killed outright) stops rather than serve unsupervised.
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    stop.set()


WORKERS = click.option(
    "--workers",
    envvar="STRATA_WORKERS",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes serving on the one port (SO_REUSEPORT), sharing the load of its "
    "connections; more than one needs --database-url.",
)
"""`--workers`, for the services that can run as several processes over one database."""


def check_workers(workers: int, database_url: str | None) -> None:
    """Refuse several workers without a shared database."""
    if workers > 1 and not database_url:
        raise click.UsageError(
            f"--workers {workers} needs --database-url postgresql://...: several processes "
            "share their data through Postgres, while the SQLite file in --data-dir is for "
            "one process."
        )


def run_workers(
    name: str, options: ServiceOptions, app: Callable[[int], AppFactory], workers: int
) -> None:
    """Serve the service in `workers` processes on one port until SIGINT or SIGTERM. Each
    builds its own app with `app(number)`, numbered from 0: whatever must run once per service
    (following a firehose, mirroring) runs where the number is 0. A worker that exits after it
    started listening is restarted; one that fails before stops them all. `/metrics` reports
    the whole service whichever worker answers, through a directory of shared samples made
    for this run and removed with it."""
    if workers == 1:
        run_service(name, options, app(0))
        return
    configure_logging(options.log_level)
    # Bound (not listening) for as long as the workers run: port 0 becomes one port for all,
    # and a port taken by another program is reported before any worker starts.
    family = socket.getaddrinfo(options.host, options.port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as reserved:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            reserved.bind((options.host, options.port))
        except OSError as exc:
            raise click.ClickException(
                f"{name} cannot listen on {options.host}:{options.port}: {exc.strerror}. "
                "Choose another port with --port or STRATA_PORT."
            ) from exc
        metrics = Path(tempfile.mkdtemp(prefix=f"strata-{name}-metrics-"))
        try:
            code = _supervise(
                name, replace(options, port=reserved.getsockname()[1]), app, workers, metrics
            )
        finally:
            shutil.rmtree(metrics, ignore_errors=True)
    if code:
        raise click.ClickException(f"{name}: a worker failed to start (exit status {code})")


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    listening: multiprocessing.synchronize.Event


def _supervise(
    name: str,
    options: ServiceOptions,
    app: Callable[[int], AppFactory],
    workers: int,
    metrics: Path,
) -> int:
    """Run the workers until SIGINT or SIGTERM; returns 0, or the exit status of a worker that
    failed to start."""
    stopping = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Forked before this process runs an event loop or a thread, so each worker starts clean.
    context = multiprocessing.get_context("fork")

    def start(number: int) -> _Worker:
        listening = context.Event()
        process = context.Process(
            target=_worker,
            args=(name, options, app, number, listening, metrics),
            name=f"{name}-{number}",
        )
        process.start()
        return _Worker(process, listening)

    running: dict[int, _Worker] = {}
    try:
        for number in range(workers):
            running[number] = start(number)
        while not stopping.is_set():
            multiprocessing.connection.wait([w.process.sentinel for w in running.values()], 0.5)
            for number, worker in list(running.items()):
                if stopping.is_set() or worker.process.is_alive():
                    continue
                code = worker.process.exitcode or 0
                if worker.process.pid is not None:
                    worker_exited(metrics, worker.process.pid)
                if not worker.listening.is_set():
                    # A bad option, database or port, which starting again would not mend.
                    return code or 1
                log_event(
                    log, "worker exited, restarting", logging.WARNING,
                    service=name, worker=number, code=code,
                )  # fmt: skip
                running[number] = start(number)
        return 0
    finally:
        for worker in running.values():
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + 10.0
        for worker in running.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker(
    name: str,
    options: ServiceOptions,
    app: Callable[[int], AppFactory],
    number: int,
    listening: multiprocessing.synchronize.Event,
    metrics: Path,
) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    share_metrics(metrics)
    try:
        asyncio.run(_serve(name, options, app(number), worker=number, on_listening=listening.set))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
