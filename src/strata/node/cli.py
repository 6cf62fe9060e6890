"""`strata up`, the whole network on one machine, and `strata status`, how it is doing."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import click
from click.core import ParameterSource

from strata.net.client import XrpcFailed
from strata.net.logs import configure_logging
from strata.node import config as node_config
from strata.node.config import ConfigError, NodeConfig, NodeSecrets
from strata.node.demo import DEMO_PASSWORD, PEOPLE, seed_demo
from strata.node.feeds import NodeAccount, publish_builtin_feeds, set_up_labeler
from strata.node.probe import ServiceStatus, probe_all
from strata.node.supervisor import Child, StartFailed, Supervisor
from strata.pds.config import AppView
from strata.pds.mail import NoCode
from strata.serve import http_urls, relay_urls

DATA_DIR = click.option(
    "--data-dir",
    envvar="STRATA_DATA_DIR",
    type=click.Path(path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Where the node keeps its configuration and every service's state.",
)


def _appviews(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    for value in values:
        try:
            AppView.parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
    return values


def _configure(ctx: click.Context, data_dir: Path, given: dict[str, Any]) -> NodeConfig:
    """The saved configuration (or the defaults), with the options given this time applied."""
    try:
        config = node_config.load(data_dir) or NodeConfig()
    except ConfigError as exc:
        raise click.ClickException(f"{exc}. Fix the file or move it away to start afresh.") from exc
    chosen = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    explicit = {
        name: value for name, value in given.items() if ctx.get_parameter_source(name) in chosen
    }
    if "port" in explicit:
        config = replace(config, ports={**config.ports, "web": explicit.pop("port")})
    if "plc_urls" in explicit:
        explicit["plc_urls"] = http_urls("--plc-url", explicit["plc_urls"])
    if "relays" in explicit:
        explicit["relays"] = relay_urls(explicit["relays"])
    return replace(config, **explicit)


@click.command("up")
@click.option(
    "--host",
    envvar="STRATA_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address every service listens on.",
)
@click.option(
    "--port",
    envvar="STRATA_PORT",
    type=click.IntRange(1, 65535),
    default=2580,
    show_default=True,
    help="Port of the web client (the services' ports are in the configuration file).",
)
@DATA_DIR
@click.option(
    "--hostname",
    envvar="STRATA_HOSTNAME",
    default="localhost",
    show_default=True,
    help="The name browsers and services use to reach this machine.",
)
@click.option(
    "--plc-url",
    "plc_urls",
    multiple=True,
    envvar="STRATA_PLC_URL",
    metavar="URL",
    help="Use these PLC directories instead of running one (repeat the option).",
)
@click.option(
    "--relay",
    "relays",
    multiple=True,
    envvar="STRATA_RELAY",
    metavar="URL",
    help="Also read these relays, after the local one (repeat the option).",
)
@click.option(
    "--appview",
    "appviews",
    multiple=True,
    envvar="STRATA_APPVIEW",
    metavar="URL[#DID]",
    callback=_appviews,
    help="Also use these AppViews, after the local one (repeat the option).",
)
@click.option(
    "--demo",
    envvar="STRATA_DEMO",
    is_flag=True,
    default=False,
    help="Seed a small network (accounts, follows, posts, likes) on first start.",
)
@click.option(
    "--log-level",
    envvar="STRATA_LOG_LEVEL",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Of the supervisor itself; each service logs to <data-dir>/logs/.",
)
@click.pass_context
def up_command(
    ctx: click.Context,
    host: str,
    port: int,
    data_dir: Path,
    hostname: str,
    plc_urls: tuple[str, ...],
    relays: tuple[str, ...],
    appviews: tuple[str, ...],
    demo: bool,
    log_level: str,
) -> None:
    """Run the whole network on this machine: directory, PDS, relay, AppView, feed generator
    and the web client, each a supervised process, on SQLite under one data directory."""
    configure_logging(log_level)
    given = {
        "host": host,
        "port": port,
        "hostname": hostname,
        "plc_urls": plc_urls,
        "relays": relays,
        "appviews": appviews,
    }
    config = _configure(ctx, data_dir, given)
    exposed = config.exposure()
    if exposed is not None:
        raise click.UsageError(
            f"{exposed}. strata up runs a development network (plain http, relaxed checks) "
            "that must stay on this machine. To serve others, run each service on its own "
            "(strata pds, strata relay, ...) without --dev, behind a proxy that ends TLS."
        )
    path = node_config.save(data_dir, config)
    taken = _ports_in_use(config)
    if taken:
        raise click.ClickException(
            f"a port is taken: {', '.join(taken)}. Stop what holds it (a strata up still "
            f"running?) or change [ports] in {path}, and run strata up again."
        )
    secrets = NodeSecrets.load_or_create(data_dir)
    click.echo(f"configuration: {path}")
    try:
        asyncio.run(_run(config, data_dir, secrets, demo))
    except StartFailed as exc:
        raise click.ClickException(
            f"{exc}\nThe services that had started were stopped. Fix the cause (a port in use "
            f"can be changed in {path}) and run strata up again."
        ) from exc


def _ports_in_use(config: NodeConfig) -> list[str]:
    """The services whose port is already taken, by another program or by a service listed
    before. Checked before anything starts: a service that cannot listen exits, but whatever
    holds its port could answer its health check in its place."""
    taken = []
    owners: dict[int, str] = {}
    for name in config.services:
        port = config.ports[name]
        if port in owners:
            taken.append(f"{name} ({port}, also {owners[port]}'s)")
            continue
        owners[port] = name
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((config.host, port))
            except OSError:
                taken.append(f"{name} ({port})")
    return taken


def _child(config: NodeConfig, data_dir: Path, name: str) -> Child:
    return Child(
        name,
        config.argv(name, data_dir),
        data_dir / "logs" / f"{name}.log",
        f"http://{config.host}:{config.ports[name]}/xrpc/_health",
        env=_service_environment(),
    )


def _service_environment() -> dict[str, str]:
    # Each service gets its options on its command line; a STRATA_* variable meant for
    # `strata up` must not reach them.
    return {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}


async def _run(config: NodeConfig, data_dir: Path, secrets: NodeSecrets, demo: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Supervisor(click.echo) as supervisor:
        for name in config.services:
            if name == "feedgen" and not config.feeds_publisher:
                click.echo("publishing the built-in feeds ...")
                did = await _node_account(
                    "the built-in feeds could not be published",
                    publish_builtin_feeds(config, secrets.feeds_password),
                )
                config = config.with_publisher(did)
                node_config.save(data_dir, config)
            if name == "labeler" and not config.labeler_did:
                click.echo("making the labeler's account ...")
                did = await _node_account(
                    "the labeler's account could not be set up",
                    set_up_labeler(config, secrets.labeler_password, data_dir),
                )
                config = config.with_labeler(did)
                node_config.save(data_dir, config)
            click.echo(f"starting {name} ...")
            await supervisor.start(_child(config, data_dir, name))
            click.echo(f"  {name:8} {config.url(name)}  ready")
        if demo:
            click.echo("seeding the demo network ...")
            async with aiohttp.ClientSession() as http:
                seeded = await seed_demo(http, config, data_dir)
            accounts = ", ".join(f"{n}{config.handle_domain}" for n, _, _ in PEOPLE)
            click.echo(
                f"  demo accounts {'created' if seeded else 'already there'}: {accounts} "
                f"(password {DEMO_PASSWORD})"
            )
        click.echo(f"ready: open {config.url('web')}  (Ctrl-C stops every service)")
        await stop.wait()
        click.echo("stopping ...")
    click.echo("stopped")


async def _node_account(failure: str, work: NodeAccount) -> str:
    """Set up one of the node's own accounts with `work`; returns its DID."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        try:
            return await work(http)
        except (XrpcFailed, NoCode, aiohttp.ClientError) as exc:
            raise StartFailed(f"{failure}: {exc}") from exc


