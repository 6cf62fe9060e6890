"""Metrics of several worker processes: counters add up over every worker, dead ones included,
and a gauge's value combines the live workers' as its mode says."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from strata.net.worker_metrics import share_metrics, worker_exited

CALLS = Counter("strata_test_worker_calls_total", "Calls a test worker made", ["kind"])
MADE_BEFORE_FORK = CALLS.labels("early")
"""A child made on import, as services make theirs, and held by its user."""
OPEN = Gauge(
    "strata_test_worker_open", "Things a test worker holds open", multiprocess_mode="livesum"
)


def _work(directory: Path, calls: int) -> None:
    share_metrics(directory)
    MADE_BEFORE_FORK.inc(calls)
    CALLS.labels("late").inc()
    OPEN.set(1)


def _samples(directory: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    samples = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("strata_test_worker"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_workers_add_up(tmp_path: Path) -> None:
    MADE_BEFORE_FORK.inc(100)  # the supervisor's own count is no worker's
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_work, args=(tmp_path, calls)) for calls in (2, 3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    assert _samples(tmp_path) == {
        'strata_test_worker_calls_total{kind="early"}': 5.0,
        'strata_test_worker_calls_total{kind="late"}': 2.0,
        "strata_test_worker_open": 2.0,
    }
    pid = workers[0].pid
    assert pid is not None
    worker_exited(tmp_path, pid)
    # The counts of a worker that is gone stay; what it held open leaves with it.
    samples = _samples(tmp_path)
    assert samples['strata_test_worker_calls_total{kind="early"}'] == 5.0
    assert samples["strata_test_worker_open"] == 1.0
