"""Shared fixtures: where the conformance vectors live, and how coroutine tests run."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.node.running import Node, running_node
from tests.postgres import PostgresCluster

_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance"


def conformance_dir() -> Path | None:
    """The conformance directory from `$STRATA_CONFORMANCE_DIR`, else `../shared/conformance`."""
    env = os.environ.get("STRATA_CONFORMANCE_DIR")
    path = Path(env) if env else _DEFAULT
    return path if path.is_dir() else None


# Coroutine tests run on a fresh event loop with a time bound, so no network test can hang CI.
ASYNC_TEST_TIMEOUT = 60.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-full",
        action="store_true",
        default=False,
        help="Run every chaos scenario (tests/chaos), not only the fast subset.",
    )
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        default=None,
        help="Where the browser tests save the screenshots of the timeline, the providers "
        "page and the dashboard (docs/screenshots in the repository).",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    marker = pyfuncitem.get_closest_marker("async_timeout")
    timeout = float(marker.args[0]) if marker is not None else ASYNC_TEST_TIMEOUT
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), timeout))
    return True


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A Postgres cluster for the run. It is required in CI; elsewhere, tests that need it are
    skipped when Postgres is not installed."""
    try:
        cluster = PostgresCluster()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each backend in turn: None for the embedded SQLite, else a fresh Postgres database."""
    if request.param == "sqlite":
        return None
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def new_database(request: pytest.FixtureRequest) -> Callable[[], str | None]:
    """Each backend in turn, for tests that run several services: a maker of fresh databases,
    giving None for the embedded SQLite (a file in each service's data directory), else the
    URL of a new Postgres database at each call."""
    if request.param == "sqlite":
        return lambda: None
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One `strata up --demo`, shared by the node and browser tests."""
    with running_node(tmp_path_factory.mktemp("node")) as running:
        yield running
