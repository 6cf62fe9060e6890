"""Metrics of a service that runs as several worker processes on one port.

A scrape of `/metrics` on the shared port reaches one worker, chosen by the kernel, so each
worker reports the whole service: every worker keeps its samples in files of a directory the
supervisor makes before it forks them (prometheus_client's multiprocess mode), and a scrape
adds up the files of all of them. Counters and histograms are summed, dead workers' included
(a total never goes back); each gauge says how its workers' values combine
(`multiprocess_mode`), and the values of a dead worker's gauges leave with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, values
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

DIRECTORY_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus_client keeps the shared samples (its own name for it)."""

_shared: Path | None = None


def share_metrics(directory: Path) -> None:
    """Keep this process's samples in `directory`, beside those of the other workers. Called
    in a worker as it starts: metrics created on import, before the fork, start again at zero
    in the shared files."""
    global _shared
    _shared = directory
    os.environ[DIRECTORY_VARIABLE] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    for collector in list(REGISTRY._collector_to_names):
        if not isinstance(collector, MetricWrapperBase):
            continue
        if collector._is_parent():  # type: ignore[no-untyped-call]
            # Children already made (and perhaps held by their users) keep their identity.
            for child in list(collector._metrics.values()):
                child._metric_init()  # type: ignore[no-untyped-call]
        else:
            collector._metric_init()  # type: ignore[no-untyped-call]


def shared_directory() -> Path | None:
    """The directory of the shared samples, when this process is one of several workers."""
    return _shared


def service_registry() -> CollectorRegistry:
    """What `/metrics` reports: this process's metrics, or with several workers the sum of
    all of theirs."""
    directory = shared_directory()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    return registry


def worker_exited(directory: Path, pid: int) -> None:
    """Forget the gauges of a worker that is gone (its counters stay in the totals)."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