@click.command("status")
@DATA_DIR
def status_command(data_dir: Path) -> None:
    """Show every service of the node in --data-dir: health, firehose lag, breaker states."""
    try:
        config = node_config.load(data_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if config is None:
        raise click.ClickException(
            f"no node in {data_dir} (no {node_config.CONFIG_FILE}); start one with strata up"
        )
    statuses = asyncio.run(_probe({name: config.url(name) for name in config.services}))
    for status in statuses:
        click.echo(_status_line(status))
        for breaker in status.breakers:
            if breaker["state"] != "closed":
                where = f"{breaker['pool']} {breaker['endpoint']}"
                click.echo(f"    breaker {breaker['state']}: {where}")
    down = [s.name for s in statuses if not s.ok]
    if down:
        raise click.ClickException(
            f"not healthy: {', '.join(down)}; see their logs in {data_dir / 'logs'}"
        )


async def _probe(services: dict[str, str]) -> list[ServiceStatus]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        return await probe_all(http, services)


def _status_line(status: ServiceStatus) -> str:
    parts = [f"{status.name:8}", f"{status.url:24}", f"{status.health:18}"]
    if status.latency_ms is not None:
        parts.append(f"{status.latency_ms:6.1f} ms")
    if status.firehose_lag_s is not None:
        parts.append(f"firehose lag {status.firehose_lag_s:.2f} s")
    if status.disconnected_s:
        parts.append(f"no relay for {status.disconnected_s:.0f} s")
    closed = sum(1 for b in status.breakers if b["state"] == "closed")
    if status.breakers:
        parts.append(f"breakers {closed}/{len(status.breakers)} closed")
    return "  ".join(parts)
